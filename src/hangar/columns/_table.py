"""Samples packed by this checkout's with-blocks, kept as columns until a commit.

When a with-block ends, the packed rows of a flat fixed-shape ndarray column
are added here as arrays (a :class:`SegmentLocations`: keys, digests, chunk
and block of each row) and the column's index maps each key to ``~row``, a
negative int, from the first time anything looks at it
(:meth:`~hangar.columns._engine.ColumnEngine.defer`). (A with-block's
buffered rows are ints >= 0; entries and pending samples are objects.) An
:class:`Entry` is made only for a key that is read; a commit gathers a
bucket's rows from the arrays (or takes the table's rows as they are:
:func:`packed_locations`) and encodes its segments without an object per
sample (:func:`hangar.format.manifest.encode_locations`).
"""

from __future__ import annotations

import bisect
import itertools
from operator import itemgetter
from typing import Any, TypeGuard

import numpy as np

from hangar.format.chunks import Run
from hangar.format.manifest import Entry, Key, SegmentLocations

__all__ = [
    "LOCATION_COLUMNS",
    "StagedTable",
    "batch_from_runs",
    "bucket_locations",
    "is_packed",
    "packed_locations",
    "run_columns",
]


def is_packed(slot: object) -> TypeGuard[int]:
    """True if an index slot is a row of the column's :class:`StagedTable`."""
    return type(slot) is int and slot < 0


class StagedTable:
    """The packed samples of one column, in the order with-blocks packed them.

    Rows are numbered from 0 across batches (one batch per with-block); a
    key's slot in the index is ``~row``.
    """

    __slots__ = ("_batches", "_starts", "_whole", "count")

    def __init__(self) -> None:
        self._batches: list[SegmentLocations] = []
        self._starts: list[int] = []
        self._whole: SegmentLocations | None = None
        self.count = 0

    def add(self, batch: SegmentLocations) -> range:
        """Append a batch (with its digests); return the slots of its rows, in order."""
        if batch.digests is None or not batch.fixed_shape:
            raise ValueError("a staged batch needs the digests of fixed-shape rows")
        start = self.count
        self._batches.append(batch)
        self._starts.append(start)
        self.count += len(batch)
        self._whole = None
        return range(~start, ~self.count, -1)

    def _find(self, row: int) -> tuple[SegmentLocations, int]:
        b = bisect.bisect_right(self._starts, row) - 1
        return self._batches[b], row - self._starts[b]

    def entry(self, slot: int) -> Entry:
        """The manifest entry of a packed slot (``~row``)."""
        batch, row = self._find(~slot)
        return batch.entry(row)

    def digest(self, slot: int) -> bytes:
        """The content digest of a packed slot's sample."""
        batch, row = self._find(~slot)
        digests = batch.digests
        assert digests is not None
        return digests[8 * row : 8 * row + 8]

    def entries(self, slots: list[Any]) -> list[Any]:
        """``slots`` with each packed slot replaced by its entry (others unchanged)."""
        entry = self.entry
        return [entry(s) if is_packed(s) else s for s in slots]

    def whole(self) -> SegmentLocations:
        """Every row, as one set of arrays (chunk and check lists without repeats)."""
        if self._whole is None:
            self._whole = _concat(self._batches)
        return self._whole

    def clear(self) -> None:
        """Forget every row (they were committed)."""
        self.__init__()  # type: ignore[misc]


def _unified(lists: list[list[str]], indexes: list[Any]) -> tuple[list[str], Any]:
    """One list of distinct names, and every batch's indexes into it, concatenated."""
    if lists and all(b[: len(a)] == a for a, b in itertools.pairwise(lists)):
        # each list goes on from the one before (one with-block's pages name their chunks
        # from one growing list): the last is every name, and every index stays as it is
        return list(lists[-1]), np.concatenate(indexes)
    position: dict[str, int] = {}
    out = []
    for names, index in zip(lists, indexes, strict=True):
        remap = np.fromiter(
            (position.setdefault(n, len(position)) for n in names), np.int64, len(names)
        )
        out.append(remap[index] if len(names) else np.empty(0, np.int64))
    return list(position), np.concatenate(out) if out else np.empty(0, np.int64)


