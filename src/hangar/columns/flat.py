"""Flat columns: one level, ``key -> sample``."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from hangar._gcpause import gc_paused
from hangar.columns._common import ColumnBase, collect_items
from hangar.columns._engine import Pending
from hangar.columns._scan import scan_fixed, scannable
from hangar.exceptions import SampleKeyError
from hangar.format.manifest import Key, check_key

__all__ = ["FlatSampleReader", "FlatSampleWriter"]

_MISSING = object()

# the with-block fast path's type checks read these module globals: one lookup each, not
# ``np`` then its ``ndarray``, nor a miss in this module then the builtins (5 ms of a
# 120k-sample loop's 66 ms)
_ndarray = np.ndarray
_int = int


class FlatSampleReader(ColumnBase):
    """Read access to a flat column, with the interface of a ``dict``."""

    def __getitem__(self, key: Key) -> Any:
        """The sample stored under ``key``; KeyError if there is none."""
        index = self._engine.index  # a column no longer in its checkout raises here
        try:
            slot = index[key]
        except KeyError:
            raise SampleKeyError(f"no sample {key!r} in column {self.column!r}") from None
        return self._engine.read(slot)

    def values(self, local: bool = False) -> Iterator[Any]:
        """Every sample; each chunk needed is read once, whole."""
        if scannable(self._engine):
            for _, samples in scan_fixed(self._engine):
                yield from samples
            return
        yield from self._engine.read_many(list(self._engine.index.values()))

    def items(self, local: bool = False) -> Iterator[tuple[Key, Any]]:
        """Every (key, sample) pair; each chunk needed is read once, whole."""
        if scannable(self._engine):  # committed fixed-shape samples: column-wise
            for keys, samples in scan_fixed(self._engine):
                yield from zip(keys, samples, strict=True)
            return
        index = self._engine.index
        with gc_paused():
            keys = list(index)
            slots = list(index.values())
        yield from zip(keys, self._engine.read_many(slots), strict=True)


class FlatSampleWriter(FlatSampleReader):
    """Read and write access to a flat column in a writer checkout."""

    def __setitem__(self, key: Key, value: Any) -> None:
        """Store ``value`` under ``key`` (replacing any sample there)."""
        engine = self._engine
        rows = engine.rows  # set inside a writer's with-block only
        if (
            rows is not None
            and type(value) is _ndarray
            and value.dtype is rows.dtype
            and value.shape == rows.shape
        ):
            # the fast path: one copy into a row (hangar.columns._rows)
            if type(key) is not _int or key < 0:
                key = check_key(key)
            row = rows._row  # RowBuffer.put, inlined: a call less per sample
            if row == rows._cap:
                row = rows._grow()
            rows._data[row] = value
            rows._row = row + 1
            rows.keys.append(key)
            return
        staging = self._staging
        if staging is None:
            staging = self._writer()  # raises: a read-only column
        if type(key) is not int or key < 0:
            key = check_key(key)
        staging.set(engine, key, None, engine.make_pending(value, (engine.name, key, None)))

    def update(self, other: Mapping[Key, Any] | Iterable[tuple[Key, Any]] | None = None,
               **kwargs: Any) -> None:  # fmt: skip
        """Store many samples; if any is invalid, none is stored."""
        staging = self._writer()
        items = collect_items(other, kwargs)
        checked: list[tuple[Key, Pending]] = []
        for raw_key, value in items:
            key = check_key(raw_key)
            checked.append((key, self._engine.make_pending(value, (self.column, key, None))))
        with self:
            for key, pending in checked:
                staging.set(self._engine, key, None, pending)

    def pop(self, key: Key, default: Any = _MISSING) -> Any:
        """Remove the sample under ``key`` and return it."""
        self._engine.check_current()
        try:
            value = self[key]
        except KeyError:
            if default is _MISSING:
                raise
            return default
        del self[key]
        return value

    def append(self, value: Any) -> str:
        """Store ``value`` under a new random key and return the key."""
        key = secrets.token_hex(10)
        self[key] = value
        return key
