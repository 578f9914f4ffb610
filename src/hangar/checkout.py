"""Checkouts: a read-only view of one commit, or the writer of one branch."""

from __future__ import annotations

import atexit
import warnings
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from hangar.columns._engine import ColumnEngine
from hangar.columns.container import Columns
from hangar.diff import ReaderUserDiff, WriterUserDiff
from hangar.exceptions import HangarError, InvalidKeyError, ReadOnlyError
from hangar.format.codec import codecs_from_backend_options
from hangar.format.commits import CommitRecord
from hangar.format.lease import Lease
from hangar.format.names import validate_name
from hangar.format.schema import REMOTE_BLOCK_BYTES, ColumnSchema
from hangar.merge import MERGE_TEXT, merge_branch
from hangar.staging import StagingArea

if TYPE_CHECKING:
    from hangar.repository import Repository

__all__ = ["ReaderCheckout", "WriterCheckout", "reopen_checkout", "reopen_column"]

_PAD = " " * 16
_CLOSED = (
    "Unable to operate on past checkout objects which have been closed. No operation "
    "occurred. Please use a new checkout."
)


class _CheckoutBase:
    """What readers and writers share: column access, mapping interface, closing."""

    _columns: Columns | None

    def _alive(self) -> Columns:
        if self._columns is None:
            raise ReadOnlyError(_CLOSED)
        return self._columns

    @property
    def columns(self) -> Columns:
        """The columns of this checkout (``co.columns['name']``)."""
        return self._alive()

    def __len__(self) -> int:
        """Number of columns."""
        return len(self._alive())

    def __contains__(self, name: object) -> bool:
        """Whether there is a column named ``name``."""
        return name in self._alive()

    def __iter__(self) -> Iterator[str]:
        """Names of the columns."""
        return iter(self._alive())

    def keys(self) -> list[str]:
        """The names of the columns, as ``co.columns.keys()``."""
        return self._alive().keys()

    def values(self) -> Iterator[Any]:
        """The columns, as ``co.columns.values()``."""
        return self._alive().values()

    def items(self) -> Iterator[tuple[str, Any]]:
        """``(name, column)`` pairs, as ``co.columns.items()``."""
        return self._alive().items()

    def get(self, key: Any, default: Any = None) -> Any:
        """Like ``co[key]``, returning ``default`` where nothing is found."""
        try:
            return self[key]
        except KeyError:
            return default

    def __getitem__(self, key: Any) -> Any:
        """``co['col']`` -> column; ``co['col', key]`` -> sample;
        ``co['col', key, subkey]`` -> subsample."""
        cols = self._alive()
        if isinstance(key, tuple):
            if not 2 <= len(key) <= 3:
                raise InvalidKeyError(
                    f"use co[column], co[column, key] or co[column, key, subkey]: {key!r}"
                )
            column = cols[key[0]]
            value = column[key[1]]
            return value[key[2]] if len(key) == 3 else value
        return cols[key]

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))

    def _ipython_key_completions_(self) -> list[str]:
        return self.keys()

    _repo: Repository

    def _log_start(self) -> tuple[str | None, str | None]:
        """(branch, commit) the log starts from when neither is given."""
        raise NotImplementedError

    def log(self, branch: str | None = None, commit: str | None = None, *,
            return_contents: bool = False, show_time: bool = False,
            show_user: bool = False) -> dict[str, Any] | None:  # fmt: skip
        """The commit log from this checkout (see :meth:`Repository.log`)."""
        self._alive()
        if branch is None and commit is None:
            branch, commit = self._log_start()
        return self._repo.log(branch, commit, return_contents=return_contents,
                              show_time=show_time, show_user=show_user)  # fmt: skip

    def __enter__(self) -> Any:
        """``with co:``, Hangar's fast path for reads: they need no setup here, so it only
        checks that the checkout is open (and leaves it open)."""
        self._alive()
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class ReaderCheckout(_CheckoutBase):
    """A read-only checkout of one commit. Any number may be open at once."""

    def __init__(self, repo: Repository, commit: str, record: CommitRecord) -> None:
        self._repo = repo
        self._commit = commit
        cache = repo._new_cache()
        self._engines = {
            name: ColumnEngine(name, rec.schema, repo._store, rec, cache)
            for name, rec in record.columns.items()
        }
        self._columns = Columns(lambda: self._engines, None, origin=(repo._store, commit))
        atexit.register(self.close)

    def __reduce__(self) -> Any:
        """Pickles as (store location, commit): a worker process reopens the same view."""
        return (reopen_checkout, (self._repo._store, self._commit))

    def __repr__(self) -> str:
        self._alive()
        return (
            f"Hangar {type(self).__name__}{_PAD}"
            f"\n    Writer       : False{_PAD}"
            f"\n    Commit Hash  : {self._commit}{_PAD}"
            f"\n    Num Columns  : {len(self)}\n"
        )

    @property
    def commit_hash(self) -> str:
        """The commit this checkout reads."""
        self._alive()
        return self._commit

    @property
    def diff(self) -> ReaderUserDiff:
        """Compare this commit with a branch (``diff.branch(name)``) or a commit
        (``diff.commit(digest)``); see :mod:`hangar.diff`."""
        self._alive()
        repo = self._repo
        return ReaderUserDiff(repo._store, repo._read_commit, repo._resolve_commit,
                              repo._branch_head, lambda: self._commit)  # fmt: skip

    def _log_start(self) -> tuple[str | None, str | None]:
        return None, self._commit

    def close(self) -> None:
        """Release this checkout's memory; later use raises PermissionError."""
        if self._columns is None:
            return
        self._columns = None
        self._engines = {}
        atexit.unregister(self.close)