def _concat(batches: list[SegmentLocations]) -> SegmentLocations:
    if len(batches) == 1:
        return batches[0]
    chunks, chunk_index = _unified([b.chunks for b in batches], [b.chunk_index for b in batches])
    checks, check_index = _unified(
        [b.block_checks for b in batches], [b.check_index for b in batches]
    )

    def cat(name: str) -> Any:
        return np.concatenate([getattr(b, name) for b in batches]) if batches else np.empty(0)

    keys: list[Key] = []
    for b in batches:
        keys.extend(b.keys)
    return SegmentLocations(
        keys=keys,
        chunks=chunks,
        chunk_index=chunk_index,
        block_offset=cat("block_offset"),
        block_size=cat("block_size"),
        block_checks=checks,
        check_index=check_index,
        item_offset=cat("item_offset"),
        item_nbytes=cat("item_nbytes"),
        fixed_shape=True,
        digests=b"".join(b.digests or b"" for b in batches),
    )


LOCATION_COLUMNS = ("chunk_index", "block_offset", "block_size", "check_index", "item_offset",
                     "item_nbytes")  # fmt: skip


def batch_from_runs(
    keys: list[Key], digests: bytes, runs: list[Run], same: Any = None
) -> SegmentLocations:
    """The locations of packed keys as arrays: ``runs`` cover the keys not in ``same``.

    ``same`` holds pairs ``(i, j)`` (any sequence, or an ``(m, 2)`` array):
    key ``i`` is stored where the earlier key ``j`` is, and ``j`` is not a
    repeat itself. The runs locate the other keys, in order. Raises
    ValueError if the runs, pairs, keys and digests do not fit together.
    """
    n = len(keys)
    if len(digests) != 8 * n:
        raise ValueError(f"{len(digests)} bytes of digests for {n} keys")
    pairs = np.asarray(same if same is not None and len(same) else np.empty((0, 2)), np.int64)
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise ValueError("repeats must be pairs")
    fresh = np.ones(n, bool)
    if len(pairs):
        i, j = pairs[:, 0], pairs[:, 1]
        if (j < 0).any() or (i <= j).any() or (i >= n).any():
            raise ValueError("a repeat must name an earlier key")
        fresh[i] = False
        if int(n - fresh.sum()) != len(pairs) or not fresh[j].all():
            raise ValueError("a key repeats twice, or repeats a repeat")
    covered = run_columns(runs, {}, {})
    if len(covered["item_offset"]) != int(fresh.sum()):
        raise ValueError("the runs do not cover the keys")
    out = {name: np.empty(n, np.int64) for name in LOCATION_COLUMNS}
    at = np.flatnonzero(fresh)
    for name, values in covered.items():
        out[name][at] = values
    if len(pairs):
        for column in out.values():
            column[pairs[:, 0]] = column[pairs[:, 1]]
    return SegmentLocations(
        keys=keys, chunks=list(covered.chunks), block_checks=list(covered.checks),
        fixed_shape=True, digests=digests, **out,
    )  # fmt: skip


class RunColumns(dict[str, Any]):
    """Location columns of the samples some runs cover, and the names their indexes use."""

    chunks: dict[str, int]
    checks: dict[str, int]


def run_columns(runs: list[Run], chunks: dict[str, int], checks: dict[str, int]) -> RunColumns:
    """The location columns (``LOCATION_COLUMNS``) of every sample ``runs`` cover, in order.

    Chunk and check names are numbered in ``chunks`` and ``checks``, which
    grow with names not in them yet (a column's pages share them). Raises
    ValueError for a run with a negative count.
    """
    counts = np.array([r[5] for r in runs], np.int64)
    if (counts < 0).any():
        raise ValueError("a run with a negative count")
    per_run = {
        "chunk_index": [chunks.setdefault(r[0], len(chunks)) for r in runs],
        "block_offset": [r[1] for r in runs],
        "block_size": [r[2] for r in runs],
        "check_index": [checks.setdefault(r[3], len(checks)) for r in runs],
        "item_nbytes": [r[6] for r in runs],
    }
    out = RunColumns(
        {name: np.repeat(np.array(values, np.int64), counts) for name, values in per_run.items()}
    )
    within = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(
        np.cumsum(counts) - counts, counts
    )
    item_offset = np.repeat(np.array([r[4] for r in runs], np.int64), counts)
    out["item_offset"] = item_offset + within * out["item_nbytes"]
    out.chunks, out.checks = chunks, checks
    return out


