"""The state of one column in a checkout: its index, reads, and staged writes.

Readers and writers of every layout share this engine; the classes users see
(:mod:`hangar.columns.flat`, :mod:`hangar.columns.nested`) are thin fronts.
Data flows one way: columns -> format -> store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from itertools import chain, repeat
from typing import Any, NamedTuple

import numpy as np

from hangar._gcpause import gc_paused
from hangar._helper import SharedWork, helper_thread
from hangar.columns._index import SegmentIndex, SegmentView
from hangar.columns._rows import RowBuffer, increasing_ints
from hangar.columns._table import StagedTable, bucket_locations, is_packed, packed_locations
from hangar.exceptions import CorruptionError, ObjectNotFoundError, ReadOnlyError, SampleKeyError
from hangar.format.blosc_frames import PartialFrame
from hangar.format.chunks import (
    READ_AHEAD_BYTES,
    BlockCache,
    SampleLocation,
    block_check,
    digest_bytes,
)
from hangar.format.codec import BlockCodec
from hangar.format.commits import ColumnRecord
from hangar.format.manifest import (
    SEGMENT_ROWS,
    Entry,
    Key,
    Row,
    SegmentLocations,
    SegmentRef,
    encode_locations,
    encode_segment,
    key_order,
    split_rows,
)
from hangar.format.names import chunk_key, manifest_key
from hangar.format.sample_digest import SampleDigest
from hangar.format.schema import ColumnSchema, Where
from hangar.store import Store

__all__ = ["ColumnEngine", "Pending"]


class Pending:
    """A sample written in this checkout whose bytes are not in a chunk yet."""

    __slots__ = ("array", "digest", "shape")

    def __init__(
        self, array: np.ndarray[Any, Any], digest: bytes, shape: tuple[int, ...] | None
    ) -> None:
        self.array = array
        self.digest = digest
        self.shape = shape


Slot = Entry | Pending


class _Deferred(NamedTuple):
    """Keys a with-block's end packed into the table, not in the index yet."""

    keys: list[Key]
    slots: Sequence[int]  # their slots (``~row`` each)
    changed: list[Key]  # the keys to count as changed
    ints: np.ndarray[Any, Any] | None  # ``keys`` as an int64 array, if the packer made one


_BATCH = 4096  # samples read per step of a scan


def _slot_rows(slots: Sequence[int]) -> np.ndarray[Any, Any]:
    """The table rows of packed slots (``~row`` each; a range, as pages give them, or a list)."""
    if isinstance(slots, range):
        return ~np.arange(slots.start, slots.stop, slots.step, dtype=np.int64)
    return ~np.asarray(slots, np.int64)


def _next_in_block(slots: list[Slot | int], n: int, block: tuple[str, int]) -> bool:
    """True if the slot after ``slots[n]`` is stored in ``block`` (chunk, offset)."""
    if n + 1 >= len(slots):
        return True  # the batch ends: nothing to tell, keep the usual path
    nxt = slots[n + 1]
    if type(nxt) is not Entry:
        return False
    loc = nxt[1]
    return loc[0] == block[0] and loc[1] == block[1]


