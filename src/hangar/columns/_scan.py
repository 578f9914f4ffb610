"""Columnar scans: ``items()`` of a fixed-shape column with nothing staged.

A scan of a committed, flat, fixed-shape ndarray column needs no per-sample
index entry: its manifest segments are decoded into arrays of locations
(:func:`hangar.format.manifest.decode_locations`), every chunk is read once
with all the blocks the scan needs from it, and each segment's samples are
gathered block by block into one array. The caller gets one row of that array
per key (each row its own sample: changing it changes nothing else).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

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
    # every block the scan needs, by chunk: each chunk is read once, for all of them,
    # and decoded by worker threads a few chunks ahead of the gathering
    wanted: dict[str, set[tuple[int, int, str]]] = {}
    for plan in plans.values():
        for chunk, offset, size, check in plan.blocks:
            wanted.setdefault(chunk, set()).add((offset, size, check))
    cache = engine.cache
    ahead = iter(list(wanted))
    coming: dict[str, Future[Any]] = {}
    with ThreadPoolExecutor(_DECODERS) as pool:

        def submit(chunk: str) -> None:
            blocks = {x for x in wanted.pop(chunk) if cache.get((chunk, x[0])) is None}
            coming[chunk] = pool.submit(engine.fetch_chunk, chunk, blocks)

        def fill() -> None:
            while len(coming) < _AHEAD:
                chunk = next(ahead, None)
                if chunk is None:
                    return
                if chunk in wanted:
                    submit(chunk)

        fill()
        for i in range(len(segments)):
            if i in loaded:
                bucket = loaded[i]
                yield list(bucket), list(engine.read_many(list(bucket.values())))
                continue
            seg, plan = decoded.pop(i), plans.pop(i)
            out = np.empty((len(seg.keys), *shape), schema.np_dtype)
            for b, (chunk, offset, size, check) in enumerate(plan.blocks):
                if chunk in wanted:  # needed sooner than planned
                    submit(chunk)
                if chunk in coming:
                    for key, block in coming.pop(chunk).result():
                        cache.put(key, block)
                    fill()
                block = engine._block(SampleLocation(chunk, offset, size, check, 0, 0))
                sel = plan.order[plan.bounds[b] : plan.bounds[b + 1]]
                out[sel] = block.reshape((-1, *shape))[plan.row_in_block[sel]]
            yield seg.keys, out


class _Plan:
    """Which blocks a segment's rows are in, and the rows of each block, grouped."""

    __slots__ = ("blocks", "bounds", "order", "row_in_block")

    def __init__(self, blocks: list[tuple[str, int, int, str]], order: Any, bounds: Any,
                 row_in_block: Any) -> None:  # fmt: skip
        self.blocks = blocks
        self.order = order
        self.bounds = bounds
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
    order = np.argsort(inverse, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(inverse, minlength=len(blocks)))])
    return _Plan(blocks, order, bounds, seg.item_offset // per_row)
