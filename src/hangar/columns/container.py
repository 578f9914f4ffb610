"""``co.columns``: the columns of a checkout, as a mapping of name -> column."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from hangar.columns._engine import ColumnEngine
from hangar.columns.flat import FlatSampleReader, FlatSampleWriter
from hangar.columns.nested import NestedSampleReader, NestedSampleWriter
from hangar.exceptions import ReadOnlyError, SampleKeyError
from hangar.staging import StagingArea

__all__ = ["Column", "Columns", "make_column"]

Column = FlatSampleReader | NestedSampleReader
_PAD = " " * 16


def make_column(
    engine: ColumnEngine, staging: StagingArea | None, origin: tuple[Any, str] | None = None
) -> Column:
    """The user-facing object for a column engine."""
    if engine.nested:
        return (NestedSampleWriter if staging else NestedSampleReader)(engine, staging, origin)
    return (FlatSampleWriter if staging else FlatSampleReader)(engine, staging, origin)


class Columns:
    """The columns of a checkout."""

    def __init__(
        self,
        engines: Callable[[], dict[str, ColumnEngine]],
        staging: StagingArea | None,
        on_delete: Callable[[str], None] | None = None,
        origin: tuple[Any, str] | None = None,
    ) -> None:
        self._engines = engines
        self._staging = staging
        self._on_delete = on_delete
        self._origin = origin
        self._objects: dict[str, tuple[ColumnEngine, Column]] = {}

    def _column(self, name: str) -> Column:
        engines = self._engines()
        engine = engines.get(name)
        if engine is None:
            raise SampleKeyError(f"no column named {name!r}; columns: {sorted(engines)}")
        cached = self._objects.get(name)
        if cached is None or cached[0] is not engine:
            cached = (engine, make_column(engine, self._staging, self._origin))
            self._objects[name] = cached
        return cached[1]

    @property
    def iswriteable(self) -> bool:
        """True in a writer checkout."""
        return self._staging is not None

    def __repr__(self) -> str:
        names = sorted(self._engines())
        refs = "\n      - ".join(f"{n} / False" for n in names)
        return (
            f"Hangar {type(self).__qualname__}{_PAD}"
            f"\n    Writeable         : {self.iswriteable}{_PAD}"
            f"\n    Number of Columns : {len(names)}{_PAD}"
            f"\n    Column Names / Partial Remote References:{_PAD}"
            f"\n      - {refs}"
        )

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))

    def _ipython_key_completions_(self) -> list[str]:
        return self.keys()

    def __getitem__(self, name: str) -> Any:
        """The column named ``name``; KeyError if there is none."""
        return self._column(name)

    def get(self, name: str, default: Any = None) -> Any:
        """The column named ``name``, or ``default``."""
        try:
            return self._column(name)
        except KeyError:
            return default

    def __contains__(self, name: object) -> bool:
        """Whether there is a column named ``name``."""
        return name in self._engines()

    def __len__(self) -> int:
        """Number of columns."""
        return len(self._engines())

    def __iter__(self) -> Iterator[str]:
        """Names of the columns, sorted."""
        return iter(self.keys())

    def keys(self) -> list[str]:
        """Names of the columns, sorted."""
        return sorted(self._engines())

    def values(self) -> Iterator[Any]:
        """The columns, by name."""
        for name in self.keys():
            yield self._column(name)

    def items(self) -> Iterator[tuple[str, Any]]:
        """(name, column) pairs, by name."""
        for name in self.keys():
            yield name, self._column(name)

    @property
    def contains_remote_references(self) -> dict[str, bool]:
        """Per column: whether some data is only on a remote (never, on a store)."""
        return dict.fromkeys(self.keys(), False)

    @property
    def remote_sample_keys(self) -> dict[str, tuple[Any, ...]]:
        """Per column: the keys of samples only on a remote (none, on a store)."""
        return dict.fromkeys(self.keys(), ())

    def delete(self, name: str) -> str:
        """Remove a column and all its samples from the staging area; return its name."""
        if self._staging is None or self._on_delete is None:
            raise ReadOnlyError("columns can only be deleted in a writer checkout")
        if name not in self._engines():
            raise SampleKeyError(f"no column named {name!r}")
        self._on_delete(name)
        self._objects.pop(name, None)
        return name

    def __delitem__(self, name: str) -> None:
        """``del co.columns[name]``: :meth:`delete`."""
        self.delete(name)
