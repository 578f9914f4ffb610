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
    _rows: Callable[[np.ndarray[Any, Any]], list[bytes]]

    def of(self, array: np.ndarray[Any, Any], variable: bool) -> bytes:
        """Digest of one sample (its shape included where shapes vary)."""
        h = self._new(np.ascontiguousarray(array).data)
        if variable:
            h.update(repr(array.shape).encode())
        out: bytes = h.digest()
        return out

    def rows(self, rows: np.ndarray[Any, Any]) -> list[bytes]:
        """Digest of every row of a 2-D array of fixed-shape samples."""
        return self._rows(np.ascontiguousarray(rows))


def _blake2b_rows(rows: np.ndarray[Any, Any]) -> list[bytes]:
    size = rows[0].nbytes if len(rows) else 0
    raw = rows.data.cast("B")
    blake2b = hashlib.blake2b
    return [
        blake2b(raw[i : i + size], digest_size=8).digest() for i in range(0, len(rows) * size, size)
    ]


def _xxh3_rows(rows: np.ndarray[Any, Any]) -> list[bytes]:
    if rows.ndim == 1:  # one value per sample: a row must still be a buffer
        rows = rows.reshape(-1, 1)
    return list(map(xxhash.xxh3_64_digest, rows))


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
