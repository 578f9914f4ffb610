"""What flat and nested columns share: schema properties, the pretty text, access checks."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from hangar.exceptions import ReadOnlyError, SampleKeyError

if TYPE_CHECKING:
    from hangar.columns._engine import ColumnEngine
    from hangar.staging import StagingArea

__all__ = ["ColumnBase", "collect_items"]


def collect_items(other: Any, kwargs: dict[str, Any]) -> list[tuple[Any, Any]]:
    """The (key, value) pairs of ``update(other, **kwargs)``, as ``dict.update`` takes them."""
    items: list[tuple[Any, Any]] = []
    if other is not None:
        items.extend(other.items() if isinstance(other, Mapping) else other)
    items.extend(kwargs.items())
    return items


_PAD = " " * 16


class ColumnBase:
    """Schema properties and the pretty text of a column."""

    _engine: ColumnEngine
    _staging: StagingArea | None

    def __init__(
        self,
        engine: ColumnEngine,
        staging: StagingArea | None,
        origin: tuple[Any, str] | None = None,
    ) -> None:
        self._engine = engine
        self._staging = staging
        self._origin = origin  # (store, commit) of a read-only checkout: how to reopen it

    # --------------------------------------------------------- properties
    @property
    def column(self) -> str:
        """Name of the column."""
        return self._engine.name

    @property
    def column_type(self) -> str:
        """``'ndarray'``, ``'str'`` or ``'bytes'``."""
        return self._engine.schema.column_type

    @property
    def column_layout(self) -> str:
        """``'flat'`` or ``'nested'``."""
        return self._engine.schema.column_layout

    @property
    def schema_type(self) -> str:
        """``'fixed_shape'`` or ``'variable_shape'``."""
        return self._engine.schema.schema_type

    @property
    def dtype(self) -> Any:
        """numpy dtype of ndarray samples; ``str`` or ``bytes`` otherwise."""
        schema = self._engine.schema
        if schema.column_type == "ndarray":
            return np.dtype(schema.dtype)
        return str if schema.column_type == "str" else bytes

    @property
    def shape(self) -> tuple[int, ...] | None:
        """(Maximum) shape of ndarray samples; None for str and bytes columns."""
        return self._engine.schema.shape

    @property
    def backend(self) -> str:
        """Storage format of the column's data (Zarr v3 blocks in packed chunks)."""
        return "zarr-v3-packed"

    @property
    def backend_options(self) -> dict[str, Any]:
        """The Zarr v3 codecs that encode the column's data."""
        return {"codecs": [dict(c) for c in self._engine.schema.codecs]}

    @property
    def iswriteable(self) -> bool:
        """True in a writer checkout."""
        return self._staging is not None

    @property
    def contains_subsamples(self) -> bool:
        """True for nested columns."""
        return self._engine.nested

    @property
    def contains_remote_references(self) -> bool:
        """False: every sample is readable from the repository's store."""
        return False

    @property
    def remote_reference_keys(self) -> tuple[Any, ...]:
        """Keys whose data is not readable here: none, the store holds everything."""
        return ()

    # ---------------------------------------------------------------- text
    def _pretty_rows(self) -> list[tuple[str, Any]]:
        return [
            ("Column Name", self.column),
            ("Writeable", self.iswriteable),
            ("Column Type", self.column_type),
            ("Column Layout", self.column_layout),
            ("Schema Type", self.schema_type),
            ("DType", self.dtype),
            ("Shape", self.shape),
            ("Number of Samples", len(self._engine)),
        ]

    def __repr__(self) -> str:
        rows = [*self._pretty_rows(), ("Partial Remote Data Refs", False)]
        lines = [f"\n    {name:<24} : {value}" for name, value in rows]
        return f"Hangar {type(self).__qualname__} {_PAD}" + _PAD.join(lines) + "\n"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))

    def _ipython_key_completions_(self) -> list[Any]:
        return list(self._engine.index)

    # ------------------------------------------------------ mapping basics
    def __len__(self) -> int:
        return len(self._engine)

    def __contains__(self, key: object) -> bool:
        return key in self._engine.index

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys())

    def keys(self, local: bool = False) -> Iterator[Any]:
        """Every sample key (a snapshot: safe to change the column while iterating)."""
        yield from list(self._engine.index)

    def get(self, key: Any, default: Any = None) -> Any:
        """``self[key]``, or ``default`` if there is no such sample."""
        self._engine.check_current()
        try:
            return self[key]  # type: ignore[index]
        except KeyError:
            return default

    # -------------------------------------------------------------- checks
    def _writer(self) -> StagingArea:
        if self._staging is None:
            raise ReadOnlyError(
                f"column {self.column!r} is in a read-only checkout: open "
                "repo.checkout(write=True) to change it"
            )
        return self._staging

    def __setitem__(self, key: Any, value: Any) -> None:
        self._writer()  # a reader: raises ReadOnlyError

    def __delitem__(self, key: Any) -> None:
        """Remove the sample under ``key`` (all its subsamples in a nested column)."""
        staging = self._writer()  # a reader: raises ReadOnlyError
        if key not in self._engine.index:
            raise SampleKeyError(f"no sample {key!r} in column {self.column!r}")
        staging.delete(self._engine, key, None)

    def _where(self, key: Any, subkey: Any = None) -> str:
        if subkey is None:
            return f"column {self.column!r}, key {key!r}"
        return f"column {self.column!r}, key {key!r}, subkey {subkey!r}"

    # -------------------------------------------------------- with-blocks
    def __enter__(self) -> Any:
        if self._staging is not None:
            self._staging.enter()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._staging is not None:
            self._staging.exit()

    def __reduce__(self) -> Any:
        """A read-only column pickles as (store location, commit, name): workers reopen it."""
        if self._staging is not None or self._origin is None:
            raise ReadOnlyError(
                f"column {self.column!r} of a writer checkout cannot be pickled: commit, "
                "then pass a read-only checkout's column to workers"
            )
        from hangar.checkout import reopen_column

        store, commit = self._origin
        return (reopen_column, (store, commit, self.column))
