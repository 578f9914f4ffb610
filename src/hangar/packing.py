"""Packing a writer's buffered samples into chunks, and indexing them where they landed.

When a with-block ends (or a commit packs what was written outside one), the
staging area hands its buffered samples here: fixed-shape rows
(:func:`pack_rows`, the fast path, with repeats stored once) and pending
samples of any kind (:func:`pack_pending`). Chunks go to the store through
``store_chunk(digest, data)``; each column's index then points at the
samples' locations. Journaling what was packed stays with the staging area.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass
from typing import Any

import numpy as np

from hangar._helper import helper_thread, submit_or_none
from hangar.columns._dedup import DEDUP_MIN_BYTES, NO_PAIRS, RowDedup
from hangar.columns._engine import ColumnEngine, Pending
from hangar.columns._rows import Page, RowBuffer, live_rows
from hangar.columns._table import LOCATION_COLUMNS, run_columns
from hangar.exceptions import HangarError
from hangar.format.chunks import (
    BLOCKS_PER_CALL,
    ChunkPacker,
    Run,
    SampleLocation,
    UniformPacking,
    expand_runs,
    pack_uniform,
    start_uniform,
)
from hangar.format.manifest import Entry, Key, SegmentLocations
from hangar.format.sample_digest import SampleDigest

__all__ = ["Buffered", "PackedRows", "RowPacker", "is_live", "pack_pending", "pack_rows"]

#: a sample written inside a with-block through the general path
Buffered = tuple[ColumnEngine, Key, "Key | None", Pending]
#: stores one chunk under its digest (unless it is there already)
StoreChunk = Callable[[str, bytes], None]


@dataclass(frozen=True, slots=True)
class PackedRows:
    """A column's rows as packed: what its journal op records.

    ``digests`` are the keys' digests (8 bytes each, in order); ``runs``
    locate the packed keys in order; ``same`` is an ``(m, 2)`` int64 array of
    pairs ``i, j``: repeated key ``i`` is stored where the earlier key ``j`` is.
    """

    keys: list[Key]
    digests: bytes
    runs: list[Run]
    same: np.ndarray[Any, Any]
    #: the keys as an int64 array, where the with-block's end made one (see RowBuffer.pages)
    int_keys: np.ndarray[Any, Any] | None = None


@dataclass(frozen=True, slots=True)
class _Page:
    """A page started by :meth:`RowPacker.start_page`: digested, its repeats found,
    its other rows being encoded."""

    keys: list[Key]
    digests: bytes
    pairs: np.ndarray[Any, Any]
    packing: UniformPacking


class RowPacker:
    """Packs one column's with-block rows, page by page, into chunks and its staged table.

    Each page added is digested, checked for repeats of earlier rows of the
    block (:class:`RowDedup`), packed into chunks (one chunk per page), and
    added to the column's :class:`~hangar.columns._table.StagedTable` as one
    batch; the index then points its keys there. Pages come from the block's
    end, or during the block when its buffer outgrows its budget
    (:mod:`hangar.columns._rows`). :meth:`finish` returns what the journal op
    records for all of them.

    A page that fills during the block may be started early on the helper
    thread (:meth:`start_background`): digested, deduplicated and encoded
    while the caller's loop goes on, then finished (stored and indexed) by the
    caller at the block's end, or when the buffer spills. Pages are seen by
    the repeat finder in order: the caller starts a page itself only once
    every page started early is done.
    """

    def __init__(
        self, engine: ColumnEngine, digest: SampleDigest, store_chunk: StoreChunk,
        settle: Callable[[], None] = lambda: None,
    ) -> None:  # fmt: skip
        """``store_chunk`` may only start a chunk's write; ``settle()`` waits for those
        started (an early page's keys are readable as soon as :meth:`add` returns)."""
        self.engine = engine
        self._digest = digest
        self._store_chunk = store_chunk
        self._settle = settle
        big = engine.schema.sample_nbytes >= DEDUP_MIN_BYTES
        self._dedup = RowDedup() if big else None
        self._keys: list[Key] = []
        self._digests: list[bytes] = []
        self._runs: list[Run] = []
        self._same: list[np.ndarray[Any, Any]] = [NO_PAIRS]
        self._chunks: dict[str, int] = {}  # names every page's batch numbers its chunks by
        self._checks: dict[str, int] = {}
        # location columns of every row packed so far (column j of row i at [j, i]), with
        # room to grow: a repeat of any earlier row is one gather from here
        self._locations: np.ndarray[Any, Any] = np.empty((len(LOCATION_COLUMNS), 0), np.int64)
        self._starts: list[int] = []  # number of each page's first row
        self._slots: list[int] = []  # the index slot of each page's first row
        self._early = 0  # rows packed before the block's end (they may be dead by then)
        # the block's keys as an int64 array, when they are increasing ints all live: the
        # keys of the pages finished from now on, in order, follow on from self._keys
        self._int_keys: np.ndarray[Any, Any] | None = None
        self._background: dict[int, Future[_Page]] = {}  # pages started early, by number
        self._background_error: BaseException | None = None
        self.failed: BaseException | None = None

    def add(self, keys: list[Key], data: np.ndarray[Any, Any], *, early: bool = False) -> None:
        """Pack one page: ``keys`` and their rows (a 2-D array), all live.

        ``early``: the block has not ended (its buffer outgrew its budget), so
        a key of this page may still be written again or deleted in the block
        (:meth:`fixups`).
        """
        self.finish_page(self.start_page(keys, data), early=early)

    def start_page(
        self, keys: list[Key], data: np.ndarray[Any, Any], *, background: bool = False
    ) -> _Page:
        """Digest a page, find its repeats and start encoding the rest (on the helper thread,
        which goes on while the caller starts the next page); :meth:`finish_page` next.

        ``background``: this runs on the helper thread (:meth:`start_background`),
        which encodes the page in one call next.
        """
        self._check_usable()
        try:
            digests = self._digest.rows(data)
            fresh, pairs = self._dedup.split(digests, data) if self._dedup else (None, NO_PAIRS)
            schema = self.engine.schema
            packing = start_uniform(
                data, self.engine.codec, schema.block_bytes, schema.chunk_bytes,
                helper=None if background else helper_thread(), take=fresh,
                blocks_per_call=None if background else BLOCKS_PER_CALL,
            )  # fmt: skip
        except BaseException as exc:
            self.failed = exc  # the repeat finder saw the page: it cannot be added again
            raise
        return _Page(keys, digests, pairs, packing)

    def start_background(self, number: int, keys: list[Key], data: np.ndarray[Any, Any]) -> None:
        """Start page ``number`` on the helper thread (none: leave it for later).

        Its rows must not change any more; its keys may still be written again
        or deleted in the block (``live`` when it is finished).
        """
        helper = helper_thread()
        if helper is None or self.failed is not None:
            return
        started = submit_or_none(helper, self._start_encoded, keys, data)
        if started is not None:  # else the interpreter is shutting down: the block's end packs it
            self._background[number] = started

    def _start_encoded(self, keys: list[Key], data: np.ndarray[Any, Any]) -> _Page:
        """:meth:`start_page`, encoded at once in one call (on the helper thread)."""
        try:
            page = self.start_page(keys, data, background=True)
            page.packing.encode()
        except BaseException as exc:
            self.failed = self.failed or exc
            self._background_error = self._background_error or exc
            raise
        return page

    def started(self, number: int) -> bool:
        """True if page ``number`` was started early and is not finished yet."""
        return number in self._background

    def finish_started(self, number: int, live: list[int] | None, *, early: bool) -> None:
        """Finish page ``number`` started early; ``live``: positions of its rows still the
        value of their key (None: all). Its other rows are stored but not indexed."""
        page = self._background.pop(number).result()  # raises what starting it raised
        self._raise_background_error()
        self.finish_page(page, early=early or live is not None, live=live)

    def settle_background(self) -> None:
        """Wait for every page started early to be ready (before the caller starts one)."""
        wait(self._background.values())
        self._raise_background_error()

    def _raise_background_error(self) -> None:
        """Raise what starting a page early raised, as it was raised (the first one)."""
        if self._background_error is not None:
            raise self._background_error

    def abandon_background(self) -> None:
        """Wait for the pages started early and drop them (the block failed)."""
        background, self._background = self._background, {}
        wait(background.values())
        if background:
            self.failed = self.failed or HangarError("a page of this with-block was not packed")

    def spill(self, page: Page) -> None:
        """Pack a page before the block ends (its buffer outgrew its budget): finish it if it
        was started early, else pack its live rows now."""
        number, _, _, live = page
        if number in self._background:
            self.finish_started(number, live, early=True)
            return
        self.settle_background()
        keys, data = live_rows(page)
        if keys:
            self.add(keys, data, early=True)

    def finish_page(
        self, page: _Page, *, early: bool = False, live: list[int] | None = None
    ) -> None:
        """Store a started page's chunks and point its keys at them (those at ``live``
        positions only, if given)."""
        self._check_usable()
        try:
            self._finish(page, early, live)
        except BaseException as exc:
            self.failed = exc
            raise

    def abandon(self, page: _Page) -> None:
        """Stop a started page that will not be finished (an error elsewhere)."""
        page.packing.abandon()
        self.failed = self.failed or HangarError("a page of this with-block was not packed")

    def _check_usable(self) -> None:
        if self.failed is not None:
            raise HangarError(
                f"column {self.engine.name!r}: packing this with-block's samples failed "
                f"earlier ({self.failed!r}); its writes are not stored"
            ) from self.failed

    def _finish(self, page: _Page, early: bool, live: list[int] | None) -> None:
        engine = self.engine
        keys, digests, pairs = page.keys, page.digests, page.pairs
        n = len(keys)
        start = len(self._keys)
        runs = page.packing.finish(self._store_chunk)
        if early:
            self._settle()
        columns = self._page_columns(n, start, runs, pairs)
        batch = SegmentLocations(
            keys=keys, chunks=list(self._chunks), block_checks=list(self._checks),
            fixed_shape=True, digests=digests, **dict(zip(LOCATION_COLUMNS, columns, strict=True)),
        )  # fmt: skip
        self._keys.extend(keys)
        self._digests.append(digests)
        self._runs.extend(runs)
        self._same.append(pairs)
        self._starts.append(start)
        slots = engine.table.add(batch)
        self._slots.append(slots.start)
        indexed: list[Key] = keys
        at: Sequence[int] = slots
        if live is not None:  # the others were written again or deleted since it was started
            indexed, at = [keys[j] for j in live], [slots[j] for j in live]
        if early:  # the block goes on: its index must say where these keys are now
            self._early = len(self._keys)
            engine.index.update(zip(indexed, at, strict=True))
            engine.changed.update(keys)
        else:  # the block's end: indexed when someone looks (a commit may never need to)
            ints = self._int_keys
            engine.defer(indexed, at, keys, None if ints is None else ints[start : start + n])

    def _page_columns(
        self, n: int, start: int, runs: list[Run], pairs: np.ndarray[Any, Any]
    ) -> np.ndarray[Any, Any]:
        """Location columns of a page's rows, one row of a 2-D array each (in the order of
        ``LOCATION_COLUMNS``): packed rows from ``runs``, repeats copied.

        They are written in place in the block's array of locations, so that a
        repeat of a row of any earlier page is copied with the others.
        """
        if start + n > self._locations.shape[1]:  # grow: earlier pages' views keep the old one
            grown = np.empty((len(LOCATION_COLUMNS), max(2 * (start + n), 1024)), np.int64)
            grown[:, :start] = self._locations[:, :start]
            self._locations = grown
        out = self._locations[:, start : start + n]
        packed = run_columns(runs, self._chunks, self._checks)
        columns = np.stack([packed[name] for name in LOCATION_COLUMNS])
        if not len(pairs):
            out[:] = columns
            return out
        here = pairs[:, 0] - start  # the page's repeated rows
        fresh = np.ones(n, bool)
        fresh[here] = False
        out[:, fresh] = columns
        # their first rows are always packed rows: of this page (just written) or an earlier one
        out[:, here] = self._locations[:, pairs[:, 1]]
        return out

    def fixups(self) -> list[list[Any]]:
        """Journal ops that put right the keys of early pages changed after they were packed.

        The block's journal entry lists its deletes, then its other samples,
        then every packed row in order (:meth:`finish`); a key packed early and
        deleted, or written through the general path, later in the block needs
        one more op after those: a ``del``, or a ``set`` at its location.
        """
        if not self._early:
            return []
        name = self.engine.name
        last = dict(zip(self._keys, range(len(self._keys)), strict=True))
        index = self.engine.index
        ops: list[list[Any]] = []
        for key in dict.fromkeys(self._keys[: self._early]):
            row = last[key]
            p = bisect.bisect_right(self._starts, row) - 1
            have = index.get(key)
            if have == self._slots[p] - (row - self._starts[p]):
                continue  # its last packed row is its value: the op order says so
            if have is None:
                ops.append(["del", name, key, None])
                continue
            entry = self.engine.table.entry(have) if isinstance(have, int) else have
            shape = None if entry.shape is None else list(entry.shape)
            ops.append(["set", name, key, None, entry.digest.hex(), shape,
                        list(entry.location), None])  # fmt: skip
        return ops

    def use_int_keys(self, ints: np.ndarray[Any, Any] | None) -> None:
        """The block's keys as an int64 array (all of them, in order, every row live), or
        None: pages finished from now on and :meth:`finish` pass their part on."""
        self._int_keys = ints if ints is None or len(ints) >= len(self._keys) else None

    def finish(self) -> PackedRows:
        """What the pages added come to, for the block's journal op."""
        ints = self._int_keys
        return PackedRows(
            self._keys, b"".join(self._digests), self._runs, np.concatenate(self._same),
            ints if ints is not None and len(ints) == len(self._keys) else None,
        )  # fmt: skip


def pack_rows(rows: RowBuffer, packer: RowPacker) -> PackedRows:
    """Pack the rows still buffered at a with-block's end and return the whole block's.

    Pages started early are finished; the others are digested and
    deduplicated here while the helper encodes the one before. The buffer is
    cleared first, so row numbers nobody indexed never are.
    """
    pages = list(rows.pages())
    packer.use_int_keys(rows.sorted_ints)
    rows.clear()
    started: _Page | None = None
    try:
        for page in pages:
            number, _, _, live = page
            if packer.started(number):  # those come first: pages fill in order
                packer.finish_started(number, live, early=False)
                continue
            packer.settle_background()
            keys, data = live_rows(page)
            if not keys:
                continue
            # this page is digested and deduplicated while the helper encodes the last one
            done, started = started, packer.start_page(keys, data)
            if done is not None:
                packer.finish_page(done)
        if started is not None:
            done, started = started, None
            packer.finish_page(done)
    finally:
        if started is not None:  # an error: stop the page under way
            packer.abandon(started)
        packer.abandon_background()  # an error: nothing left running (else there is none)
    return packer.finish()


def pack_pending(
    items: list[Buffered], store_chunk: StoreChunk
) -> list[tuple[ColumnEngine, list[Buffered], list[SampleLocation]]]:
    """Pack pending samples into chunks and swap them for entries in their columns.

    Returns, per column, its items and their locations, in write order.
    """
    groups: dict[str, list[Buffered]] = {}
    for item in items:
        groups.setdefault(item[0].name, []).append(item)
    out = []
    for group in groups.values():
        engine = group[0][0]
        schema = engine.schema
        arrays = [it[3].array for it in group]
        size = arrays[0].nbytes
        if all(a.nbytes == size for a in arrays):
            stacked = np.stack([a.reshape(-1) for a in arrays])
            locs = expand_runs(pack_uniform(stacked, engine.codec,
                                            schema.block_bytes, schema.chunk_bytes,
                                            store_chunk, helper=helper_thread()))  # fmt: skip
        else:
            packer = ChunkPacker(engine.codec.encode, schema.block_bytes,
                                 schema.chunk_bytes, store_chunk)  # fmt: skip
            for n, a in enumerate(arrays):
                packer.add(n, a.reshape(-1))
            packer.seal()
            placed = dict(packer.take_sealed())
            locs = [placed[n] for n in range(len(arrays))]
        _install(engine, group, locs)
        out.append((engine, group, locs))
    return out


def _install(engine: ColumnEngine, group: list[Buffered], locs: list[SampleLocation]) -> None:
    """Replace the pending samples of ``group`` (all live) by entries at their locations."""
    new = tuple.__new__
    entries = [
        new(Entry, (it[3].digest, loc, it[3].shape)) for it, loc in zip(group, locs, strict=True)
    ]
    index = engine.index
    if not engine.nested:
        index.update(zip([it[1] for it in group], entries, strict=True))
    else:
        for (_, key, subkey, _p), entry in zip(group, entries, strict=True):
            index[key][subkey] = entry


def is_live(item: Buffered) -> bool:
    """True if a buffered sample is still the value of its key (not overwritten, not deleted)."""
    engine, key, subkey, pending = item
    index = engine.index
    if engine.nested:
        subs = index.get(key)
        return subs is not None and subs.get(subkey) is pending
    return index.get(key) is pending
