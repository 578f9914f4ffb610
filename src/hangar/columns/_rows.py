"""The fast path of ``with col:`` blocks: fixed-shape samples kept as rows of big arrays.

Inside a with-block, a flat column of fixed-shape ndarrays copies each sample
into the next row of a preallocated page (one numpy assignment) and appends
its key to a list; nothing else happens per sample. The column's index learns
the row numbers only when something reads or changes it
(:meth:`RowBuffer.sync`). When the block ends, the live rows are digested,
packed into chunks and journaled in bulk
(:meth:`hangar.staging.StagingArea.exit`). A page holds exactly one chunk's
worth of samples, so pages are packed as they are, never copied together.

A block larger than :data:`SPILL_BYTES` does not wait for its end: when the
pages it holds reach that size, the oldest is packed (``spill``) and let go,
so a with-block over a dataset larger than memory stays bounded.

A full page does not wait either: while no key of the block has been written
twice or deleted, each page that fills is handed to ``on_full``, which starts
packing it on the helper thread while the caller goes on writing
(:meth:`hangar.packing.RowPacker.start_background`). Its rows never change
after that (a key written again gets a new row), so what was packed stays
right; :meth:`pages` says which of its rows are still live.
"""

from __future__ import annotations

import array
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np

from hangar.format.manifest import Key

__all__ = ["SPILL_BYTES", "Page", "RowBuffer", "increasing_ints", "live_rows"]

#: raw bytes of rows a with-block holds per column before it packs its oldest page
SPILL_BYTES = 128 << 20


#: a page of rows: its number, its keys, its rows (2-D), and the positions of its rows still
#: the value of their key (None: all of them)
Page = tuple[int, list[Key], np.ndarray[Any, Any], "list[int] | None"]


def increasing_ints(keys: list[Key]) -> np.ndarray[Any, Any] | None:
    """``keys`` as an int64 array if they are all ints in strictly increasing order (so
    each is there once), else None.

    ``array.array`` converts in C and refuses a str (numpy would parse ``"12"``
    as 12): a third of ``np.array``'s time on a block's keys.
    """
    try:
        ints = np.frombuffer(array.array("q", keys), np.int64)  # type: ignore[type-var]
    except (TypeError, OverflowError):
        return None
    return ints if bool((ints[1:] > ints[:-1]).all()) else None


def live_rows(page: Page) -> tuple[list[Key], np.ndarray[Any, Any]]:
    """A page's keys and rows still the value of their key (all of them, uncopied, if all)."""
    _, keys, rows, live = page
    if live is None:
        return keys, rows
    return [keys[j] for j in live], rows[live]


class _Index(Protocol):
    """What rows need of a column's index (a dict, or a SegmentIndex)."""

    def __setitem__(self, key: Key, value: Any, /) -> None: ...

    def get(self, key: Key, default: Any = None, /) -> Any: ...

    def update(self, pairs: Any, /) -> None: ...


