"""Columnar scans: ``items()`` of a fixed-shape column with nothing staged.

A scan of a committed, flat, fixed-shape ndarray column needs no per-sample
index entry: its manifest segments are decoded into arrays of locations
(:func:`hangar.format.manifest.decode_locations`), every chunk is read once
with all the blocks the scan needs from it and decoded by worker threads into
one array of rows per chunk (an arena, kept while later segments need it), and
each segment's samples are gathered into one array with one gather per arena
(not per block: a segment whose repeats point into earlier chunks touches
hundreds of blocks). The caller gets one row of that array per key (each row
its own sample: changing it changes nothing else).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from hangar.exceptions import CorruptionError
from hangar.format.chunks import SampleLocation
from hangar.format.manifest import Key, SegmentLocations, decode_locations
from hangar.format.names import manifest_key

if TYPE_CHECKING:
    from hangar.columns._engine import ColumnEngine

__all__ = ["scan_fixed", "scannable"]

_READERS = 8  # segments read at once
_DECODERS = 2  # threads reading and decoding chunks
_AHEAD = 4  # chunks read and decoded ahead of the gathering, at most
_OFFSET_BITS = 40  # a block is named by chunk number << 40 | block offset
_ARENA_BYTES = 256 << 20  # decoded chunks a scan keeps for later segments, at most


def scannable(engine: ColumnEngine) -> bool:
    """True if ``engine``'s samples can be scanned column-wise: nothing staged, flat, fixed."""
    schema = engine.schema
    return (
        not engine.touched()
        and not engine.unpacked
        and schema.column_type == "ndarray"
        and schema.column_layout == "flat"
        and not schema.variable_shape
        and schema.sample_nbytes > 0
    )


def scan_fixed(engine: ColumnEngine) -> Iterator[tuple[list[Key], Any]]:
    """Per segment, in key order: its keys and their samples (one row each).

    Segments whose entries the column's index already holds (a key was read
    from them) are read from those entries; the others are read column-wise.
    """
    segments = engine.base_segments
    if not segments:
        return
    loaded = dict(engine.index.loaded())
    decoded: dict[int, SegmentLocations] = engine.index.viewed()
    todo = [i for i in range(len(segments)) if i not in loaded and i not in decoded]
    store = engine.store
    if todo:
        with ThreadPoolExecutor(min(_READERS, len(todo))) as pool:
            datas = pool.map(lambda i: store.get(manifest_key(segments[i].digest)), todo)
            for i, data in zip(todo, datas, strict=True):
                decoded[i] = decode_locations(data, segments[i].digest)
    schema = engine.schema
    shape = tuple(schema.shape or ())
    per_row = schema.sample_nbytes
    plans = {i: _plan(seg, per_row) for i, seg in decoded.items()}
    with ThreadPoolExecutor(_DECODERS) as pool:
        chunks = _Chunks(engine, plans, pool, shape)
        for i in range(len(segments)):
            if i in loaded:
                bucket = loaded[i]
                yield list(bucket), list(engine.read_many(list(bucket.values())))
                continue
            seg, plan = decoded.pop(i), plans.pop(i)
            sources: list[np.ndarray[Any, Any]] = []  # arenas and blocks, as rows
            numbered: dict[int, int] = {}  # id of a source -> its number
            block_source = np.empty(len(plan.blocks), np.int64)
            block_first = np.empty(len(plan.blocks), np.int64)  # its first row there
            for b, block in enumerate(plan.blocks):
                source, first = chunks.rows_of(block)
                n = numbered.get(id(source))
                if n is None:
                    n = numbered[id(source)] = len(sources)
                    sources.append(source)
                block_source[b], block_first[b] = n, first
            yield seg.keys, _gather(sources, block_source[plan.block_of],
                                    block_first[plan.block_of] + plan.row_in_block)  # fmt: skip
            chunks.done_with(i)


