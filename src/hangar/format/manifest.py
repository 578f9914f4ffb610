"""Manifest segments: Parquet tables of sample key -> where its bytes are.

A column's manifest is a list of segments, each a Parquet table of rows sorted
by key, stored at ``manifests/<digest>.parquet`` (digest of the file's bytes).
A commit lists, per column, its segments with their key ranges and row
counts; a commit that changes a few keys rewrites only the segments whose key
range those keys fall in and references the others (DESIGN.md, invariant 5).

Keys are ``int`` (>= 0) or ``str``, and ``1`` and ``"1"`` are different keys.
Order: every int key before every str key; ints by value, strs by code point.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import Any, NamedTuple, cast

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hangar.exceptions import CorruptionError, InvalidKeyError
from hangar.format.chunks import SampleLocation, digest_bytes

__all__ = [
    "SEGMENT_ROWS",
    "Entry",
    "Key",
    "SegmentLocations",
    "SegmentRef",
    "decode_columns",
    "decode_digests",
    "decode_locations",
    "decode_segment",
    "encode_locations",
    "encode_segment",
    "key_order",
    "split_rows",
]

Key = int | str
#: rows per segment a commit aims for. A commit rewrites every segment holding a changed
#: key: on 1M uint8[16] samples, 10 changed keys cost 5.9 MB and 1.2 s at 65,536 rows,
#: 0.83 MB and 0.19 s at 8,192 (bench/bench_history.py), while a 60k-sample with-block
#: write and items() scan are no slower (15 segments instead of 1)
SEGMENT_ROWS = 8_192


class Entry(NamedTuple):
    """One manifest row: a sample (or subsample) and where its bytes are."""

    digest: bytes  # content digest of the sample (hangar.format.sample_digest)
    location: SampleLocation
    shape: tuple[int, ...] | None  # None: the column's fixed shape


def key_order(key: Key) -> tuple[int, Any]:
    """Sort key of a sample key: ints first, by value; then strs."""
    return (0, key) if type(key) is int else (1, key)


@dataclass(frozen=True, slots=True)
class SegmentRef:
    """A commit's reference to one manifest segment."""

    digest: str
    rows: int
    first: Key
    last: Key

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "rows": self.rows,
            "first": self.first,  # JSON keeps 1 and "1" apart
            "last": self.last,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SegmentRef:
        return cls(d["digest"], int(d["rows"]), d["first"], d["last"])


_SCHEMA = pa.schema(
    [
        # a key is an int (key_int set) or a str (key_str set): 1 and "1" differ
        ("key_int", pa.int64()),
        ("key_str", pa.string()),
        ("subkey_int", pa.int64()),
        ("subkey_str", pa.string()),
        ("digest", pa.binary(8)),
        ("chunk", pa.string()),
        ("block_offset", pa.int64()),
        ("block_size", pa.int64()),
        ("block_check", pa.string()),
        ("item_offset", pa.int64()),
        ("item_nbytes", pa.int64()),
        ("shape", pa.list_(pa.int64())),
    ]
)

Row = tuple[Key, Key | None, Entry]

# integer columns that grow or repeat in steps are delta-encoded (sequential int keys
# cost next to nothing); sample digests, nearly all distinct, are stored plain (a
# dictionary of 8,192 distinct values made segments 16% larger and 0.3 ms slower to
# write); the others, which repeat, are dictionary-encoded
_DELTA_COLUMNS = dict.fromkeys(
    ["key_int", "subkey_int", "block_offset", "item_offset"], "DELTA_BINARY_PACKED"
)
_DICTIONARY_COLUMNS = [
    name for name in _SCHEMA.names if name not in _DELTA_COLUMNS and name != "digest"
]