class RowBuffer:
    """Buffered fixed-shape samples of one flat ndarray column, in write order.

    Row ``i`` holds the ``i``-th sample written; ``keys[i]`` is its key. Once
    synced, the column's index maps a buffered key to its row number (an
    ``int`` >= 0), which sets it apart from stored entries and pending samples.
    """

    __slots__ = ("_cap", "_data", "_distinct", "_index", "_on_full", "_page_rows", "_pages",
                 "_row", "_slab_pages", "_spare", "_spill", "_spilled", "_synced", "dirty",
                 "dtype", "keys", "shape", "sorted_ints")  # fmt: skip

    def __init__(
        self, index: _Index, dtype: np.dtype[Any], shape: tuple[int, ...], page_rows: int, *,
        spill: Callable[[Page], None] | None = None,
        on_full: Callable[[int, list[Key], np.ndarray[Any, Any]], None] | None = None,
    ) -> None:  # fmt: skip
        """``spill(page)`` packs a page before the block ends (see :data:`SPILL_BYTES`);
        without it every row waits for the block's end. ``on_full(number, keys, rows)``
        is told of each page that fills while every key so far was written once and
        none was deleted (see the module's docs)."""
        self.dtype = dtype
        self.shape = shape
        self.keys: list[Key] = []
        self.dirty = False  # a buffered key was deleted or overwritten by a slower path
        self._index = index
        self._page_rows = max(1, page_rows)
        self._pages: list[np.ndarray[Any, Any] | None] = []
        self._data: np.ndarray[Any, Any] = np.empty((0, *shape), dtype)
        self._row = 0  # next free row of the current page
        self._cap = 0  # rows the current page can hold
        self._spare: list[np.ndarray[Any, Any]] = []  # pages of the last slab, not used yet
        self._synced = 0  # keys[:_synced] are in the index (see sync)
        self._slab_pages = 1  # pages the next slab holds
        self._spill = spill
        self._spilled = 0  # pages packed and let go (their _pages entries are None)
        self._on_full = on_full
        self._distinct: set[Key] | None = set() if on_full else None  # keys of full pages
        #: set by :meth:`pages`: the keys as an int64 array, if they are ints in increasing
        #: order and every row is live (the packer and the journal reuse it)
        self.sorted_ints: np.ndarray[Any, Any] | None = None

    def put(self, key: Key, value: np.ndarray[Any, Any]) -> None:
        """Copy ``value`` (already checked: same dtype and shape) into a new row for ``key``.

        ``FlatSampleWriter.__setitem__`` does the same inline (a Python call less per
        sample, 8% of a with-block's loop): change both together.
        """
        row = self._row
        if row == self._cap:
            row = self._grow()
        self._data[row] = value
        self._row = row + 1
        self.keys.append(key)

    def sync(self) -> None:
        """Put the rows written since the last sync in the index (``key -> row number``).

        Writes do not touch the index: the column's engine syncs before anyone
        reads or changes it (:attr:`ColumnEngine.index`), and a block that
        nobody reads never indexes its row numbers at all.
        """
        keys = self.keys
        n = len(keys)
        if self._synced != n:
            self._index.update(zip(keys[self._synced :], range(self._synced, n), strict=True))
            self._synced = n

    def _grow(self) -> int:
        """Make room for one more row; return the row to write in ``self._data``."""
        full = self._page_rows
        if self._pages and len(self._data) < full:
            # the first page starts small (most blocks are short) and grows once
            data = self._new_page()
            data[: self._row] = self._data[: self._row]
            self._pages[-1] = self._data = data
        else:
            if self._pages:
                self._page_full()
                self._spill_if_full()
                self._data = self._new_page()
            else:
                self._data = np.empty((min(full, 64), *self.shape), self.dtype)
            self._pages.append(self._data)
            self._row = 0
        self._cap = len(self._data)
        return self._row

    def _page_full(self) -> None:
        """Tell ``on_full`` of the page that just filled, while the block is clean."""
        seen = self._distinct
        if seen is None or self._on_full is None:
            return
        p = len(self._pages) - 1
        first = p * self._page_rows
        keys = self.keys[first : first + self._page_rows]
        seen.update(keys)
        if self.dirty or len(seen) != first + len(keys):
            self._distinct = None  # a key written twice or deleted: no more pages early
            return
        self._on_full(p, keys, self._data.reshape(len(keys), -1))

    def _spill_if_full(self) -> None:
        """Pack and let go of the oldest page if the pages held reach :data:`SPILL_BYTES`."""
        held = len(self._pages) - self._spilled
        if self._spill is None or held * self._data.nbytes < SPILL_BYTES:
            return
        p = self._spilled
        self.sync()  # a row is live if the index still names it (not written again since)
        self._spill(self._page(p, check=True))  # raises: the page stays, nothing changed here
        self._pages[p] = None
        self._spilled += 1

    def _page(self, p: int, check: bool) -> Page:
        """Page ``p`` (held): with the positions of its live rows if ``check`` (synced)."""
        data = self._pages[p]
        assert data is not None
        first = p * self._page_rows
        keys = self.keys[first : first + self._page_rows]
        rows = data[: len(keys)].reshape(len(keys), -1)
        if not check:
            return p, keys, rows, None
        # only rows put int row numbers in an index: entries and pending samples never equal one
        index = self._index
        live = [j for j, k in enumerate(keys) if index.get(k) == first + j]
        return p, keys, rows, None if len(live) == len(keys) else live

    def _new_page(self) -> np.ndarray[Any, Any]:
        """An empty full page, cut from a slab of pages allocated together.

        Slabs double (up to 16 pages, and a quarter of :data:`SPILL_BYTES`):
        a long block's rows land in a few large allocations, which numpy asks
        the kernel to back with huge pages (>= 4 MiB), so writing them first
        costs about half the page faults.
        """
        if not self._spare:
            full = self._page_rows
            count = self._slab_pages
            slab = np.empty((count * full, *self.shape), self.dtype)
            self._spare = [slab[i * full : (i + 1) * full] for i in range(count)]
            # a slab is freed when all its pages are: keep it well inside the spill budget
            most = max(1, SPILL_BYTES // (4 * max(slab.nbytes // count, 1)))
            self._slab_pages = min(2 * count, 16, most)
        return self._spare.pop(0)

    def row(self, i: int) -> np.ndarray[Any, Any]:
        """A copy of row ``i``."""
        page, row = divmod(i, self._page_rows)
        data = self._pages[page]
        if data is None:  # never: the index names packed rows, not spilled row numbers
            raise IndexError(f"row {i} was packed before the block ended")
        out: np.ndarray[Any, Any] = data[row].copy()
        return out

    def __len__(self) -> int:
        return len(self.keys)

    def pages(self) -> Iterator[Page]:
        """Every page held (not spilled), in order, with the positions of its live rows.

        A key written twice keeps its last row; a key deleted after it was
        written keeps none.
        """
        keys = self.keys
        self.sorted_ints = None if self.dirty else increasing_ints(keys)
        clean = self.sorted_ints is not None or (not self.dirty and len(set(keys)) == len(keys))
        if not clean:
            self.sync()
        for p, data in enumerate(self._pages):
            if data is not None and p * self._page_rows < len(self.keys):
                yield self._page(p, check=not clean)

    def live_pages(self) -> Iterator[tuple[list[Key], np.ndarray[Any, Any]]]:
        """Per page: the keys and rows (a 2-D array) still the value of their key."""
        for page in self.pages():
            keys, rows = live_rows(page)
            if keys:
                yield keys, rows

    def clear(self) -> None:
        """Forget every row (they were packed)."""
        self.__init__(  # type: ignore[misc]
            self._index, self.dtype, self.shape, self._page_rows, spill=self._spill,
            on_full=self._on_full,
        )  # fmt: skip