def bucket_locations(
    keys: list[Key], slots: list[Any], table: StagedTable
) -> SegmentLocations | None:
    """The rows of a flat bucket as arrays: ``keys`` (sorted) and their slots.

    Slots are packed rows of ``table`` (``~row``) or entries (stored before,
    or replayed from the journal); the result is in the order of ``keys``.
    None if an entry records its own shape (arrays hold fixed-shape rows only):
    the caller then encodes the rows as entries.
    """
    n = len(keys)
    try:  # only packed rows: the common case after a with-block
        rows = ~np.array(slots, np.int64)
        packed_at = None
    except (TypeError, ValueError):
        packed_at = np.fromiter((type(s) is int for s in slots), bool, n)
        rows = ~np.array([s for s in slots if type(s) is int], np.int64)
    if packed_at is None:
        return packed_locations(keys, rows, table)
    whole = table.whole()
    chunks, checks = list(whole.chunks), list(whole.block_checks)
    digests, columns = _row_columns(whole, rows)
    entries: list[Entry] = [s for s in slots if type(s) is not int]
    if any(e[2] is not None for e in entries):
        return None
    digests, columns = _merge_entries(packed_at, digests, columns, entries, chunks, checks)
    return SegmentLocations(
        keys=keys, chunks=chunks, block_checks=checks, fixed_shape=True, digests=digests,
        **columns,
    )  # fmt: skip


def packed_locations(
    keys: list[Key], rows: Any, table: StagedTable, int_keys: Any = None
) -> SegmentLocations:
    """Rows ``rows`` of ``table`` (an int array), under ``keys`` (sorted), as arrays.

    ``int_keys``: the keys as an int64 array, if they are all ints (kept for encoding).
    """
    whole = table.whole()
    digests, columns = _row_columns(whole, rows)
    return SegmentLocations(
        keys=keys, chunks=list(whole.chunks), block_checks=list(whole.block_checks),
        fixed_shape=True, digests=digests, int_keys=int_keys, **columns,
    )  # fmt: skip


def _row_columns(whole: SegmentLocations, rows: Any) -> tuple[bytes, dict[str, Any]]:
    """The digests and location columns of rows ``rows`` of ``whole``."""
    columns = {name: getattr(whole, name)[rows] for name in LOCATION_COLUMNS}
    return np.frombuffer(whole.digests or b"", np.uint64)[rows].tobytes(), columns


def _merge_entries(  # noqa: PLR0917
    packed_at: Any,
    digests: bytes,
    columns: dict[str, Any],
    entries: list[Entry],
    chunks: list[str],
    checks: list[str],
) -> tuple[bytes, dict[str, Any]]:
    """Columns of packed rows (at ``packed_at``) and entries (elsewhere), interleaved.

    ``chunks`` and ``checks`` grow by the names the entries add.
    """
    n = len(packed_at)
    locs = list(map(itemgetter(1), entries))
    chunk_pos = {c: i for i, c in enumerate(chunks)}
    check_pos = {c: i for i, c in enumerate(checks)}
    from_entries = {
        "chunk_index": [chunk_pos.setdefault(loc[0], len(chunk_pos)) for loc in locs],
        "block_offset": list(map(itemgetter(1), locs)),
        "block_size": list(map(itemgetter(2), locs)),
        "check_index": [check_pos.setdefault(loc[3], len(check_pos)) for loc in locs],
        "item_offset": list(map(itemgetter(4), locs)),
        "item_nbytes": list(map(itemgetter(5), locs)),
    }
    chunks[:] = list(chunk_pos)
    checks[:] = list(check_pos)
    out = {}
    for name, packed in columns.items():
        column = np.empty(n, np.int64)
        column[packed_at] = packed
        column[~packed_at] = from_entries[name]
        out[name] = column
    merged = bytearray(8 * n)
    view = np.frombuffer(merged, np.uint64)
    view[packed_at] = np.frombuffer(digests, np.uint64)
    view[~packed_at] = np.frombuffer(b"".join(map(itemgetter(0), entries)), np.uint64)
    return bytes(merged), out
