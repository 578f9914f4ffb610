"""Identical samples of one with-block stored once.

When a with-block ends, its fixed-shape samples are packed page by page
(:mod:`hangar.columns._rows`). :class:`RowDedup` sees every page of one
column in turn and tells, per page, which rows are the first of their content
(packed) and which repeat an earlier row of the block (given that row's
location, no bytes stored). A repeat is recognised by its 64-bit digest and
then confirmed byte for byte, so two different samples never share a location
even if their digests collide.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

__all__ = ["DEDUP_MIN_BYTES", "DEDUP_WINDOW_BYTES", "NO_PAIRS", "RowDedup"]

#: samples smaller than this are not deduplicated: their compressed bytes cost about
#: what their repeats would, and a label column (10 values in 60k samples) would repeat
#: almost every row
DEDUP_MIN_BYTES = 128

#: raw bytes of the pages a RowDedup keeps to confirm repeats against; a repeat of a row in
#: a page it has let go of is stored again (a with-block far larger than this stays bounded)
DEDUP_WINDOW_BYTES = 128 << 20

#: no repeats: an empty array of pairs
NO_PAIRS: np.ndarray[Any, Any] = np.empty((0, 2), np.int64)
NO_PAIRS.flags.writeable = False


class RowDedup:
    """First occurrences of sample contents among the pages of one column's with-block.

    Rows are numbered across pages in the order :meth:`split` sees them.
    Digests are 8 bytes (every scheme of :mod:`hangar.format.sample_digest`);
    the first row of each digest seen so far is kept in two sorted arrays, so
    a page is split with a few numpy calls instead of a dict lookup per row.
    """

    __slots__ = ("_count", "_firsts", "_kept", "_pages", "_seen", "_starts", "_window")

    def __init__(self, window_bytes: int | None = None) -> None:
        """``window_bytes``: raw bytes of recent pages kept to confirm repeats against
        (default :data:`DEDUP_WINDOW_BYTES`)."""
        self._window = DEDUP_WINDOW_BYTES if window_bytes is None else window_bytes
        self._kept = 0  # bytes of the pages kept
        self._seen: np.ndarray[Any, Any] = np.empty(0, np.uint64)  # sorted digests
        self._firsts: np.ndarray[Any, Any] = np.empty(0, np.int64)  # number of each one's row
        self._pages: list[np.ndarray[Any, Any]] = []
        self._starts: list[int] = []  # number of each page's first row
        self._count = 0

    def split(
        self, digests: bytes, rows: np.ndarray[Any, Any]
    ) -> tuple[np.ndarray[Any, Any] | None, np.ndarray[Any, Any]]:
        """The rows of a page to pack, and the repeats: ``[row number, earlier row number]``.

        ``rows`` is a 2-D array, one sample per row, ``digests`` their
        8-byte digests, joined. Returns ``(None, no pairs)`` when every row is new (pack the
        page as it is); otherwise the positions (in this page) of the rows to
        pack, and a pair per repeated row (an ``(m, 2)`` int64 array) with the
        number of the row it repeats, which is always one of the packed rows
        of this or an earlier page.
        """
        n = len(rows)
        start = self._count
        self._forget_old(rows.nbytes)
        self._pages.append(rows)
        self._starts.append(start)
        self._kept += rows.nbytes
        self._count += n
        if not n:
            return None, NO_PAIRS
        if len(digests) != 8 * n:
            raise ValueError("RowDedup takes 8-byte digests, one per row")
        # each distinct digest of the page, and its first row in the page
        unique, first_here, inverse = np.unique(
            np.frombuffer(digests, np.uint64), return_index=True, return_inverse=True
        )
        seen, firsts = self._seen, self._firsts
        at = np.searchsorted(seen, unique)
        known = at < len(seen)
        known[known] = seen[at[known]] == unique[known]
        first = first_here + start
        first[known] = firsts[at[known]]
        fresh = ~known
        self._seen = np.insert(seen, at[fresh], unique[fresh])
        self._firsts = np.insert(firsts, at[fresh], first[fresh])
        of_row = first[inverse.reshape(-1)]  # the first row of each row's digest
        positions = np.flatnonzero(of_row != np.arange(start, start + n))
        if not len(positions):
            return None, NO_PAIRS
        earlier = of_row[positions]
        same = self._confirmed(rows, positions, earlier)
        repeat = positions[same]
        keep = np.ones(n, bool)
        keep[repeat] = False
        pairs = np.stack([repeat + start, earlier[same]], axis=1).astype(np.int64)
        return np.flatnonzero(keep), pairs

    def _forget_old(self, coming: int) -> None:
        """Let go of the oldest pages until ``coming`` more bytes fit in the window.

        Their rows stop being firsts: a later repeat of one is packed again.
        """
        dropped = False
        while self._pages and self._kept + coming > self._window:
            self._kept -= self._pages.pop(0).nbytes
            self._starts.pop(0)
            dropped = True
        if dropped:
            boundary = self._starts[0] if self._starts else self._count
            keep = self._firsts >= boundary
            self._seen, self._firsts = self._seen[keep], self._firsts[keep]

    def _confirmed(
        self,
        rows: np.ndarray[Any, Any],
        positions: np.ndarray[Any, Any],
        firsts: np.ndarray[Any, Any],
    ) -> np.ndarray[Any, Any]:
        """Which candidate repeats have exactly the bytes of their first row."""
        starts = np.asarray(self._starts)
        page_of = np.searchsorted(starts, firsts, side="right") - 1
        # candidates grouped by the page of their first row: one gather of them per page,
        # into one array compared at once
        order = np.argsort(page_of, kind="stable")
        mine = rows.take(positions[order], axis=0)
        theirs = np.empty_like(mine)
        local = firsts[order] - starts[page_of[order]]  # first rows, numbered in their pages
        bounds = np.searchsorted(page_of[order], np.arange(len(starts) + 1)).tolist()
        for p, (a, b) in enumerate(itertools.pairwise(bounds)):
            if a != b:  # rows of page p by construction: "clip" spares a bounds-checked copy
                self._pages[p].take(local[a:b], axis=0, out=theirs[a:b], mode="clip")
        # bytes, not values: 0.0 and -0.0 are equal values, different samples
        same: np.ndarray[Any, Any] = (_as_words(mine) == _as_words(theirs)).all(axis=1)
        out = np.empty_like(same)
        out[order] = same
        return out


def _as_words(rows: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The rows' bytes as unsigned integers: 8 bytes at a time where the row size allows
    (a third fewer passes over memory than comparing byte by byte)."""
    raw = np.ascontiguousarray(rows).reshape(len(rows), -1).view(np.uint8)
    return raw.view(np.uint64) if raw.shape[1] % 8 == 0 else raw
