"""Walking and printing commit history: ``repo.log()`` and ``repo.summary()`` texts."""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Callable
from io import StringIO
from typing import Any

from hangar.format.commits import CommitRecord

__all__ = ["format_bytes", "format_log", "graph_rows", "list_history", "summary_text"]


def list_history(head: str, read: Callable[[str], CommitRecord]) -> dict[str, Any]:
    """Every ancestor of ``head``: its parents DAG, specs, and newest-first order."""
    ancestors: dict[str, list[str]] = {}
    specs: dict[str, dict[str, Any]] = {}
    todo = [head]
    while todo:
        cid = todo.pop()
        if cid in ancestors:
            continue
        rec = read(cid)
        ancestors[cid] = list(rec.parents)
        specs[cid] = {
            "commit_message": rec.message,
            "commit_time": _epoch(rec.time),
            "commit_user": rec.user_name,
            "commit_email": rec.user_email,
        }
        todo.extend(rec.parents)
    return {"head": head, "ancestors": ancestors, "specs": specs,
            "order": _topo_order(ancestors, specs)}  # fmt: skip


def _topo_order(ancestors: dict[str, list[str]], specs: dict[str, dict[str, Any]]) -> list[str]:
    """Newest first, every commit before its parents (clocks of writers may disagree)."""
    children = dict.fromkeys(ancestors, 0)
    for parents in ancestors.values():
        for p in parents:
            children[p] += 1
    ready = [(-specs[c]["commit_time"], c) for c, n in children.items() if n == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, cid = heapq.heappop(ready)
        order.append(cid)
        for p in ancestors[cid]:
            children[p] -= 1
            if children[p] == 0:
                heapq.heappush(ready, (-specs[p]["commit_time"], p))
    return order


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def format_log(history: dict[str, Any], branch_heads: dict[str, list[str]],
               show_time: bool, show_user: bool) -> str:  # fmt: skip
    """Hangar's log graph, newest first: ``* a=... (master) : message``, with lanes.

    Each line of descent is a lane (``|``); a merge commit opens a lane for
    its second parent (``|\\``), and lanes that reach the same commit join
    (``|/``) just above it, as ``git log --graph`` draws them.
    """
    out = StringIO()
    for graph, cid in graph_rows(history["order"], history["ancestors"]):
        if cid is None:
            out.write(graph + "\n")
            continue
        spec = history["specs"][cid]
        heads = branch_heads.get(cid)
        line = f"{graph} {cid}"
        if heads:
            line += f" ({', '.join(sorted(heads))})"
        if show_time:
            t = dt.datetime.fromtimestamp(spec["commit_time"], dt.UTC)
            line += f" ({t.strftime('%d%b%Y %H:%M:%S')})"
        if show_user:
            line += f" ({spec['commit_user']})"
        line += f" : {spec['commit_message']}"
        out.write(line + "\n")
    return out.getvalue()


def graph_rows(order: list[str], parents: dict[str, list[str]]) -> list[tuple[str, str | None]]:
    """The graph column of the log: ``(drawing, commit)`` rows; ``commit`` None on edge rows.

    ``order`` must list children before parents.
    """
    lanes: list[str] = []  # the commit each lane leads to next
    rows: list[tuple[str, str | None]] = []
    for cid in order:
        hits = [j for j, want in enumerate(lanes) if want == cid]
        if not hits:
            lanes.append(cid)
            hits = [len(lanes) - 1]
        i = hits[0]
        for n in range(len(hits) - 1, 0, -1):  # lanes that also lead here join the next one left
            rows.append((_join(len(lanes), hits[n - 1], hits[n]), None))
            del lanes[hits[n]]
        rows.append((" ".join("*" if j == i else "|" for j in range(len(lanes))), cid))
        ps = parents[cid]
        if not ps:
            del lanes[i]
            continue
        lanes[i] = ps[0]
        if len(ps) > 1:
            rows.append((_fork(len(lanes), i), None))
            lanes.insert(i + 1, ps[1])
    return rows


def _join(n: int, i: int, k: int) -> str:
    """Lane ``k`` of ``n`` bends left into lane ``i``; lanes right of it move over."""
    text = "|"
    for j in range(1, k):
        text += ("_" if j > i else " ") + "|"
    return text + "/" + " /" * (n - k - 1)


def _fork(n: int, i: int) -> str:
    """Lane ``i`` of ``n`` opens a lane to its right; lanes right of it move over."""
    return "| " * i + "|\\" + " \\" * (n - i - 1)


def format_bytes(n: int) -> str:
    """Human readable bytes, as Hangar prints them (``1.23 MB``)."""
    if n < 1000:
        return f"{n} B"
    size = float(n)
    for unit in ("kB", "MB", "GB"):
        size /= 1000
        if size < 1000:
            return f"{size:.2f} {unit}"
    return f"{size / 1000:.2f} TB"


def summary_text(location: str, nbytes: int, cid: str, rec: CommitRecord) -> str:
    """Hangar's ``repo.summary()`` text for commit ``cid``."""
    buf = StringIO()
    created = dt.datetime.fromisoformat(rec.time.replace("Z", "+00:00"))
    buf.write("Summary of Contents Contained in Data Repository \n \n")
    buf.write("================== \n| Repository Info \n|----------------- \n")
    buf.write(f"|  Base Directory: {location} \n")
    buf.write(f"|  Disk Usage: {format_bytes(nbytes)} \n \n")
    buf.write("=================== \n| Commit Details \n------------------- \n")
    buf.write(f"|  Commit: {cid} \n")
    buf.write(f"|  Created: {created.strftime('%a %b %d %H:%M:%S %Y')} \n")
    buf.write(f"|  By: {rec.user_name} \n")
    buf.write(f"|  Email: {rec.user_email} \n")
    buf.write(f"|  Message: {rec.message} \n \n")
    buf.write("================== \n| DataSets \n|----------------- \n")
    buf.write(f"|  Number of Named Columns: {len(rec.columns)} \n")
    for name, col in sorted(rec.columns.items()):
        s = col.schema
        buf.write("|\n")
        buf.write(f"|  * Column Name: {name} \n")
        buf.write(f"|    Num Data Pieces: {col.samples} \n")
        buf.write("|    Details: \n")
        details = {
            "column_layout": s.column_layout,
            "column_type": s.column_type,
            "schema_type": s.schema_type,
            "shape": s.shape,
            "dtype": s.dtype,
            "backend": "zarr-v3-packed",
            "backend_options": {"codecs": [dict(c) for c in s.codecs]},
        }
        for k, v in details.items():
            buf.write(f"|    - {k}: {v} \n")
    return buf.getvalue()
