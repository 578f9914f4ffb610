"""Walking and printing commit history: ``repo.log()`` and ``repo.summary()`` texts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from io import StringIO
from typing import Any

from hangar.format.commits import CommitRecord

__all__ = ["format_bytes", "format_log", "list_history", "summary_text"]


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
    order = sorted(specs, key=lambda c: specs[c]["commit_time"], reverse=True)
    return {"head": head, "ancestors": ancestors, "specs": specs, "order": order}


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def format_log(history: dict[str, Any], branch_heads: dict[str, list[str]],
               show_time: bool, show_user: bool) -> str:  # fmt: skip
    """Hangar's log graph: ``* a=... (master) : message``, newest first."""
    out = StringIO()
    ancestors: dict[str, list[str]] = history["ancestors"]
    for cid in history["order"]:
        spec = history["specs"][cid]
        heads = branch_heads.get(cid)
        line = f"* {cid}"
        if heads:
            line += f" ({', '.join(sorted(heads))})"
        if show_time:
            t = dt.datetime.fromtimestamp(spec["commit_time"], dt.UTC)
            line += f" ({t.strftime('%d%b%Y %H:%M:%S')})"
        if show_user:
            line += f" ({spec['commit_user']})"
        line += f" : {spec['commit_message']}"
        out.write(line + "\n")
        if len(ancestors[cid]) == 2:
            out.write("|\\  \n")
    return out.getvalue()


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
