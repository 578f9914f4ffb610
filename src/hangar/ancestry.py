"""Ancestry in the commit graph: merge bases and "is this commit in that history".

Walks read commit records one at a time through a ``read`` function (the
repository caches them), newest first, and stop as soon as the answer is
known: their cost follows the commits since two histories diverged, not the
length of history.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Callable

from hangar.format.commits import CommitRecord

__all__ = ["common_ancestor", "merge_bases"]

_ONE, _TWO, _STALE = 1, 2, 4


def merge_bases(a: str, b: str, read: Callable[[str], CommitRecord]) -> list[str]:
    """Common ancestors of ``a`` and ``b`` that no other common ancestor descends from.

    Walks both histories at once, newest commit first, marking what each
    side reaches, and stops as soon as every commit still queued was reached
    from both sides below a base already found (git's merge-base walk): the
    cost follows the commits since the two diverged, not the whole history.
    Commit times only order the walk; marks that arrive late (clocks that
    disagree) are pushed on again, and bases one of which descends from
    another are reduced at the end.
    """
    if a == b:
        return [a]
    flags: dict[str, int] = {a: _ONE, b: _TWO}
    heap: list[tuple[float, str]] = []

    def push(cid: str) -> None:
        heapq.heappush(heap, (-_when(read(cid)), cid))

    push(a)
    push(b)
    found: list[str] = []
    while any(not flags[c] & _STALE for _, c in heap):
        _, cid = heapq.heappop(heap)
        mark = flags[cid] & (_ONE | _TWO | _STALE)
        if mark == _ONE | _TWO:
            if cid not in found:
                found.append(cid)
            mark |= _STALE
        for p in read(cid).parents:
            if flags.get(p, 0) & mark == mark:
                continue
            flags[p] = flags.get(p, 0) | mark
            push(p)
    if len(found) <= 1:
        return found
    # criss-cross histories: keep the bases no other base descends from
    return [c for c in found if not any(o != c and _reaches(o, c, read) for o in found)]


def _when(rec: CommitRecord) -> float:
    """A commit's time in seconds since the epoch."""
    return dt.datetime.fromisoformat(rec.time.replace("Z", "+00:00")).timestamp()


def _reaches(descendant: str, ancestor: str, read: Callable[[str], CommitRecord]) -> bool:
    """Whether ``ancestor`` is in ``descendant``'s history (walks no further back than it)."""
    oldest = _when(read(ancestor))
    seen: set[str] = set()
    todo = [descendant]
    while todo:
        cid = todo.pop()
        if cid == ancestor:
            return True
        if cid in seen:
            continue
        seen.add(cid)
        rec = read(cid)
        if _when(rec) >= oldest:
            todo.extend(rec.parents)
    return False


def common_ancestor(a: str, b: str, read: Callable[[str], CommitRecord]) -> str | None:
    """The merge base of ``a`` and ``b`` (see :func:`merge_bases`).

    When ``a`` is in ``b``'s history it is ``a`` itself (and the other way
    round). Criss-cross histories can have several merge bases: the newest
    is taken (then the smallest id). None when the two share no history.
    """
    bases = merge_bases(a, b, read)
    if not bases:
        return None
    return max(bases, key=lambda c: (read(c).time, _neg(c)))


def _neg(cid: str) -> tuple[int, ...]:
    """Sorts ids in reverse, so that max() picks the smallest id on a tie."""
    return tuple(-ord(ch) for ch in cid)