def _key_arrays(keys: list[Any]) -> tuple[pa.Array, pa.Array]:
    """The (int, str) columns of a key column: each key sets one of them."""
    n = len(keys)
    if keys.count(None) == n:
        return pa.nulls(n, pa.int64()), pa.nulls(n, pa.string())
    try:  # all ints, the common case: let Arrow check the types in C
        return pa.array(keys, pa.int64()), pa.nulls(n, pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    try:
        return pa.nulls(n, pa.int64()), pa.array(keys, pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    ints = [k if type(k) is int else None for k in keys]
    strs = [k if type(k) is str else None for k in keys]
    return pa.array(ints, pa.int64()), pa.array(strs, pa.string())


def encode_segment(rows: list[Row]) -> bytes:
    """Parquet bytes of rows already sorted by (key, subkey)."""
    # columns by itemgetter: several times faster than zip(*rows) on thousands of rows
    keys, subkeys, entries = (list(map(itemgetter(i), rows)) for i in range(3))
    digests, locs, shapes = (list(map(itemgetter(i), entries)) for i in range(3))
    chunk, boff, bsize, bcheck, ioff, inb = (list(map(itemgetter(i), locs)) for i in range(6))
    key_int, key_str = _key_arrays(keys)
    sub_int, sub_str = _key_arrays(subkeys)
    n = len(rows)
    shape_type = pa.list_(pa.int64())
    return _encode_arrays(
        [
            key_int,
            key_str,
            sub_int,
            sub_str,
            pa.array(digests, pa.binary(8)),
            pa.array(chunk, pa.string()),
            pa.array(boff, pa.int64()),
            pa.array(bsize, pa.int64()),
            pa.array(bcheck, pa.string()),
            pa.array(ioff, pa.int64()),
            pa.array(inb, pa.int64()),
            pa.nulls(n, shape_type) if shapes.count(None) == n else pa.array(shapes, shape_type),
        ]
    )


def encode_locations(locs: SegmentLocations) -> bytes:
    """Parquet bytes of a flat, fixed-shape segment given as arrays (sorted by key).

    The same bytes as :func:`encode_segment` of the same rows, made without an
    object per row: a with-block's packed samples are committed this way.
    """
    if locs.digests is None or not locs.fixed_shape:
        raise ValueError("encode_locations needs the digests of fixed-shape rows")
    n = len(locs.keys)
    if locs.int_keys is not None:
        key_int, key_str = pa.array(locs.int_keys, pa.int64()), pa.nulls(n, pa.string())
    else:
        key_int, key_str = _key_arrays(locs.keys)
    sub_int, sub_str = pa.nulls(n, pa.int64()), pa.nulls(n, pa.string())

    return _encode_arrays(
        [
            key_int,
            key_str,
            sub_int,
            sub_str,
            pa.FixedSizeBinaryArray.from_buffers(
                pa.binary(8), n, [None, pa.py_buffer(locs.digests)]
            ),
            _taken_strings(locs.chunks, locs.chunk_index),
            pa.array(locs.block_offset, pa.int64()),
            pa.array(locs.block_size, pa.int64()),
            _taken_strings(locs.block_checks, locs.check_index),
            pa.array(locs.item_offset, pa.int64()),
            pa.array(locs.item_nbytes, pa.int64()),
            pa.nulls(n, pa.list_(pa.int64())),
        ]
    )


def _taken_strings(values: list[str], index: Any) -> pa.Array:
    """``values[index]`` as an Arrow string array (numpy's take, not Arrow's: ``Array.take``
    imports ``pyarrow.compute``, ~45 ms once per process)."""
    n = len(index)
    width = len(values[0]) if values else 0
    joined = "".join(values)
    if 0 < width * (n + 1) < 2**31 and joined.isascii() and set(map(len, values)) == {width}:
        # hex digests: one fixed width, so the string buffers are made in numpy (8x faster)
        data = np.frombuffer(joined.encode("ascii"), dtype=f"S{width}")[index]
        offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
        return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))
    return pa.array(np.asarray(values, dtype=object)[index], pa.string())


def _encode_arrays(arrays: list[pa.Array]) -> bytes:
    """Parquet bytes of a segment's columns (in the order of ``_SCHEMA``)."""
    table = pa.Table.from_arrays(arrays, schema=_SCHEMA)
    sink = io.BytesIO()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        use_dictionary=_DICTIONARY_COLUMNS,
        column_encoding=_DELTA_COLUMNS,
        write_statistics=False,
    )
    return sink.getvalue()


def decode_segment(data: bytes, expected_digest: str | None = None) -> Iterator[Row]:
    """Rows of a segment; raise CorruptionError if its bytes do not match the digest."""
    return zip(*decode_columns(data, expected_digest), strict=True)


def decode_columns(
    data: bytes, expected_digest: str | None = None
) -> tuple[list[Key], list[Key | None], list[Entry]]:
    """Keys, subkeys and entries of a segment's rows, as three lists.

    The rows of :func:`decode_segment`, built with loops that run in C (a
    segment of 8,192 rows decodes several times faster than row by row).
    """
    table = _read_table(data, expected_digest, None)
    n = table.num_rows
    keys = _keys(table, "key_int", "key_str")
    subkeys = _keys(table, "subkey_int", "subkey_str")
    digests = _digests(table.column("digest"), n)
    new = tuple.__new__
    loc_columns = [table.column(name).to_pylist() for name in _LOCATION_COLUMNS]
    locs = list(map(new, repeat(SampleLocation), zip(*loc_columns, strict=True)))
    raw_shapes = table.column("shape")
    shapes: Iterable[tuple[int, ...] | None] = (
        repeat(None, n)
        if raw_shapes.null_count == n
        else [None if sh is None else tuple(sh) for sh in raw_shapes.to_pylist()]
    )
    entries = list(map(new, repeat(Entry), zip(digests, locs, shapes, strict=True)))
    return keys, subkeys, entries


