"""Nested columns: ``key -> {subkey -> sample}``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from hangar.columns._common import ColumnBase, collect_items
from hangar.columns._engine import ColumnEngine, Pending
from hangar.exceptions import ReadOnlyError, SampleKeyError
from hangar.format.manifest import Key, check_key
from hangar.staging import StagingArea

__all__ = [
    "FlatSubsampleReader",
    "FlatSubsampleWriter",
    "NestedSampleReader",
    "NestedSampleWriter",
]

_MISSING = object()


class FlatSubsampleReader:
    """The subsamples of one sample of a nested column, as a read-only mapping."""

    def __init__(self, engine: ColumnEngine, staging: StagingArea | None, key: Key) -> None:
        self._engine = engine
        self._staging = staging
        self.sample = key

    def _subs(self) -> dict[Key, Any]:
        subs: dict[Key, Any] = self._engine.index.get(self.sample, {})
        return subs

    def __repr__(self) -> str:
        return (
            f"Hangar {type(self).__qualname__} \n    Column Name     : {self._engine.name}"
            f"\n    Sample Name     : {self.sample}\n    Num Subsamples  : {len(self)}\n"
        )

    def __len__(self) -> int:
        """Number of subsamples of this sample."""
        return len(self._subs())

    def __contains__(self, subkey: object) -> bool:
        """Whether this sample has a subsample ``subkey``."""
        return subkey in self._subs()

    def __iter__(self) -> Iterator[Key]:
        """The subsample keys."""
        return iter(self.keys())

    def __getitem__(self, subkey: Key) -> Any:
        """The subsample ``subkey``; KeyError if there is none."""
        subs = self._subs()  # a column no longer in its checkout raises here
        try:
            slot = subs[subkey]
        except KeyError:
            raise SampleKeyError(
                f"no subsample {subkey!r} in sample {self.sample!r} of column {self._engine.name!r}"
            ) from None
        return self._engine.read(slot)

    def get(self, subkey: Key, default: Any = None) -> Any:
        """The subsample ``subkey``, or ``default`` if there is none."""
        self._engine.check_current()
        try:
            return self[subkey]
        except KeyError:
            return default

    def keys(self, local: bool = False) -> Iterator[Key]:
        """The subsample keys (``local`` is Hangar's: every sample is local here)."""
        yield from list(self._subs())

    def values(self, local: bool = False) -> Iterator[Any]:
        """Every subsample."""
        for _, v in self.items(local):
            yield v

    def items(self, local: bool = False) -> Iterator[tuple[Key, Any]]:
        """Every (subkey, subsample) pair."""
        for sk, slot in list(self._subs().items()):
            yield sk, self._engine.read(slot)

    @property
    def data(self) -> dict[Key, Any]:
        """All subsamples as a dict."""
        return dict(self.items())


class FlatSubsampleWriter(FlatSubsampleReader):
    """The subsamples of one sample of a nested column, writable."""

    def _staging_area(self) -> StagingArea:
        if self._staging is None:
            raise ReadOnlyError("read-only checkout")
        return self._staging

    def __setitem__(self, subkey: Key, value: Any) -> None:
        """Store ``value`` as subsample ``subkey`` (replacing any there)."""
        self.update({subkey: value})

    def update(self, other: Mapping[Key, Any] | Iterable[tuple[Key, Any]] | None = None,
               **kwargs: Any) -> None:  # fmt: skip
        """Store many subsamples; if any is invalid, none is stored."""
        staging = self._staging_area()
        items = collect_items(other, kwargs)
        checked: list[tuple[Key, Pending]] = []
        for raw, value in items:
            sk = check_key(raw, "subsample key")
            where = (self._engine.name, self.sample, sk)
            checked.append((sk, self._engine.make_pending(value, where)))
        for sk, pending in checked:
            staging.set(self._engine, self.sample, sk, pending)

    def __delitem__(self, subkey: Key) -> None:
        """Remove subsample ``subkey``; KeyError if there is none."""
        staging = self._staging_area()
        if subkey not in self._subs():
            raise SampleKeyError(f"no subsample {subkey!r} in sample {self.sample!r}")
        staging.delete(self._engine, self.sample, subkey)

    def pop(self, subkey: Key, default: Any = _MISSING) -> Any:
        """Remove subsample ``subkey`` and return it (``default`` if given and absent)."""
        self._engine.check_current()
        try:
            value = self[subkey]
        except KeyError:
            if default is _MISSING:
                raise
            return default
        del self[subkey]
        return value


class NestedSampleReader(ColumnBase):
    """Read access to a nested column: ``col[key]`` is a mapping of subsamples."""

    _sub = FlatSubsampleReader

    def _pretty_rows(self) -> list[tuple[str, Any]]:
        rows = super()._pretty_rows()
        rows.append(("Number of Subsamples", self.num_subsamples))
        return rows

    @property
    def num_subsamples(self) -> int:
        """Subsamples across every sample."""
        return sum(len(v) for v in self._engine.index.values())

    def __getitem__(self, key: Key) -> FlatSubsampleReader:
        """The subsamples of sample ``key``, as a mapping; KeyError if there is none."""
        if key not in self._engine.index:
            raise SampleKeyError(f"no sample {key!r} in column {self.column!r}")
        return self._sub(self._engine, self._staging, key)

    def values(self, local: bool = False) -> Iterator[FlatSubsampleReader]:
        """Every sample, as a mapping of its subsamples."""
        for key in self.keys():
            yield self[key]

    def items(self, local: bool = False) -> Iterator[tuple[Key, FlatSubsampleReader]]:
        """Every (key, mapping of subsamples) pair."""
        for key in self.keys():
            yield key, self[key]


class NestedSampleWriter(NestedSampleReader):
    """Read and write access to a nested column in a writer checkout."""

    _sub = FlatSubsampleWriter

    def __getitem__(self, key: Key) -> FlatSubsampleWriter:
        """The subsamples of sample ``key``, as a writable mapping."""
        sub = super().__getitem__(key)
        assert isinstance(sub, FlatSubsampleWriter)
        return sub

    def __setitem__(self, key: Key, value: Mapping[Key, Any]) -> None:
        """Store the subsamples in ``value`` (a mapping) under sample ``key``."""
        self._writer()
        key = check_key(key)
        if not isinstance(value, Mapping):
            raise SampleKeyError(
                f"{self._where(key)}: a nested column sample is a mapping of "
                f"subkey -> data, not {type(value).__name__}"
            )
        FlatSubsampleWriter(self._engine, self._staging, key).update(value)

    def update(self, other: Mapping[Key, Mapping[Key, Any]] | None = None,
               **kwargs: Mapping[Key, Any]) -> None:  # fmt: skip
        """Store many samples of subsamples; if any is invalid, none is stored."""
        staging = self._writer()
        items = list((other or {}).items()) + list(kwargs.items())
        checked: list[tuple[Key, Key, Pending]] = []
        for raw, subs in items:
            key = check_key(raw)
            for raw_sk, value in subs.items():
                sk = check_key(raw_sk, "subsample key")
                where = (self.column, key, sk)
                checked.append((key, sk, self._engine.make_pending(value, where)))
        with self:
            for key, sk, pending in checked:
                staging.set(self._engine, key, sk, pending)

    def pop(self, key: Key, default: Any = _MISSING) -> Any:
        """Remove sample ``key`` and return its subsamples as a dict (``default`` if given
        and absent)."""
        if key not in self._engine.index:
            if default is _MISSING:
                raise SampleKeyError(f"no sample {key!r} in column {self.column!r}")
            return default
        value = self[key].data
        del self[key]
        return value
