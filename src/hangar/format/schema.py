"""Column schemas: what a column holds and how its samples are encoded.

A :class:`ColumnSchema` is a frozen dataclass stored in every commit record.
Its ``codecs`` are Zarr v3 codec metadata (``{"name": ..., "configuration":
...}``): every block of samples in a chunk is a Zarr v3 chunk of a 1-D array
of the column's dtype, encoded by exactly these codecs, so the schema is all a
reader needs to decode (DESIGN.md, invariant 7).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from hangar.exceptions import InvalidKeyError

__all__ = ["BLOCK_BYTES", "DEFAULT_CODECS", "REMOTE_BLOCK_BYTES", "ColumnSchema", "SampleError"]

ColumnType = Literal["ndarray", "str", "bytes"]
Layout = Literal["flat", "nested"]

#: Blosc zstd level 1 with byte shuffle: chosen by measurement (DESIGN.md, invariant 7):
#: on MNIST-like uint8 it encodes 6x faster than level 5 for 2% more bytes.
DEFAULT_CODECS: tuple[dict[str, Any], ...] = (
    {"name": "bytes", "configuration": {"endian": "little"}},
    {
        "name": "blosc",
        "configuration": {
            "cname": "zstd",
            "clevel": 1,
            "shuffle": "shuffle",
            "typesize": 1,
            "blocksize": 0,
        },
    },
)


class SampleError(InvalidKeyError):
    """A sample that does not fit its column's schema (a ``ValueError``)."""


#: where a sample goes, for error messages: text, or (column, key, subkey)
Where = str | tuple[str, Any, Any]


def _fmt(where: Where) -> str:
    if isinstance(where, str):
        return where
    column, key, subkey = where
    if subkey is None:
        return f"column {column!r}, key {key!r}"
    return f"column {column!r}, key {key!r}, subkey {subkey!r}"


def _freeze(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _freeze(v) for k, v in sorted(obj.items())}
    if isinstance(obj, list | tuple):
        return [_freeze(v) for v in obj]
    return obj


#: raw bytes of a block (the unit of one ranged read) in a new column on local disk or in
#: memory: a read there costs microseconds, so decoding the block is most of a single-sample
#: read, and a small block keeps it short
BLOCK_BYTES = 64 * 1024