@dataclass(frozen=True, slots=True)
class SegmentLocations:
    """A segment's keys and sample locations as arrays, for scans (no object per row).

    ``chunks[chunk_index[i]]`` is row ``i``'s chunk; ``block_checks`` is
    indexed the same way by ``check_index``. ``fixed_shape`` is False if any
    row records its own shape (a variable-shape column).
    """

    keys: list[Key]
    chunks: list[str]
    chunk_index: Any  # np.ndarray of int
    block_offset: Any  # np.ndarray of int64, one per row, and so on
    block_size: Any
    block_checks: list[str]
    check_index: Any
    item_offset: Any
    item_nbytes: Any
    fixed_shape: bool
    #: with ``entries=True`` only: 8 bytes of content digest per row, and the rows'
    #: shapes (a pyarrow list array; None if no row records one)
    digests: bytes | None = None
    shapes: Any = None
    #: the keys as an int64 numpy array, where they are all ints and someone has it made
    #: already (encoding then converts no key)
    int_keys: Any = None

    def __len__(self) -> int:
        return len(self.keys)

    def slice(self, start: int, stop: int) -> SegmentLocations:
        """Rows ``start`` to ``stop`` (the chunk and check lists stay whole)."""
        digests = self.digests
        return SegmentLocations(
            keys=self.keys[start:stop],
            chunks=self.chunks,
            chunk_index=self.chunk_index[start:stop],
            block_offset=self.block_offset[start:stop],
            block_size=self.block_size[start:stop],
            block_checks=self.block_checks,
            check_index=self.check_index[start:stop],
            item_offset=self.item_offset[start:stop],
            item_nbytes=self.item_nbytes[start:stop],
            fixed_shape=self.fixed_shape,
            digests=None if digests is None else digests[8 * start : 8 * stop],
            shapes=None if self.shapes is None else self.shapes[start:stop],
            int_keys=None if self.int_keys is None else self.int_keys[start:stop],
        )

    def entry(self, row: int) -> Entry:
        """The manifest entry of row ``row`` (decoded with ``entries=True``)."""
        digests = self.digests
        if digests is None:
            raise ValueError("these locations were decoded without their entries")
        shape = None
        if self.shapes is not None:
            listed = self.shapes[row].as_py()
            shape = None if listed is None else tuple(listed)
        location = SampleLocation(
            self.chunks[self.chunk_index[row]],
            int(self.block_offset[row]),
            int(self.block_size[row]),
            self.block_checks[self.check_index[row]],
            int(self.item_offset[row]),
            int(self.item_nbytes[row]),
        )
        return Entry(digests[8 * row : 8 * row + 8], location, shape)


def decode_locations(
    data: bytes, expected_digest: str | None = None, *, entries: bool = False
) -> SegmentLocations:
    """The keys and locations of a flat segment's rows, as arrays (see :class:`SegmentLocations`).

    With ``entries=True`` the digests and shapes are decoded too, so that
    :meth:`SegmentLocations.entry` can make any row's entry: a lookup of a few
    keys then costs a fraction of decoding every entry (:func:`decode_columns`).
    Raises CorruptionError like :func:`decode_segment`, and also for a segment
    with subsample keys or rows without a location.
    """
    table = _read_table(data, expected_digest, None if entries else _SCAN_COLUMNS,
                        dictionary=_NAME_COLUMNS)  # fmt: skip
    n = table.num_rows
    if table.column("subkey_int").null_count != n or table.column("subkey_str").null_count != n:
        raise CorruptionError(f"manifest segment {expected_digest} has subsamples")
    chunk = _dictionary(table.column("chunk"))
    check = _dictionary(table.column("block_check"))
    ints = [table.column(name) for name in ("block_offset", "block_size", "item_offset",
                                            "item_nbytes")]  # fmt: skip
    if chunk.null_count or check.null_count or any(c.null_count for c in ints):
        raise CorruptionError(f"manifest segment {expected_digest} has rows without a location")
    boff, bsize, ioff, inb = (c.to_numpy() for c in ints)
    fixed_shape = table.column("shape").null_count == n
    digests = shapes = None
    if entries:
        digests = _digest_buffer(table.column("digest"), n)
        if not fixed_shape:
            shapes = table.column("shape").combine_chunks()
    return SegmentLocations(
        keys=_keys(table, "key_int", "key_str"),
        chunks=chunk.dictionary.to_pylist(),
        chunk_index=chunk.indices.to_numpy(),
        block_offset=boff,
        block_size=bsize,
        block_checks=check.dictionary.to_pylist(),
        check_index=check.indices.to_numpy(),
        item_offset=ioff,
        item_nbytes=inb,
        fixed_shape=fixed_shape,
        digests=digests,
        shapes=shapes,
    )


