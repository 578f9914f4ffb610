"""Packing a writer's buffered samples into chunks, and indexing them where they landed.

When a with-block ends (or a commit packs what was written outside one), the
staging area hands its buffered samples here: fixed-shape rows
(:func:`pack_rows`, the fast path, with repeats stored once) and pending
samples of any kind (:func:`pack_pending`). Chunks go to the store through
``store_chunk(digest, data)``; each column's index then points at the
samples' locations. Journaling what was packed stays with the staging area.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hangar.columns._dedup import DEDUP_MIN_BYTES, NO_PAIRS, RowDedup
from hangar.columns._engine import ColumnEngine, Pending
from hangar.columns._rows import RowBuffer
from hangar.columns._table import batch_from_runs
from hangar.format.chunks import ChunkPacker, Run, SampleLocation, expand_runs, pack_uniform
from hangar.format.manifest import Entry, Key
from hangar.format.sample_digest import SampleDigest

__all__ = ["Buffered", "PackedRows", "is_live", "pack_pending", "pack_rows"]

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


def pack_rows(
    engine: ColumnEngine, rows: RowBuffer, digest: SampleDigest, store_chunk: StoreChunk
) -> PackedRows:
    """Pack a column's buffered rows into chunks (a page each) and index them.

    A sample whose bytes repeat an earlier sample of the block is not packed
    again: it gets that sample's location (:class:`RowDedup`). The packed
    rows join the column's :class:`~hangar.columns._table.StagedTable` as
    arrays, and the index points each key at its row there. The buffer is
    cleared.
    """
    schema = engine.schema
    dedup = RowDedup() if engine.schema.sample_nbytes >= DEDUP_MIN_BYTES else None
    keys: list[Key] = []
    digests: list[bytes] = []
    runs: list[Run] = []
    same: list[np.ndarray[Any, Any]] = [NO_PAIRS]
    for page_keys, data in rows.live_pages():
        page_digests = digest.rows(data)
        fresh, page_same = dedup.split(page_digests, data) if dedup else (None, NO_PAIRS)
        page_runs = pack_uniform(
            data if fresh is None else data[fresh],
            engine.codec.encode,
            schema.block_bytes,
            schema.chunk_bytes,
            store_chunk,
        )
        keys.extend(page_keys)
        digests.extend(page_digests)
        runs.extend(page_runs)
        same.append(page_same)
    packed = PackedRows(keys, b"".join(digests), runs, np.concatenate(same))
    rows.clear()  # first: row numbers not indexed yet need never be
    if keys:
        batch = batch_from_runs(keys, packed.digests, runs, packed.same)
        engine.index.update(zip(keys, engine.table.add(batch), strict=True))
        engine.changed.update(keys)
    return packed


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
            locs = expand_runs(pack_uniform(stacked, engine.codec.encode,
                                            schema.block_bytes, schema.chunk_bytes,
                                            store_chunk))  # fmt: skip
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
