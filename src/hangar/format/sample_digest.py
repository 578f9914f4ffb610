"""Content digests of samples: what diff, merge and dedup compare.

Every manifest row carries an 8-byte digest of its sample's bytes (with the
shape appended where a column's shapes vary). A repository uses one scheme,
named in ``hangar.json`` (``sample_digest``), for all its life, so equal
samples have equal digests in every commit:

- ``"blake2b-64"``: BLAKE2b with an 8-byte digest; format version 1
  (repositories whose ``hangar.json`` names no scheme).
- ``"xxh3-64"``: XXH3, 64 bits, canonical (big-endian) bytes; format version
  2, the default for new repositories. Eight to ten times faster on
  MNIST-sized samples, which is most of the cost of a with-block's end.

64 bits tell a changed sample from an unchanged one with a false match chance
of 2**-64 per comparison; dedup compares bytes before two samples share a
location, so it does not rely on the digest alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import xxhash

from hangar.exceptions import InvalidKeyError

__all__ = ["DEFAULT_SCHEME", "LEGACY_SCHEME", "SampleDigest", "sample_digest_scheme"]

LEGACY_SCHEME = "blake2b-64"  # format version 1
DEFAULT_SCHEME = "xxh3-64"  # format version 2


@dataclass(frozen=True, slots=True)
class SampleDigest:
    """One digest scheme: of a sample, and of every row of a 2-D array of samples."""

    name: str
    _new: Callable[[Any], Any]  # a hashlib-like object over a buffer
    _rows: Callable[[np.ndarray[Any, Any]], bytes]

    def of(self, array: np.ndarray[Any, Any], variable: bool) -> bytes:
        """Digest of one sample (its shape included where shapes vary)."""
        h = self._new(np.ascontiguousarray(array).data)
        if variable:
            h.update(repr(array.shape).encode())
        out: bytes = h.digest()
        return out

    def rows(self, rows: np.ndarray[Any, Any]) -> bytes:
        """Digest of every row of a 2-D array of fixed-shape samples, 8 bytes each, joined."""
        return self._rows(np.ascontiguousarray(rows))


def _blake2b_rows(rows: np.ndarray[Any, Any]) -> bytes:
    size = rows[0].nbytes if len(rows) else 0
    raw = rows.data.cast("B")
    blake2b = hashlib.blake2b
    return b"".join(
        blake2b(raw[i : i + size], digest_size=8).digest() for i in range(0, len(rows) * size, size)
    )


def _xxh3_rows(rows: np.ndarray[Any, Any]) -> bytes:
    if rows.ndim == 1:  # one value per sample: a row must still be a buffer
        rows = rows.reshape(-1, 1)
    if len(rows) and 0 < rows[0].nbytes <= _SMALL:
        raw = rows.reshape(len(rows), -1).view(np.uint8)
        return _xxh3_small(raw).astype(">u8").tobytes()  # canonical: big-endian
    return b"".join(map(xxhash.xxh3_64_digest, rows))


# ----------------------------------------------------------------- XXH3, 1-16 bytes
# Rows of at most 16 bytes (labels, boxes, scalars) are hashed with numpy, a column at a
# time: XXH3-64 with seed 0, as xxhash.h's XXH3_len_1to3_64b, XXH3_len_4to8_64b and
# XXH3_len_9to16_64b compute it (tested against xxhash for every length). A call per
# row costs more than the hash there: 60k int64 labels 3.5 -> 0.3 ms.
_SMALL = 16
_SECRET = bytes.fromhex(  # the first 64 bytes of XXH3's default secret (XXH3_kSecret)
    "b8fe6c3923a44bbe7c01812cf721ad1cded46de9839097db7240a4a4b7b3671f"
    "cb79e64eccc0e578825ad07dccff7221b8084674f743248ee03590e6813a264c"
)
_PRIME64_2 = np.uint64(0xC2B2AE3D27D4EB4F)
_PRIME64_3 = np.uint64(0x165667B19E3779F9)
_PRIME_MX1 = np.uint64(0x165667919E3779F9)
_PRIME_MX2 = np.uint64(0x9FB21C651E98DF25)
_LOW32 = np.uint64(0xFFFFFFFF)


def _secret(offset: int, nbytes: int = 8) -> int:
    return int.from_bytes(_SECRET[offset : offset + nbytes], "little")


# the secret words each length range mixes in (seed 0)
_BITFLIP_1TO3 = np.uint64(_secret(0, 4) ^ _secret(4, 4))
_BITFLIP_4TO8 = np.uint64(_secret(8) ^ _secret(16))
_BITFLIP_9TO16_LO = np.uint64(_secret(24) ^ _secret(32))
_BITFLIP_9TO16_HI = np.uint64(_secret(40) ^ _secret(48))


def _u(x: int) -> np.uint64:
    return np.uint64(x)


def _rotl(x: np.ndarray[Any, Any], r: int) -> np.ndarray[Any, Any]:
    out: np.ndarray[Any, Any] = (x << _u(r)) | (x >> _u(64 - r))
    return out


def _read(raw: np.ndarray[Any, Any], at: int, nbytes: int) -> np.ndarray[Any, Any]:
    """The little-endian unsigned ints of ``nbytes`` bytes at column ``at`` of each row."""
    part = np.ascontiguousarray(raw[:, at : at + nbytes])
    return part.view(f"<u{nbytes}").reshape(-1).astype(np.uint64)


def _mul128_fold64(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Low 64 bits xor high 64 bits of the 128-bit products (from 32-bit halves)."""
    a_lo, a_hi, b_lo, b_hi = a & _LOW32, a >> _u(32), b & _LOW32, b >> _u(32)
    lo_lo, hi_lo, lo_hi = a_lo * b_lo, a_hi * b_lo, a_lo * b_hi
    cross = (lo_lo >> _u(32)) + (hi_lo & _LOW32) + lo_hi
    upper = (hi_lo >> _u(32)) + (cross >> _u(32)) + a_hi * b_hi
    lower = (cross << _u(32)) | (lo_lo & _LOW32)
    out: np.ndarray[Any, Any] = upper ^ lower
    return out