class WriterCheckout(_CheckoutBase):
    """The writer of one branch; it holds the branch's lease while open."""

    def __init__(self, repo: Repository, branch: str, lease_seconds: float) -> None:
        self._repo = repo
        self._branch = branch
        store = repo._store
        self._lease = Lease.acquire(store, branch, repo._user_name, lease_seconds)
        try:
            base_commit = self._lease.ref.commit
            base = repo._read_commit(base_commit) if base_commit else None
            cache = repo._new_cache()
            self._staging = StagingArea(
                store, self._lease, base, base_commit, cache, digest=repo._sample_digest
            )
        except BaseException:
            self._lease.release()
            raise
        self._lease.start_heartbeat()
        self._columns = Columns(lambda: self._staging.columns, self._staging,
                                self._staging.drop_column)  # fmt: skip
        atexit.register(self._close_at_exit)

    def __repr__(self) -> str:
        self._alive()
        return (
            f"Hangar {type(self).__name__}{_PAD}"
            f"\n    Writer       : True{_PAD}"
            f"\n    Base Branch  : {self._branch}{_PAD}"
            f"\n    Num Columns  : {len(self)}\n"
        )

    def __reduce__(self) -> Any:
        raise ReadOnlyError("a writer checkout cannot be pickled: it holds the branch's lease")

    @property
    def branch_name(self) -> str:
        """The branch this checkout writes."""
        self._alive()
        return self._branch

    def _log_start(self) -> tuple[str | None, str | None]:
        return self._branch, None

    @property
    def commit_hash(self) -> str | None:
        """The commit the staging area is based on (the branch head)."""
        self._alive()
        return self._staging.base_commit

    @property
    def diff(self) -> WriterUserDiff:
        """Compare the branch head with a branch or commit, or list what is staged
        (``diff.staged()``, ``diff.status()``); see :mod:`hangar.diff`."""
        self._alive()
        repo = self._repo
        return WriterUserDiff(lambda: self._staging, repo._store, repo._read_commit,
                              repo._resolve_commit, repo._branch_head,
                              lambda: self._staging.base_commit)  # fmt: skip

    # ------------------------------------------------------------- writes
    def __setitem__(self, key: Any, value: Any) -> None:
        """``co['col', key] = sample`` or ``co['col', key, subkey] = sample``."""
        cols = self._alive()
        if not isinstance(key, tuple) or not 2 <= len(key) <= 3:
            raise InvalidKeyError(
                "use co[column, key] = sample or co[column, key, subkey] = sample"
            )
        column = cols[key[0]]
        if len(key) == 3:
            if key[1] in column:
                column[key[1]][key[2]] = value
            else:
                column[key[1]] = {key[2]: value}
        else:
            column[key[1]] = value

    def __delitem__(self, key: Any) -> None:
        """``del co[column, key]`` or ``del co[column, key, subkey]``."""
        cols = self._alive()
        if isinstance(key, tuple) and len(key) == 2:
            del cols[key[0]][key[1]]
        elif isinstance(key, tuple) and len(key) == 3:
            del cols[key[0]][key[1]][key[2]]
        else:
            raise InvalidKeyError("use del co[column, key] or del co[column, key, subkey]")

    def __enter__(self) -> Any:
        """``with co:``: one with-block over every column (writes buffered until its end)."""
        self._alive()
        self._staging.enter()
        return self

    def __exit__(self, *exc: object) -> None:
        self._staging.exit()

    def _add_column(self, name: str, schema: ColumnSchema) -> Any:
        self._alive()
        validate_name(name, "column name")
        if name in self._staging.columns:
            raise InvalidKeyError(f"a column named {name!r} already exists")
        if self._staging.store.capabilities.round_trips:  # an object store: bigger blocks
            schema = replace(schema, block_bytes=REMOTE_BLOCK_BYTES)
        self._staging.add_column(name, schema)
        return self._alive()[name]

    def add_ndarray_column(  # noqa: PLR0917 - Hangar's positional signature
        self,
        name: str,
        shape: int | tuple[int, ...] | None = None,
        dtype: Any = None,
        prototype: np.ndarray[Any, Any] | None = None,
        variable_shape: bool = False,
        contains_subsamples: bool = False,
        *,
        backend: str | None = None,
        backend_options: Any = None,
    ) -> Any:
        """Add a column of numpy arrays and return it.

        Give ``prototype`` (an example array) or ``shape`` and ``dtype``. With
        ``variable_shape=True`` samples may have any shape of the same rank up
        to ``shape``. ``contains_subsamples=True`` makes a nested column.
        ``backend_options`` takes Zarr v3 codec metadata, a numcodecs config or
        Hangar's ``complib``/``complevel``/``shuffle`` options.
        """
        if prototype is not None:
            if not isinstance(prototype, np.ndarray):
                raise InvalidKeyError("prototype must be a numpy.ndarray")
            shape, dtype = prototype.shape, prototype.dtype
        if shape is None or dtype is None:
            raise InvalidKeyError(
                f"column {name!r}: give a prototype array, or both shape and dtype"
            )
        shape_t = (shape,) if isinstance(shape, int) else tuple(int(d) for d in shape)
        try:
            np_dtype = np.dtype(dtype)
        except TypeError as exc:
            raise InvalidKeyError(f"column {name!r}: invalid dtype {dtype!r}") from exc
        self._check_backend(backend)
        schema = ColumnSchema(
            "ndarray",
            "nested" if contains_subsamples else "flat",
            np_dtype.name,
            shape_t,
            bool(variable_shape),
            codecs_from_backend_options(backend_options, np_dtype),
        )
        return self._add_column(name, schema)

    def add_str_column(
        self,
        name: str,
        contains_subsamples: bool = False,
        *,
        backend: str | None = None,
        backend_options: Any = None,
    ) -> Any:
        """Add a column of ``str`` samples and return it."""
        return self._add_text_column("str", name, contains_subsamples, backend, backend_options)

    def add_bytes_column(
        self,
        name: str,
        contains_subsamples: bool = False,
        *,
        backend: str | None = None,
        backend_options: Any = None,
    ) -> Any:
        """Add a column of ``bytes`` samples and return it."""
        return self._add_text_column("bytes", name, contains_subsamples, backend, backend_options)

    def _add_text_column(
        self, kind: Any, name: str, nested: bool, backend: str | None, options: Any
    ) -> Any:
        self._check_backend(backend)
        codecs = codecs_from_backend_options(options, np.dtype("u1"))
        layout: Any = "nested" if nested else "flat"
        return self._add_column(name, ColumnSchema(kind, layout, kind, None, True, codecs))

    @staticmethod
    def _check_backend(backend: str | None) -> None:
        if backend not in (None, "zarr-v3-packed"):
            raise InvalidKeyError(
                f"backend {backend!r} is not available: hangar-cloud stores every column as "
                "Zarr v3 blocks in packed chunks; choose codecs with backend_options"
            )

    # ------------------------------------------------------------ commits
    def commit(self, commit_message: str) -> str:
        """Commit the staging area to the branch; return the commit id (``a=...``)."""
        self._alive()
        self._staging.check_usable()
        if not self._staging.has_changes:
            self._lease.verify()  # a writer that lost its lease hears that first
            raise HangarError("No changes made in staging area. Cannot commit.")
        return self._staging.commit(commit_message, self._repo._user_name, self._repo._user_email)

    def merge(self, message: str, dev_branch: str, *, strategy: str | None = None) -> str:
        """Merge ``dev_branch`` into this checkout's branch; return the new head.

        As :meth:`hangar.Repository.merge`, through this writer's lease. The
        staging area must be clean (commit or reset first), as in Hangar;
        afterwards it is based on the new head.
        """
        self._alive()
        staging = self._staging
        if staging.has_changes:
            raise RuntimeError(
                "Changes are currently pending in the staging area To avoid mangled "
                "histories, the staging area must exist in a clean state Please reset "
                "or commit any changes before the merge operation"
            )
        repo = self._repo
        outcome = merge_branch(
            staging.store, repo._read_commit, staging.cache, self._branch, dev_branch, message,
            (repo._user_name, repo._user_email), strategy=strategy, lease=self._lease,
        )  # fmt: skip
        staging.moved_to(outcome.commit, repo._read_commit(outcome.commit))
        print(MERGE_TEXT[outcome.kind])
        return outcome.commit

    def reset_staging_area(self) -> str | None:
        """Drop every uncommitted change; return the branch head commit."""
        self._alive()
        self._staging.reset()
        return self._staging.base_commit

    def close(self) -> None:
        """End any open with-block, and release the branch's lease; staged changes stay for
        the next writer.

        If the open with-block cannot be stored, its error is raised, and the
        checkout is closed and its lease released all the same (the staging
        area is back to what was stored before the block).
        """
        if self._columns is None:
            return
        try:
            self._staging.close_blocks()
        finally:
            self._columns = None
            atexit.unregister(self._close_at_exit)
            self._lease.release()

    def _close_at_exit(self) -> None:
        """:meth:`close` for a writer still open when the interpreter exits.

        If the store cannot be reached then (a server already stopped), say so in one
        warning instead of a traceback: the lease expires by itself. (The helper and
        upload threads are gone by then: a with-block still open is packed here.)
        """
        try:
            self.close()
        except Exception as exc:  # noqa: BLE001 - reported: nothing else can be done at exit
            warnings.warn(
                f"hangar: the writer checkout of branch {self._branch!r} could not be closed "
                f"at exit ({type(exc).__name__}: {exc}); its lease expires by itself, and "
                "writes of a with-block still open were not stored",
                RuntimeWarning,
                stacklevel=1,
            )


def reopen_checkout(store: Any, commit: str) -> ReaderCheckout:
    """Unpickle a read-only checkout: open ``commit`` of the repository in ``store``."""
    from hangar.repository import Repository

    checkout: ReaderCheckout = Repository(store).checkout(commit=commit)
    return checkout


def reopen_column(store: Any, commit: str, name: str) -> Any:
    """Unpickle a read-only column."""
    return reopen_checkout(store, commit).columns[name]
