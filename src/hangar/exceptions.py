"""Every error hangar raises, in one place.

The tree, with the built-in each class also is, so that code which already
catches the built-in keeps working::

    HangarError (Exception)
    ├── ObjectNotFoundError (FileNotFoundError)   a key that is not in the store
    ├── AlreadyExistsError (FileExistsError)      put_if_absent on a key that exists
    ├── VersionConflictError                      replace_if_version lost: object changed/gone
    ├── InvalidKeyError (ValueError)              a key or name that may not become a path
    ├── InvalidStoreURLError (ValueError)         a location open_store cannot resolve
    ├── StoreCapabilityError (NotImplementedError) a backend cannot do what was asked
    ├── CorruptionError                           stored bytes do not match their digest
    ├── LockHeldError (PermissionError)           another writer holds the branch's lease
    ├── LeaseLostError (PermissionError)          this writer's lease expired or was taken
    ├── ReadOnlyError (PermissionError)           a write through a read-only checkout
    ├── RepositoryNotFoundError (FileNotFoundError) no repository at the location yet
    ├── SampleKeyError (KeyError)                 no such sample, subsample or column
    ├── RefNotFoundError (KeyError, ValueError)   no branch, tag or commit of that name
    ├── NameTakenError (ValueError)               a branch or tag of that name exists
    ├── EmptyHistoryError (RuntimeError)          the branch has no commit yet
    ├── UnmergedBranchError (RuntimeError)        removal would drop unmerged history
    ├── StagingBrokenError (RuntimeError)         a writer could not rebuild its staged state
    └── MergeConflictError (ValueError)           a merge or rebuilt commit met conflicts

``VersionConflictError`` subclasses ``HangarError`` only: a lost compare-and-swap
is an expected outcome that callers retry, not an OS error.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExistsError",
    "CorruptionError",
    "EmptyHistoryError",
    "HangarError",
    "InvalidKeyError",
    "InvalidStoreURLError",
    "LeaseLostError",
    "LockHeldError",
    "MergeConflictError",
    "NameTakenError",
    "ObjectNotFoundError",
    "ReadOnlyError",
    "RefNotFoundError",
    "RepositoryNotFoundError",
    "SampleKeyError",
    "StagingBrokenError",
    "StoreCapabilityError",
    "UnmergedBranchError",
    "VersionConflictError",
]


class HangarError(Exception):
    """Base class of every error raised by hangar."""


class ObjectNotFoundError(HangarError, FileNotFoundError):
    """The key names no object in the store.

    Parameters
    ----------
    key
        The store key that was looked up.
    """

    def __init__(self, key: str, detail: str = "") -> None:
        self.key = key
        msg = f"no object at key {key!r}"
        super().__init__(f"{msg}: {detail}" if detail else msg)

    def __str__(self) -> str:  # FileNotFoundError would format errno/filename
        return str(self.args[0])


class AlreadyExistsError(HangarError, FileExistsError):
    """``put_if_absent`` found the key already taken by another writer."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(
            f"an object already exists at key {key!r}; it was created by another "
            "writer (read it, or choose another key)"
        )

    def __str__(self) -> str:
        return str(self.args[0])


class VersionConflictError(HangarError):
    """``replace_if_version`` lost: the object is no longer at the expected version.

    Attributes
    ----------
    key
        The store key.
    expected
        The version token the caller expected.
    """

    def __init__(self, key: str, expected: object, detail: str = "") -> None:
        self.key = key
        self.expected = expected
        msg = (
            f"the object at key {key!r} is no longer at version {expected!s}; "
            "another writer changed or deleted it (read it again and retry)"
        )
        super().__init__(f"{msg}: {detail}" if detail else msg)


class InvalidKeyError(HangarError, ValueError):
    """A key or name that may not become part of an object path."""


class InvalidStoreURLError(HangarError, ValueError):
    """``open_store`` was given a location it cannot resolve to a store."""


class StoreCapabilityError(HangarError, NotImplementedError):
    """The backend cannot perform the requested operation."""


class CorruptionError(HangarError):
    """Stored bytes do not match their digest: they are never returned as data."""


class LockHeldError(HangarError, PermissionError):
    """Another writer holds the lease of the branch."""


class LeaseLostError(HangarError, PermissionError):
    """This writer's lease expired, was force-released or taken over: it may not write."""


class ReadOnlyError(HangarError, PermissionError):
    """A write was attempted through a read-only checkout or column."""


class RepositoryNotFoundError(HangarError, FileNotFoundError):
    """No repository exists at the location: call ``Repository.init()`` first."""

    def __str__(self) -> str:
        return str(self.args[0])


class SampleKeyError(HangarError, KeyError):
    """No such sample, subsample or column."""

    def __str__(self) -> str:
        return str(self.args[0])


class RefNotFoundError(HangarError, KeyError, ValueError):
    """No branch, tag or commit of that name (a ``KeyError``; a ``ValueError`` as in Hangar)."""

    def __str__(self) -> str:
        return str(self.args[0])


class NameTakenError(HangarError, ValueError):
    """A branch or tag of that name already exists."""


class EmptyHistoryError(HangarError, RuntimeError):
    """The operation needs a commit and the branch has none yet."""


class UnmergedBranchError(HangarError, RuntimeError):
    """Removing the branch would drop history that no other branch holds."""


class StagingBrokenError(HangarError, RuntimeError):
    """A write failed and the writer could not read its staging journal back to recover.

    What was staged before the failure is in the journal: open a new writer
    checkout to get it back, or ``reset_staging_area()`` to drop it.
    """


class MergeConflictError(HangarError, ValueError):
    """A merge (or a commit rebuilt on a branch head that moved) met conflicts; nothing changed.

    ``conflicts`` holds them as Hangar's :class:`hangar.diff.Conflicts`
    (``t1``, ``t21``, ``t22``, ``t3``; schema conflicts under ``t3.schema``).
    A ``ValueError``, as Hangar raises for a conflicted merge.
    """

    def __init__(self, message: str, conflicts: object) -> None:
        super().__init__(message)
        self.conflicts = conflicts