def _xxh3_small(raw: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """XXH3-64 (seed 0) of each row of a 2-D uint8 array of 1 to 16 columns."""
    n = raw.shape[1]
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps, as in C
        if n <= 3:
            c1 = raw[:, 0].astype(np.uint64)
            c2 = raw[:, n >> 1].astype(np.uint64)
            c3 = raw[:, n - 1].astype(np.uint64)
            combined = (c1 << _u(16)) | (c2 << _u(24)) | c3 | _u(n << 8)
            small: np.ndarray[Any, Any] = combined ^ _BITFLIP_1TO3
            small ^= small >> _u(33)  # XXH64_avalanche
            small *= _PRIME64_2
            small ^= small >> _u(29)
            small *= _PRIME64_3
            small ^= small >> _u(32)
            return small
        if n <= 8:
            input64 = _read(raw, n - 4, 4) + (_read(raw, 0, 4) << _u(32))
            h: np.ndarray[Any, Any] = input64 ^ _BITFLIP_4TO8
            h ^= _rotl(h, 49) ^ _rotl(h, 24)  # XXH3_rrmxmx
            h *= _PRIME_MX2
            h ^= (h >> _u(35)) + _u(n)
            h *= _PRIME_MX2
            h ^= h >> _u(28)
            return h
        lo = _read(raw, 0, 8) ^ _BITFLIP_9TO16_LO
        hi = _read(raw, n - 8, 8) ^ _BITFLIP_9TO16_HI
        acc: np.ndarray[Any, Any] = _u(n) + lo.byteswap() + hi + _mul128_fold64(lo, hi)
        acc ^= acc >> _u(37)  # XXH3_avalanche
        acc *= _PRIME_MX1
        acc ^= acc >> _u(32)
        return acc


_SCHEMES = {
    LEGACY_SCHEME: SampleDigest(
        LEGACY_SCHEME, lambda data: hashlib.blake2b(data, digest_size=8), _blake2b_rows
    ),
    DEFAULT_SCHEME: SampleDigest(DEFAULT_SCHEME, xxhash.xxh3_64, _xxh3_rows),
}


def sample_digest_scheme(name: str) -> SampleDigest:
    """The scheme called ``name``; InvalidKeyError for a scheme this hangar does not know."""
    try:
        return _SCHEMES[name]
    except KeyError:
        raise InvalidKeyError(
            f"unknown sample digest {name!r} (known: {', '.join(sorted(_SCHEMES))}); "
            "a newer hangar may know it"
        ) from None