class ColumnEngine:
    """Index and I/O of one column."""

    def __init__(
        self,
        name: str,
        schema: ColumnSchema,
        store: Store,
        base: ColumnRecord | None,
        cache: BlockCache,
        *,
        loaded: dict[str, dict[Key, Any]] | None = None,
        digest: SampleDigest | None = None,
    ) -> None:
        """``loaded``: buckets already decoded, by segment digest (see :class:`SegmentIndex`);
        ``digest``: the repository's sample digest scheme, which writes need."""
        self.name = name
        self.schema = schema
        self.digest = digest
        self.store = store
        self.codec = BlockCodec.from_metadata(schema.codecs, schema.np_dtype)
        self.cache = cache
        self.nested = schema.column_layout == "nested"
        self.variable = schema.variable_shape
        self._defer_lock = threading.Lock()
        self.rebase(base, loaded=loaded)

    def rebase(
        self, base: ColumnRecord | None, *, loaded: dict[str, dict[Key, Any]] | None = None
    ) -> None:
        """Start again from ``base`` (the column at a commit; None: empty), nothing staged.

        The staging area rebases its engines in place (after a reset, a merge
        or a failed write), so the column objects users hold stay current.
        """
        self.base_segments: tuple[SegmentRef, ...] = base.segments if base else ()
        self._index = SegmentIndex(
            self.store, self.base_segments, self.nested, base.samples if base else 0,
            loaded=loaded,
        )  # fmt: skip
        self._changed: set[Key] = set()
        # keys packed at a with-block's end and their slots, not in the index yet (see defer)
        self._deferred: list[_Deferred] = []
        # segments the last build_record wrote: their rows, or a view of their arrays
        self._written: dict[str, list[Row] | SegmentView] = {}
        self.table = StagedTable()  # samples packed by with-blocks, as arrays
        self.unpacked = False  # samples written outside with-blocks wait to be packed
        # inside a writer's with-block, fixed-shape flat ndarray samples go here
        self.rows: RowBuffer | None = None
        self.dropped = False  # no longer a column of its checkout (see index)

    @property
    def index(self) -> SegmentIndex:
        """``key -> slot`` of the column (rows of an open with-block included)."""
        if self._deferred:
            self._undefer()
        rows = self.rows
        if rows is not None:
            rows.sync()  # a with-block indexes its rows only when someone looks
        elif self.dropped:
            self.check_current()
        return self._index

    @property
    def changed(self) -> set[Key]:
        """Keys changed since the base commit (not counting an open with-block's rows)."""
        if self._deferred:
            self._undefer()
        return self._changed

    def defer(
        self, keys: list[Key], slots: Sequence[int], changed: list[Key],
        ints: np.ndarray[Any, Any] | None = None,
    ) -> None:  # fmt: skip
        """Point ``keys`` at packed ``slots`` of :attr:`table`, and count ``changed`` as
        changed, when someone first looks (``ints``: ``keys`` as an int64 array, if the
        caller has one).

        A with-block's end packs every key it wrote; a commit that follows
        encodes them from the table's arrays (:meth:`build_record`), so an
        index entry per key (and a changed key per key) is made only if a
        read, a write or a diff needs them before that. Batches are applied
        in the order they came, before anything else touches the index.
        """
        self._deferred.append(_Deferred(keys, slots, changed, ints))

    def _undefer(self) -> None:
        # threads reading one checkout: the list empties only once everything in it is
        # applied, so a reader that finds it empty finds the index whole
        with self._defer_lock:
            index = self._index
            for batch in self._deferred:
                index.update(zip(batch.keys, batch.slots, strict=True))
                self._changed.update(batch.changed)
            self._deferred = []

    def check_current(self) -> None:
        """Raise SampleKeyError if the column is no longer in its checkout."""
        if self.dropped:
            raise SampleKeyError(
                f"column {self.name!r} is no longer in this checkout (it was dropped, or the "
                "staging area was reset to a commit without it); get the column again "
                "from co.columns"
            )

    def touched(self) -> set[Key]:
        """Keys changed since the base commit, rows of an open with-block included."""
        if self.rows is not None and len(self.rows):
            return self.changed | set(self.rows.keys)
        return self.changed

    @property
    def takes_rows(self) -> bool:
        """True if with-blocks buffer this column's samples as rows (the fast path)."""
        schema = self.schema
        return not self.nested and not self.variable and schema.column_type == "ndarray"

    def __len__(self) -> int:
        return len(self.index)

    # -------------------------------------------------------------- reads
    def read(self, slot: Slot | int) -> Any:
        """The user-facing value of a stored, pending or buffered sample."""
        if isinstance(slot, int):
            if slot < 0:  # packed by a with-block of this checkout
                return self.read(self.table.entry(slot))
            assert self.rows is not None
            return self.rows.row(slot)
        if isinstance(slot, Pending):
            return self._to_value(slot.array.reshape(-1), slot.shape)
        return self._to_value(self._read_bytes(slot.location), slot.shape)

    def read_many(self, slots: list[Slot | int]) -> Iterator[Any]:
        """Values of many slots, in order, reading each chunk they need once, whole.

        For scans (``items()``, ``values()``): one GET per chunk instead of one
        ranged GET per block.
        """
        cache = self.cache
        blocks: dict[str, set[tuple[int, int, str]]] = {}
        with gc_paused():
            if self.table.count:  # packed slots read like the entries they stand for
                slots = self.table.entries(slots)
            for slot in slots:
                if type(slot) is Entry:
                    loc = slot[1]
                    if cache.get((loc[0], loc[1])) is None:
                        blocks.setdefault(loc[0], set()).add(loc[1:4])
        read = self.read
        ndarray = self.schema.column_type == "ndarray"
        # bytes of one sample when every sample has the declared shape, else 0
        per_row = self.schema.sample_nbytes if ndarray and not self.variable else 0
        for start in range(0, len(slots), _BATCH):
            part = slots[start : start + _BATCH]
            # the collector is paused while a batch is read, never while the caller runs
            with gc_paused():
                if ndarray:
                    batch = self._read_arrays(part, blocks, per_row)
                else:
                    batch = []
                    for slot in part:
                        if type(slot) is Entry:
                            wanted = blocks.pop(slot[1][0], None)
                            if wanted:
                                self._load_chunk(slot[1][0], wanted)
                        batch.append(read(slot))
            yield from batch

    def _read_arrays(
        self, part: list[Slot | int], blocks: dict[str, set[tuple[int, int, str]]], per_row: int
    ) -> list[Any]:
        """The ndarray samples of one batch of a scan (see :meth:`read_many`)."""
        batch: list[Any] = []
        fixed = self.schema.shape or ()
        last_chunk: str | None = None
        last_offset = -1
        block: Any = None
        rows: Any = None
        given: set[int] = set()  # rows of ``rows`` handed out already (a repeat gets a copy)
        views: dict[tuple[str, int], Any] = {}  # blocks as rows of samples, not copied
        for n, slot in enumerate(part):
            if type(slot) is not Entry:  # buffered or pending
                batch.append(self.read(slot))
                continue
            loc = slot[1]
            if loc[1] != last_offset or loc[0] != last_chunk:
                wanted = blocks.pop(loc[0], None)
                if wanted:
                    self._load_chunk(loc[0], wanted)
                here = (loc[0], loc[1])
                if per_row and not _next_in_block(part, n, here):
                    batch.append(self._lone(views, here, loc, per_row))
                    continue
                # samples of one block come one after another: slice it directly
                block = self._block(loc)
                last_chunk, last_offset = here
                # fixed shapes: one copy of the block, each sample a row of it
                rows = block.copy().reshape((-1, *fixed)) if per_row else None
                given.clear()
            if rows is not None and loc[5] == per_row and not loc[4] % per_row:
                row = loc[4] // per_row
                if row in given:  # a repeat stored once: each key's value is its own array
                    batch.append(rows[row].copy())
                else:
                    given.add(row)
                    batch.append(rows[row])
            else:
                batch.append(self._sample(block, loc, slot[2]))
        return batch

    def _lone(
        self, views: dict[tuple[str, int], Any], here: tuple[str, int], loc: SampleLocation,
        per_row: int,
    ) -> np.ndarray[Any, Any]:  # fmt: skip
        """A copy of a sample alone in its block within a scan (a repeat stored once).

        ``views`` keeps the blocks seen so far as rows of samples, not copied.
        """
        if loc[5] != per_row or loc[4] % per_row:
            return self._sample(self._block(loc), loc, None)
        view = views.get(here)
        if view is None:
            view = views[here] = self._block(loc).reshape((-1, *(self.schema.shape or ())))
        out: np.ndarray[Any, Any] = view[loc[4] // per_row].copy()
        return out

    def _sample(
        self, block: np.ndarray[Any, Any], loc: SampleLocation, shape: tuple[int, ...] | None
    ) -> np.ndarray[Any, Any]:
        """A copy of the ndarray sample at ``loc`` of a decoded block."""
        size = block.itemsize
        first = loc[4] // size
        out: np.ndarray[Any, Any] = block[first : first + loc[5] // size]
        return out.reshape(shape if shape is not None else self.schema.shape).copy()

    def _load_chunk(self, chunk: str, blocks: set[tuple[int, int, str]]) -> None:
        for key, block in self.fetch_chunk(chunk, blocks):
            self.cache.put(key, block)

    def fetch_chunk(
        self, chunk: str, blocks: set[tuple[int, int, str]]
    ) -> list[tuple[tuple[str, int], np.ndarray[Any, Any]]]:
        """Read a chunk once (unless it was read ahead) and decode ``blocks`` of it
        (offset, size, check), checked.

        Changes no shared state, so scans run it in worker threads (where
        numcodecs decodes without its global lock).
        """
        data = self.cache.span(chunk)  # read ahead by single reads, maybe
        if data is None or max((o + n for o, n, _ in blocks), default=0) > len(data):
            try:
                data = self.store.get(chunk_key(chunk))
            except ObjectNotFoundError as exc:
                raise CorruptionError(f"column {self.name!r}: chunk {chunk} is missing") from exc
        view = memoryview(data)
        out = []
        for offset, size, check in sorted(blocks):
            raw = view[offset : offset + size]
            if len(raw) != size or block_check(raw) != check:
                raise CorruptionError(
                    f"column {self.name!r}: a block of chunk {chunk} does not match its "
                    "checksum; the data is not returned"
                )
            out.append(((chunk, offset), self.codec.decode(bytes(raw))))
        return out

    def _read_bytes(self, loc: SampleLocation) -> np.ndarray[Any, Any]:
        """The bytes of one sample, as the column's dtype (a view: copy to keep).

        A block not in the cache is fetched with one ranged read and, where its
        codec allows, only the part of it that holds the sample is decoded
        (:meth:`BlockCodec.partial`); the rest is decoded when reads need it.
        """
        key = (loc.chunk, loc.block_offset)
        block = self.cache.get(key)
        if block is None:
            raw = self._fetch_block(loc)
            block = self.codec.partial(raw)
            if block is None:
                block = self.codec.decode(raw)
            self.cache.put(key, block)
        if isinstance(block, PartialFrame):  # decoded in parts
            out: np.ndarray[Any, Any] = block.read(loc.item_offset,
                                                   loc.item_offset + loc.item_nbytes)  # fmt: skip
            if block.complete:
                self.cache.put(key, block.array())
            return out
        itemsize = block.itemsize
        start = loc.item_offset // itemsize
        return block[start : start + loc.item_nbytes // itemsize]

    def _block(self, loc: SampleLocation) -> np.ndarray[Any, Any]:
        """The decoded block holding ``loc``: from the cache, or one ranged read."""
        key = (loc.chunk, loc.block_offset)
        block = self.cache.get(key)
        if block is None:
            block = self.codec.decode(self._fetch_block(loc))
            self.cache.put(key, block)
        elif isinstance(block, PartialFrame):  # decoded in parts so far: the rest now
            block = block.array()
            self.cache.put(key, block)
        return block

    def _fetch_block(self, loc: SampleLocation) -> bytes:
        """The encoded block holding ``loc``, checked: from its chunk read ahead, or with
        one ranged read (of the chunk's start when the cache says to read ahead, see
        :class:`BlockCache`)."""
        start, end = loc.block_offset, loc.block_offset + loc.block_size
        span = self.cache.span(loc.chunk)
        if span is None and end <= READ_AHEAD_BYTES and self.cache.read_ahead(loc.chunk):
            span = self._get_range(loc.chunk, 0, READ_AHEAD_BYTES)
            self.cache.keep_span(loc.chunk, span)
        if span is not None and end <= len(span):
            raw = span[start:end]
        else:
            raw = self._get_range(loc.chunk, start, end)
        if len(raw) != loc.block_size or block_check(raw) != loc.block_check:
            raise CorruptionError(
                f"column {self.name!r}: a block of chunk {loc.chunk} does not match "
                "its checksum; the data is not returned"
            )
        return raw

    def _get_range(self, chunk: str, start: int, end: int) -> bytes:
        try:
            return self.store.get_range(chunk_key(chunk), start, end)
        except ObjectNotFoundError as exc:
            raise CorruptionError(
                f"column {self.name!r}: chunk {chunk} is missing from the store"
            ) from exc

    def _to_value(self, flat: np.ndarray[Any, Any], shape: tuple[int, ...] | None) -> Any:
        ctype = self.schema.column_type
        if ctype == "ndarray":
            out = flat.reshape(shape if shape is not None else self.schema.shape)
            return out.copy()
        raw = flat.tobytes()
        return raw.decode("utf-8") if ctype == "str" else raw

    # ------------------------------------------------------------- writes
    def make_pending(self, value: Any, where: Where) -> Pending:
        array = self.schema.coerce(value, where)
        if array is value:
            # the caller's own array: copy it, so that changing it later (a reused
            # buffer in a loop) cannot change what was written
            array = array.copy()
        shape = array.shape if self.variable and self.schema.column_type == "ndarray" else None
        if self.schema.column_type != "ndarray":
            shape = None
        if self.digest is None:
            raise ReadOnlyError(f"column {self.name!r} is read-only here")
        return Pending(array, self.digest.of(array, self.variable), shape)

    def set_slot(self, key: Key, subkey: Key | None, slot: Slot) -> None:
        index = self.index
        if self.nested:
            index.setdefault(key, {})[subkey] = slot
        else:
            index[key] = slot
        self.changed.add(key)

    def del_slot(self, key: Key, subkey: Key | None) -> None:
        index = self.index
        if self.nested and subkey is not None:
            sub = index[key]
            del sub[subkey]
            if not sub:  # a sample with no subsamples left is gone
                del index[key]
        else:
            del index[key]
        self.changed.add(key)

    def pending_items(self) -> Iterator[tuple[Key, Key | None, Pending]]:
        """Every pending sample, for packing into chunks."""
        if not self.unpacked:
            return
        for key in self.changed:
            slot = self.index.get(key)
            if slot is None:
                continue
            if self.nested:
                for sk, s in slot.items():
                    if isinstance(s, Pending):
                        yield key, sk, s
            elif isinstance(slot, Pending):
                yield key, None, slot

    # ------------------------------------------------------------- commit
    @staticmethod
    def _sorted_keys(bucket: dict[Key, Any]) -> list[Key]:
        keys = list(bucket)
        try:
            keys.sort()  # all ints or all strs: their natural order is the key order
        except TypeError:
            keys.sort(key=key_order)
        return keys

    def _bucket_rows(self, bucket: dict[Key, Any]) -> list[Row]:
        keys = self._sorted_keys(bucket)
        if not self.nested:
            return list(zip(keys, repeat(None), map(bucket.__getitem__, keys)))
        return [(k, sk, bucket[k][sk]) for k in keys for sk in sorted(bucket[k], key=key_order)]

    def build_record(
        self,
        put: Callable[[str, bytes], None] | None = None,
        written: Callable[[int], object] | None = None,
    ) -> ColumnRecord:
        """Manifest segments for the current state, rewriting only the buckets that changed.

        ``put(key, data)`` stores a segment (default: the store's ``put``). A
        writer passes one that only starts the write, and waits for them all
        before its commit record names the segments. ``written(n)`` is told of
        each ``n`` segments made (a progress bar's ``update``).
        """
        record = self._record_of_packed(put, written)
        if record is not None:
            return record
        count = len(self)
        index = self.index
        if not self.changed:
            return ColumnRecord(self.schema, self.base_segments, count)
        touched = index.buckets_of(self.changed)
        out: list[SegmentRef] = []
        self._written = {}
        for i in range(index.nbuckets):
            if i not in touched:
                out.append(index.segments[i])
                continue
            refs = self._write_bucket(index.bucket(i), put)
            out.extend(refs)
            if written is not None:
                written(len(refs))
        return ColumnRecord(self.schema, tuple(out), count)

    def _record_of_packed(
        self, put: Callable[[str, bytes], None] | None, written: Callable[[int], object] | None
    ) -> ColumnRecord | None:
        """The record encoded straight from :attr:`table`, or None (take the general path).

        Only when every change since the base is a key packed at a with-block's
        end and not indexed yet (:meth:`defer`), the column had no samples
        before, and the keys are ints in increasing order (each written once):
        a dataset's first commit. The segments are the bytes the general path
        makes of the same state, without an index entry per key.
        """
        deferred = self._deferred
        if (
            not deferred or self._changed or self.base_segments or self.nested
            or self.rows is not None or self._index.single != {}
        ):  # fmt: skip
            return None
        keys = list(chain.from_iterable(batch.keys for batch in deferred))
        if not keys:
            return None
        parts = [batch.ints for batch in deferred if batch.ints is not None]
        ints: np.ndarray[Any, Any] | None
        if len(parts) == len(deferred):
            ints = np.concatenate(parts)
            if not (ints[1:] > ints[:-1]).all():
                return None  # one block's keys increase; two blocks' need not
        else:
            ints = increasing_ints(keys)
            if ints is None:
                return None  # a str key, unsorted keys, or a key written twice
        rows = np.concatenate([_slot_rows(batch.slots) for batch in deferred])
        self._written = {}
        refs = self._write_locations(packed_locations(keys, rows, self.table, ints), put)
        if written is not None:
            written(len(refs))
        return ColumnRecord(self.schema, tuple(refs), len(keys))

    def _write_bucket(
        self, bucket: dict[Key, Any], put: Callable[[str, bytes], None] | None
    ) -> list[SegmentRef]:
        """The segments of one changed bucket, written."""
        if self.table.count and not self.nested:
            keys = self._sorted_keys(bucket)
            slots = list(map(bucket.__getitem__, keys))
            if any(map(is_packed, slots)):
                locs = bucket_locations(keys, slots, self.table)
                if locs is not None:
                    return self._write_locations(locs, put)
                slots = self.table.entries(slots)  # rows as entries, with the others
                return self._write_rows(list(zip(keys, repeat(None), slots)), put)
        return self._write_rows(self._bucket_rows(bucket), put)

    def _write_locations(
        self, locs: SegmentLocations, put: Callable[[str, bytes], None] | None
    ) -> list[SegmentRef]:
        """Segments of a flat bucket given as arrays (see :mod:`hangar.columns._table`)."""
        parts = [locs.slice(s, s + SEGMENT_ROWS) for s in range(0, len(locs), SEGMENT_ROWS)]
        store = put or self.store.put

        def encode(part: SegmentLocations) -> tuple[bytes, str]:
            data = encode_locations(part)
            digest = digest_bytes(data)
            store(manifest_key(digest), data)  # its upload starts while others are encoded
            return data, digest

        # Parquet writes release the GIL: the helper thread encodes segments too
        encoded = SharedWork(encode, parts, helper_thread()).result()
        refs = []
        for part, (data, digest) in zip(parts, encoded, strict=True):
            refs.append(SegmentRef(digest, len(part), part.keys[0], part.keys[-1]))
            self._written[digest] = SegmentView.of(data, part)
        return refs

    def _write_rows(
        self, rows: list[Row], put: Callable[[str, bytes], None] | None = None
    ) -> list[SegmentRef]:
        refs = []
        for part in split_rows(rows, SEGMENT_ROWS):
            data = encode_segment(part)
            digest = digest_bytes(data)
            (put or self.store.put)(manifest_key(digest), data)
            refs.append(SegmentRef(digest, len(part), part[0][0], part[-1][0]))
            self._written[digest] = part
        return refs

    def committed(self, record: ColumnRecord) -> None:
        """The commit landed: its segments are the new base.

        Buckets stay loaded where they were; the segments just written become
        buckets from their rows when first needed (never read back).
        """
        self._deferred = []  # committed: whatever they held is in the record's segments
        written, self._written = self._written, {}
        loaded: dict[str, dict[Key, Any]] = {}
        old = self.index
        for i, bucket in old.loaded():
            # a bucket this commit rewrote holds the staged changes: a new segment with
            # its old digest (same content, e.g. the untouched part of a split) is built
            # from the rows written, never from that bucket
            if i < len(old.segments) and old.segments[i].digest not in written:
                loaded[old.segments[i].digest] = bucket
        self.base_segments = record.segments
        self._index = SegmentIndex(
            self.store, record.segments, self.nested, record.samples,
            loaded=loaded, written=written,
        )  # fmt: skip
        self.changed.clear()
        self.table.clear()  # every packed row was in a bucket this commit rewrote
