"""What S3 and GCS share: conditional writes that survive a lost reply.

A conditional write (create-if-absent, compare-and-swap) whose reply is lost
is retried by the client library, and the retry then meets the object the
first attempt wrote: a false conflict. Every conditional write here therefore
stores a fresh write id in the object's user metadata (``hangar-write-id``).
When a write ends in a conflict, or in a transport error, the object is read
back: if it carries our write id, the write happened and is reported as the
success it was; otherwise the conflict (or the transport error) stands. So a
caller never gets an error for a write that took effect, nor success for one
that did not. (A transport error with no trace of our write is re-raised: the
request may still be in flight, so its outcome is unknown.)
"""

from __future__ import annotations

import abc
import os
import uuid
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from fsspec.asyn import sync

from hangar.exceptions import (
    AlreadyExistsError,
    InvalidStoreURLError,
    ObjectNotFoundError,
    VersionConflictError,
)

from . import _fork
from ._base import Buffer, Store, StoreCapabilities, Version

T = TypeVar("T")

_fork.install()  # a forked child must not close the parent's pooled connections

#: user-metadata key that carries a conditional write's id
WRITE_ID = "hangar-write-id"


class PreconditionFailedError(Exception):
    """Raised by a backend hook when the server refused a conditional write."""


class RemoteStore(Store):
    """Base of the object-store backends that run on an fsspec async file system.

    ``url`` is ``<scheme>://bucket[/prefix]``; ``storage_options`` go to the
    fsspec file system, with its listing cache off unless asked for (a store
    must see other writers' objects at once).
    """

    capabilities = StoreCapabilities(lost_reply_recovery=True, round_trips=True)

    def __init__(self, url: str, **storage_options: Any) -> None:
        super().__init__(url, storage_options)
        path = url.split("://", 1)[1].strip("/")
        self.bucket, _, prefix = path.partition("/")
        if not self.bucket:
            scheme = url.split("://", 1)[0]
            raise InvalidStoreURLError(f"{url!r} names no bucket: use {scheme}://bucket/prefix")
        self.prefix = prefix.strip("/")
        self.root = f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket
        self._fs_options = {"use_listings_cache": False, **storage_options}
        self._fs_pid = os.getpid()
        self._fs_now = self._make_fs(self._fs_options)

    @property
    def _fs(self) -> Any:
        """The fsspec file system of this process: a forked child makes its own.

        fsspec's clients run on an event loop thread that a fork does not
        copy, so a store used before a fork (a data loader's workers) would
        fail in the child; it reconnects instead. Letting go of the parent's
        file system here leaves the parent's connections working
        (:mod:`hangar.store._fork`).
        """
        if self._fs_pid != os.getpid():
            self._fs_now = self._make_fs(self._fs_options)
            self._fs_pid = os.getpid()
        return self._fs_now

    @abc.abstractmethod
    def _make_fs(self, options: dict[str, Any]) -> Any:
        """Return the fsspec file system for these options."""

    def _key(self, key: str) -> str:
        """The object name inside the bucket."""
        return f"{self.prefix}/{key}" if self.prefix else key

    def _path(self, key: str) -> str:
        """The fsspec path, ``bucket/prefix/key``."""
        return f"{self.root}/{key}"

    def _get(self, key: str) -> bytes:
        try:
            data: bytes = self._fs.cat_file(self._path(key))
        except FileNotFoundError as exc:
            raise self._not_found(key) from exc
        return data

    def _exists(self, key: str) -> bool:
        return self._run(self._a_written_by(key)) is not None

    def _list(self, prefix: str) -> Iterator[str]:
        top = self._path(prefix) if prefix else self.root
        cut = len(self.root) + 1
        try:
            found = self._fs.find(top, detail=True)
        except FileNotFoundError:
            return
        for path, info in found.items():
            rel = path[cut:]
            # a folder listing never yields a folder: an S3 server may keep a marker for
            # a folder whose objects are gone, which s3fs reports as an entry
            if info.get("type") == "directory" or not rel:
                continue
            if not prefix or rel.startswith(prefix + "/"):
                yield rel

    def _disk_usage(self, prefix: str) -> int:
        top = self._path(prefix) if prefix else self.root
        try:
            found = self._fs.find(top, detail=True)
        except FileNotFoundError:
            return 0
        return sum(int(info.get("size", 0)) for info in found.values())

    def _put(self, key: str, data: Buffer) -> None:
        if isinstance(data, memoryview):  # botocore takes bytes, bytearray or files
            data = data.tobytes()
        self._fs.pipe_file(self._path(key), data)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        async def _await() -> T:
            return await coro

        result: T = sync(self._fs.loop, _await)
        return result

    # the two hooks a backend implements
    @abc.abstractmethod
    async def _a_conditional_put(
        self, key: str, data: Buffer, version: Version | None, write_id: str
    ) -> Version:
        """Create (``version is None``) or replace-if-version; raise
        :class:`PreconditionFailedError` when the server refuses, ObjectNotFoundError
        when the object to replace is gone."""

    @abc.abstractmethod
    async def _a_written_by(self, key: str) -> tuple[str | None, Version] | None:
        """Return (write id, version) of the object now at ``key``, or None if absent."""

    async def _a_conditional(self, key: str, data: Buffer, version: Version | None) -> Version:
        write_id = uuid.uuid4().hex
        try:
            return await self._a_conditional_put(key, data, version, write_id)
        except (PreconditionFailedError, ObjectNotFoundError) as exc:
            mine = await self._a_mine(key, write_id)
            if mine is not None:
                return mine
            if version is None:
                raise AlreadyExistsError(key) from exc
            detail = "the object is gone" if isinstance(exc, ObjectNotFoundError) else ""
            raise VersionConflictError(key, version, detail) from exc
        except Exception:
            # transport failure after the client's own retries: did it land?
            try:
                mine = await self._a_mine(key, write_id)
            except Exception:  # noqa: BLE001 - the original error is the one to report
                mine = None
            if mine is not None:
                return mine
            raise

    async def _a_mine(self, key: str, write_id: str) -> Version | None:
        found = await self._a_written_by(key)
        if found is not None and found[0] == write_id:
            return found[1]
        return None

    def _put_if_absent(self, key: str, data: Buffer) -> Version:
        return self._run(self._a_conditional(key, data, None))

    def _replace_if_version(self, key: str, data: Buffer, version: Version) -> Version:
        return self._run(self._a_conditional(key, data, version))