# what a scan needs: every column but the digests (the largest)
_SCAN_COLUMNS = ["key_int", "key_str", "subkey_int", "subkey_str", "chunk", "block_offset",
                 "block_size", "block_check", "item_offset", "item_nbytes", "shape"]  # fmt: skip

_LOCATION_COLUMNS = [
    "chunk", "block_offset", "block_size", "block_check", "item_offset", "item_nbytes"
]  # fmt: skip


def _read_table(
    data: bytes, expected_digest: str | None, columns: list[str] | None,
    dictionary: list[str] | None = None,
) -> pa.Table:  # fmt: skip
    """The segment's table; CorruptionError if its bytes are not the segment named.

    Columns named in ``dictionary`` are read as dictionary arrays (as Parquet
    stores them: no re-encoding).
    """
    if expected_digest is not None and digest_bytes(data) != expected_digest:
        raise CorruptionError(f"manifest segment {expected_digest} does not match its digest")
    try:
        # ParquetFile over a BufferReader: half the time of read_table on a BytesIO
        parquet = pq.ParquetFile(pa.BufferReader(data), read_dictionary=dictionary)
        return parquet.read(columns=columns)
    except (pa.ArrowException, OSError) as exc:
        raise CorruptionError(f"manifest segment {expected_digest} is not valid Parquet") from exc


# chunk names and block checks repeat: read them as the dictionaries Parquet keeps
_NAME_COLUMNS = ["chunk", "block_check"]


def _dictionary(column: pa.ChunkedArray) -> pa.DictionaryArray:
    """One dictionary array of a column read with ``read_dictionary``.

    A segment is one row group, so one chunk; anything else is re-encoded
    (Arrow's dictionary_encode, which imports pyarrow.compute).
    """
    if column.num_chunks == 1 and pa.types.is_dictionary(column.type):
        return column.chunk(0)
    plain = column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column
    return plain.combine_chunks().dictionary_encode()


def _keys(table: pa.Table, int_name: str, str_name: str) -> list[Any]:
    """A key column from its int and str halves (each row sets one, or neither)."""
    n = table.num_rows
    ints, strs = table.column(int_name), table.column(str_name)
    if strs.null_count == n:
        return cast("list[Any]", ints.to_pylist())
    if ints.null_count == n:
        return cast("list[Any]", strs.to_pylist())
    return [s if i is None else i for i, s in zip(ints.to_pylist(), strs.to_pylist(), strict=True)]


def _digests(column: pa.ChunkedArray, n: int) -> list[bytes]:
    """The 8-byte digests of a column: sliced from its buffer (to_pylist is 4x slower)."""
    raw = _digest_buffer(column, n)
    return [raw[i : i + 8] for i in range(0, 8 * n, 8)]


def _digest_buffer(column: pa.ChunkedArray, n: int) -> bytes:
    """The digests of a column's ``n`` rows, one after another (8 bytes each)."""
    array = column.combine_chunks()
    if array.null_count:
        raise CorruptionError("a manifest segment has rows without a digest")
    start = array.offset * 8
    raw: bytes = array.buffers()[1].to_pybytes()
    return raw[start : start + 8 * n]


def decode_digests(
    data: bytes, expected_digest: str | None = None
) -> list[tuple[Key, Key | None, bytes]]:
    """``(key, subkey, content digest)`` of every row: what a diff needs, decoded alone.

    Checks the segment's bytes like :func:`decode_segment`, then reads only
    the key and digest columns (several times faster than whole entries).
    """
    table = _read_table(data, expected_digest, _DIGEST_COLUMNS)
    keys = _keys(table, "key_int", "key_str")
    subkeys = _keys(table, "subkey_int", "subkey_str")
    return list(zip(keys, subkeys, _digests(table.column("digest"), table.num_rows), strict=True))


_DIGEST_COLUMNS = ["key_int", "key_str", "subkey_int", "subkey_str", "digest"]


def split_rows(rows: list[Row], target: int = SEGMENT_ROWS) -> Iterable[list[Row]]:
    """Cut sorted rows into segments of about ``target`` rows, never splitting one key."""
    start = 0
    n = len(rows)
    while start < n:
        end = min(start + target, n)
        while end < n and rows[end][0] == rows[end - 1][0]:
            end += 1  # keep the subsamples of one key together
        yield rows[start:end]
        start = end


def check_key(key: object, what: str = "sample key") -> Key:
    """Return a valid sample key: an int >= 0 or a non-empty str of printable ASCII."""
    if type(key) is int:
        if key < 0:
            raise InvalidKeyError(f"{what} {key!r}: int keys must be >= 0")
        return key
    if type(key) is str:
        if not key or not key.isascii() or not key.isprintable() or len(key) > 256:
            raise InvalidKeyError(f"{what} {key!r}: str keys are 1-256 printable ASCII characters")
        return key
    raise InvalidKeyError(f"{what} {key!r}: keys are int or str, not {type(key).__name__}")
