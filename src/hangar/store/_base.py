"""The store contract: one small interface every backend implements.

A store is a flat namespace of immutable-or-conditionally-replaced objects under
one root. Keys are relative ``/``-separated strings (see
:func:`hangar.store.validate_key`). The public methods validate their
arguments, then call the backend's ``_``-prefixed hooks, so every backend gets
the same checks and the same errors.

The missing-key rule: every read of a key that does not exist (``get``,
``get_range``, ``get_versioned``) raises
:class:`~hangar.exceptions.ObjectNotFoundError`, a ``FileNotFoundError``.
``delete`` of a missing key is not an error (as on S3), and ``exists`` answers
``False``.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from hangar.exceptions import InvalidKeyError

from ._keys import validate_key, validate_prefix

Buffer = bytes | bytearray | memoryview

__all__ = ["Buffer", "Store", "StoreCapabilities", "Version"]


@dataclass(frozen=True, slots=True)
class Version:
    """An opaque token naming one version of one object.

    Obtain it from :meth:`Store.get_versioned`, :meth:`Store.put_if_absent` or
    :meth:`Store.replace_if_version` and pass it back to
    :meth:`Store.replace_if_version`. Tokens are only meaningful to the store
    (and key) that issued them: an S3 ETag, a GCS generation, a digest of a
    local file's identity and content, a counter in memory.
    """

    token: str

    def __post_init__(self) -> None:
        if not isinstance(self.token, str) or not self.token:
            raise InvalidKeyError(f"a version token must be a non-empty str, not {self.token!r}")

    def __str__(self) -> str:
        return self.token


@dataclass(frozen=True, slots=True)
class StoreCapabilities:
    """What a backend can promise.

    Attributes
    ----------
    atomic_create
        ``put_if_absent`` is one atomic operation of the backend (never check-then-write).
    compare_and_swap
        ``replace_if_version`` is one atomic operation of the backend.
    single_request_range
        ``get_range`` costs one request and transfers only the range.
    shared_between_processes
        Other processes (and machines) opening the same URL see the same objects.
    lost_reply_recovery
        A conditional write whose reply was lost and was retried is recognised
        by a write id stored with the object, so it is reported as the success it was.
    append
        :meth:`Store.append` adds bytes to the end of an object in one cheap call
        (a local file, memory). Object stores (S3, GCS) cannot append.
    round_trips
        Every request is a network round trip (milliseconds): writers keep
        several writes in flight instead of waiting for each (S3, GCS).
    """

    atomic_create: bool = True
    compare_and_swap: bool = True
    single_request_range: bool = True
    shared_between_processes: bool = True
    lost_reply_recovery: bool = False
    append: bool = False
    round_trips: bool = False


def _check_data(data: object) -> Buffer:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"store values must be bytes-like, not {type(data).__name__}")
    return data


class Store(abc.ABC):
    """A repository's storage: objects under one root, with atomic conditional writes.

    Create one with :func:`hangar.store.open_store`. Stores pickle as their URL
    and storage options, so a worker process reopens the same location.

    Attributes
    ----------
    url
        The location of the root, e.g. ``/data/repo/.hangar``, ``memory://x``,
        ``s3://bucket/prefix``.
    storage_options
        The options the store was opened with (passed on to fsspec).
    capabilities
        What this backend promises, see :class:`StoreCapabilities`.
    """

    capabilities: StoreCapabilities = StoreCapabilities()

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.url = url
        self.storage_options: dict[str, Any] = dict(storage_options or {})

    # ------------------------------------------------------------------ reads
    def get(self, key: str) -> bytes:
        """Return the whole object at ``key``.

        Raises
        ------
        ObjectNotFoundError
            If there is no object at ``key``.
        """
        return self._get(validate_key(key))

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Return bytes ``start`` (inclusive) to ``end`` (exclusive) of the object.

        One ranged request on S3 and GCS. A range that runs past the end of the
        object is cut at the end, as with Python slices; a range that starts at
        or after the end is ``b""``.

        Raises
        ------
        ObjectNotFoundError
            If there is no object at ``key``.
        ValueError
            If ``start`` is negative or ``end < start``.
        """
        key = validate_key(key)
        if not isinstance(start, int) or not isinstance(end, int):
            raise TypeError("start and end must be int")
        if start < 0 or end < start:
            raise ValueError(f"invalid byte range [{start}, {end}): need 0 <= start <= end")
        if start == end:
            if not self._exists(key):
                raise self._not_found(key)
            return b""
        return self._get_range(key, start, end)

    def get_versioned(self, key: str) -> tuple[bytes, Version]:
        """Return the object's bytes and the version they belong to, read together.

        Raises
        ------
        ObjectNotFoundError
            If there is no object at ``key``.
        """
        return self._get_versioned(validate_key(key))

    def exists(self, key: str) -> bool:
        """Return whether an object is stored at ``key``."""
        return self._exists(validate_key(key))

    def list(self, prefix: str = "") -> Iterator[str]:
        """Iterate, in sorted order, over the keys under ``prefix``.

        ``prefix`` names a folder: ``list("refs/heads")`` yields
        ``refs/heads/master.json`` but not ``refs/headsup.json``, and never the
        folder itself (an object stored at ``prefix`` is not under it). ``""``
        lists every key in the store.
        """
        prefix = validate_prefix(prefix)
        return iter(sorted(self._list(prefix)))

    def disk_usage(self, prefix: str = "") -> int:
        """Total bytes of the objects under ``prefix`` (one listing, no reads)."""
        return self._disk_usage(validate_prefix(prefix))

    def _disk_usage(self, prefix: str) -> int:
        return sum(len(self._get(k)) for k in self._list(prefix))

    # ----------------------------------------------------------------- writes
    def put(self, key: str, data: Buffer) -> None:
        """Write ``data`` at ``key``, replacing any object there.

        Meant for immutable, content-addressed objects: two writers of the same
        key write the same bytes. Readers see the old object or the new one,
        never a part.
        """
        self._put(validate_key(key), _check_data(data))

    def put_if_absent(self, key: str, data: Buffer) -> Version:
        """Create the object at ``key`` atomically, only if no object is there.

        Of any number of concurrent callers on any number of machines, exactly
        one succeeds.

        Returns
        -------
        Version
            The version of the object just written.

        Raises
        ------
        AlreadyExistsError
            (a ``FileExistsError``) if an object already exists at ``key``.
        """
        return self._put_if_absent(validate_key(key), _check_data(data))

    def replace_if_version(self, key: str, data: Buffer, version: Version) -> Version:
        """Replace the object at ``key`` only if it is still at ``version`` (compare-and-swap).

        Of any number of concurrent callers that read the same version, exactly
        one succeeds.

        Returns
        -------
        Version
            The version of the object just written.

        Raises
        ------
        VersionConflictError
            If the object is at another version, or is gone.
        """
        key = validate_key(key)
        if not isinstance(version, Version):
            raise TypeError(f"version must be a hangar.store.Version, not {type(version).__name__}")
        return self._replace_if_version(key, _check_data(data), version)

    def delete(self, key: str) -> None:
        """Remove the object at ``key``; a missing key is not an error."""
        self._delete(validate_key(key))

    def append(self, key: str, data: Buffer) -> None:
        """Add ``data`` to the end of the object at ``key``, creating it if there is none.

        Only on stores whose ``capabilities.append`` is True. Unlike every
        other write, a reader may see part of an append that is under way:
        callers frame what they append so that a torn end can be told apart.
        Appends are for objects one writer owns; their bytes are in the store
        (not necessarily on disk, unless the store syncs) when the call returns.

        Raises
        ------
        StoreCapabilityError
            (a ``NotImplementedError``) on stores that cannot append (S3, GCS).
        """
        key = validate_key(key)
        data = _check_data(data)
        if not self.capabilities.append:
            from hangar.exceptions import StoreCapabilityError

            raise StoreCapabilityError(
                f"store {self.url} cannot append to an object (S3 and GCS objects are "
                "written whole)"
            )
        self._append(key, data)

    # ------------------------------------------------------------ protocol
    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        from . import _reopen

        return (_reopen, (self.url, self.storage_options))

    def _not_found(self, key: str, detail: str = "") -> Exception:
        from hangar.exceptions import ObjectNotFoundError

        return ObjectNotFoundError(key, detail or f"in store {self.url}")

    # ------------------------------------------------------------- backends
    @abc.abstractmethod
    def _get(self, key: str) -> bytes: ...

    @abc.abstractmethod
    def _get_range(self, key: str, start: int, end: int) -> bytes: ...

    @abc.abstractmethod
    def _get_versioned(self, key: str) -> tuple[bytes, Version]: ...

    @abc.abstractmethod
    def _exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    def _list(self, prefix: str) -> Iterator[str]: ...

    @abc.abstractmethod
    def _put(self, key: str, data: Buffer) -> None: ...

    @abc.abstractmethod
    def _put_if_absent(self, key: str, data: Buffer) -> Version: ...

    @abc.abstractmethod
    def _replace_if_version(self, key: str, data: Buffer, version: Version) -> Version: ...

    @abc.abstractmethod
    def _delete(self, key: str) -> None: ...

    def _append(self, key: str, data: Buffer) -> None:
        raise NotImplementedError  # only stores with capabilities.append override it