class _Chunks:
    """The chunks a scan reads: each once, for every block the scan needs of it,
    decoded by worker threads a few chunks ahead of the gathering into one array
    per chunk (an arena), kept until the last segment that needs the chunk."""

    def __init__(self, engine: ColumnEngine, plans: dict[int, _Plan], pool: Executor,
                 shape: tuple[int, ...]) -> None:  # fmt: skip
        self._engine = engine
        self._pool = pool
        self._shape = shape
        self._wanted: dict[str, set[tuple[int, int, str]]] = {}
        self._last_use: dict[str, int] = {}
        for i, plan in plans.items():
            for chunk, offset, size, check in plan.blocks:
                self._wanted.setdefault(chunk, set()).add((offset, size, check))
                self._last_use[chunk] = i
        self._ahead = iter(list(self._wanted))
        self._coming: dict[str, Future[_Arena]] = {}
        self._arenas: dict[str, _Arena] = {}
        self._held = 0  # bytes of the arenas kept
        self._fill()

    def _submit(self, chunk: str) -> None:
        cache = self._engine.cache
        blocks = {x for x in self._wanted.pop(chunk) if cache.get((chunk, x[0])) is None}
        self._coming[chunk] = self._pool.submit(
            _decode_arena, self._engine, chunk, blocks, self._shape
        )

    def _fill(self) -> None:
        while len(self._coming) < _AHEAD:
            chunk = next(self._ahead, None)
            if chunk is None:
                return
            if chunk in self._wanted:
                self._submit(chunk)

    def rows_of(self, block: tuple[str, int, int, str]) -> tuple[np.ndarray[Any, Any], int]:
        """An array of rows holding ``block`` (chunk, offset, size, check), and the
        block's first row in it."""
        chunk, offset, size, check = block
        if chunk in self._wanted:  # needed sooner than planned
            self._submit(chunk)
        if chunk in self._coming:
            arena = self._coming.pop(chunk).result()
            for key, decoded in arena.blocks:
                self._engine.cache.put(key, decoded)
            if self._held + arena.rows.nbytes <= _ARENA_BYTES:
                self._arenas[chunk] = arena
                self._held += arena.rows.nbytes
            self._fill()
        kept = self._arenas.get(chunk)
        first = kept.firsts.get(offset) if kept is not None else None
        if kept is not None and first is not None:
            return kept.rows, first
        decoded = self._engine._block(SampleLocation(chunk, offset, size, check, 0, 0))
        return decoded.reshape((-1, *self._shape)), 0  # from the cache (or read now)

    def done_with(self, segment: int) -> None:
        """Let go of the arenas no segment after ``segment`` needs."""
        for chunk in [c for c in self._arenas if self._last_use[c] <= segment]:
            self._held -= self._arenas.pop(chunk).rows.nbytes


def _gather(
    sources: list[np.ndarray[Any, Any]], source_of: Any, row_of: Any
) -> np.ndarray[Any, Any]:
    """Row ``row_of[j]`` of ``sources[source_of[j]]`` for every j, as one new array: a
    gather per source (in C, without the GIL), not per block."""
    out: np.ndarray[Any, Any]
    if len(sources) == 1:
        out = np.take(sources[0], row_of, axis=0)
        return out
    out = np.empty((len(row_of), *sources[0].shape[1:]), sources[0].dtype)
    order = np.argsort(source_of, kind="stable")
    bounds = np.searchsorted(source_of[order], np.arange(len(sources) + 1))
    for n, source in enumerate(sources):
        sel = order[bounds[n] : bounds[n + 1]]
        out[sel] = np.take(source, row_of[sel], axis=0)
    return out


class _Arena(NamedTuple):
    """The blocks of a chunk a scan needs, decoded into one array of rows."""

    rows: np.ndarray[Any, Any]
    firsts: dict[int, int]  # block offset -> the block's first row in ``rows``
    blocks: list[tuple[tuple[str, int], np.ndarray[Any, Any]]]  # for the block cache (views)


def _decode_arena(
    engine: ColumnEngine, chunk: str, blocks: set[tuple[int, int, str]], shape: tuple[int, ...]
) -> _Arena:
    """Read ``chunk`` and decode ``blocks`` of it into one arena (in a worker thread)."""
    decoded = engine.fetch_chunk(chunk, blocks)
    if not decoded:
        return _Arena(np.empty((0, *shape), engine.schema.np_dtype), {}, [])
    flat = decoded[0][1] if len(decoded) == 1 else np.concatenate([b for _, b in decoded])
    firsts: dict[int, int] = {}
    views = []
    per_sample = max(1, int(np.prod(shape)))
    start = 0
    for key, block in decoded:
        firsts[key[1]] = start // per_sample
        views.append((key, flat[start : start + block.size]))
        start += block.size
    return _Arena(flat.reshape((-1, *shape)), firsts, views)


class _Plan:
    """Which blocks a segment's rows are in: the blocks, and each row's block and row in it."""

    __slots__ = ("block_of", "blocks", "row_in_block")

    def __init__(self, blocks: list[tuple[str, int, int, str]], block_of: Any,
                 row_in_block: Any) -> None:  # fmt: skip
        self.blocks = blocks
        self.block_of = block_of
        self.row_in_block = row_in_block


def _plan(seg: SegmentLocations, per_row: int) -> _Plan:
    if not seg.fixed_shape or (len(seg.keys) and (
        (seg.item_nbytes != per_row).any() or (seg.item_offset % per_row).any()
    )):  # fmt: skip
        raise CorruptionError("a segment of a fixed-shape column holds samples of another size")
    named = (seg.chunk_index.astype(np.int64) << _OFFSET_BITS) | seg.block_offset
    _, first, inverse = np.unique(named, return_index=True, return_inverse=True)
    blocks = [
        (
            seg.chunks[seg.chunk_index[i]],
            int(seg.block_offset[i]),
            int(seg.block_size[i]),
            seg.block_checks[seg.check_index[i]],
        )
        for i in first.tolist()
    ]
    return _Plan(blocks, inverse.reshape(-1), seg.item_offset // per_row)