#: the same on an object store (S3, GCS), where a request costs milliseconds (tens on AWS)
#: and a block of 256 KiB (tens of KB encoded) takes about as long to fetch as one of 64:
#: a column's blocks are 4x fewer, so reads with any locality (a dataset that fits the
#: block cache, neighbouring samples) make fewer requests. On the tutorial's 60k MNIST
#: images on SeaweedFS, 300 random cold reads went from 0.69 to 0.32 GETs per read.
REMOTE_BLOCK_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class ColumnSchema:
    """What one column holds.

    Attributes
    ----------
    column_type
        ``"ndarray"``, ``"str"`` or ``"bytes"``.
    column_layout
        ``"flat"`` (key -> sample) or ``"nested"`` (key -> {subkey -> sample}).
    dtype
        numpy dtype name for ndarray columns (``"uint8"``, ``"float32"``...);
        ``"str"`` or ``"bytes"`` otherwise.
    shape
        The (maximum) shape of an ndarray sample; ``None`` for str and bytes.
    variable_shape
        ndarray samples may have any shape of the same rank up to ``shape``;
        str and bytes columns are always variable.
    codecs
        Zarr v3 codec metadata applied to each block of samples.
    block_bytes
        Target raw size of one block (the unit of one ranged read).
    chunk_bytes
        Target raw size of one chunk object (many blocks).
    """

    column_type: ColumnType
    column_layout: Layout
    dtype: str
    shape: tuple[int, ...] | None
    variable_shape: bool
    codecs: tuple[dict[str, Any], ...] = DEFAULT_CODECS
    block_bytes: int = BLOCK_BYTES
    chunk_bytes: int = 4 * 1024 * 1024
    _np_dtype: np.dtype[Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.column_type not in ("ndarray", "str", "bytes"):
            raise InvalidKeyError(f"unknown column type {self.column_type!r}")
        if self.column_layout not in ("flat", "nested"):
            raise InvalidKeyError(f"unknown column layout {self.column_layout!r}")
        if self.column_type == "ndarray":
            try:
                dt = np.dtype(self.dtype)
            except TypeError as exc:
                raise InvalidKeyError(f"invalid dtype {self.dtype!r}: {exc}") from exc
            if dt.kind not in "biufc" or dt.hasobject:
                raise InvalidKeyError(
                    f"ndarray columns hold numeric or boolean data, not dtype {dt}"
                )
            if self.shape is None or not all(isinstance(d, int) and d >= 0 for d in self.shape):
                raise InvalidKeyError(f"invalid shape {self.shape!r}: a tuple of ints >= 0")
            object.__setattr__(self, "shape", tuple(self.shape))
        else:
            if self.dtype != self.column_type or self.shape is not None:
                raise InvalidKeyError(
                    f"{self.column_type} columns have dtype {self.column_type!r} and no shape"
                )
            if not self.variable_shape:
                raise InvalidKeyError(f"{self.column_type} columns are variable_shape")
            dt = np.dtype(np.uint8)
        if self.block_bytes <= 0 or self.chunk_bytes < self.block_bytes:
            raise InvalidKeyError("need 0 < block_bytes <= chunk_bytes")
        object.__setattr__(self, "codecs", tuple(_freeze(c) for c in self.codecs))
        object.__setattr__(self, "_np_dtype", dt)

    # ----------------------------------------------------------- properties
    @property
    def schema_type(self) -> str:
        """``"variable_shape"`` or ``"fixed_shape"``, as Hangar names it."""
        return "variable_shape" if self.variable_shape else "fixed_shape"

    @property
    def np_dtype(self) -> np.dtype[Any]:
        """The numpy dtype blocks are stored in (``uint8`` for str and bytes)."""
        return self._np_dtype

    @property
    def sample_nbytes(self) -> int:
        """Bytes of one ndarray sample of the declared (maximum) shape; 0 for str and bytes."""
        if self.shape is None:
            return 0
        return int(np.prod(self.shape, dtype=np.int64)) * self._np_dtype.itemsize

    @property
    def digest(self) -> str:
        """A short digest of the schema (Hangar's "Schema Hash")."""
        from hangar.format.records import canonical_json

        return hashlib.blake2b(canonical_json(self.to_dict()), digest_size=6).hexdigest()

    # ------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        return {
            "column_type": self.column_type,
            "column_layout": self.column_layout,
            "dtype": self.dtype,
            "shape": list(self.shape) if self.shape is not None else None,
            "variable_shape": self.variable_shape,
            "codecs": [dict(c) for c in self.codecs],
            "block_bytes": self.block_bytes,
            "chunk_bytes": self.chunk_bytes,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ColumnSchema:
        d = dict(d)
        if d.get("shape") is not None:
            d["shape"] = tuple(d["shape"])
        d["codecs"] = tuple(d.get("codecs", DEFAULT_CODECS))
        return cls(**d)

    # ---------------------------------------------------------- validation
    def coerce(self, value: Any, where: Where) -> np.ndarray[Any, Any]:
        """Return ``value`` as the contiguous array to store, or raise :class:`SampleError`.

        ``where`` names the column (and key) in the message.
        """
        if self.column_type == "ndarray":
            return self._coerce_array(value, where)
        if self.column_type == "str":
            if type(value) is not str:
                raise SampleError(
                    f"{_fmt(where)}: expected a str sample, got {type(value).__name__}"
                )
            return np.frombuffer(value.encode("utf-8"), dtype=np.uint8)
        if type(value) is not bytes:
            raise SampleError(f"{_fmt(where)}: expected a bytes sample, got {type(value).__name__}")
        return np.frombuffer(value, dtype=np.uint8)

    def _coerce_array(self, value: Any, where: Where) -> np.ndarray[Any, Any]:
        # the hot path of every write: one type check, one dtype check, one shape check
        if (
            type(value) is np.ndarray
            and value.dtype == self._np_dtype
            and value.shape == self.shape
            and value.flags.c_contiguous
        ):
            return value
        if not isinstance(value, np.ndarray):
            raise SampleError(
                f"{_fmt(where)}: expected a numpy.ndarray sample, got {type(value).__name__}"
            )
        if value.dtype != self._np_dtype:
            raise SampleError(f"{_fmt(where)}: expected dtype {self.dtype}, got {value.dtype}")
        shape = self.shape
        assert shape is not None
        if value.shape != shape:
            if not self.variable_shape:
                raise SampleError(f"{_fmt(where)}: expected shape {shape}, got {value.shape}")
            if value.ndim != len(shape):
                raise SampleError(
                    f"{_fmt(where)}: expected rank {len(shape)} (max shape {shape}), "
                    f"got shape {value.shape}"
                )
            if any(v > m for v, m in zip(value.shape, shape, strict=True)):
                raise SampleError(f"{_fmt(where)}: shape {value.shape} exceeds max shape {shape}")
        out: np.ndarray[Any, Any] = value
        if not out.flags.c_contiguous:
            out = np.ascontiguousarray(out)
        return out
