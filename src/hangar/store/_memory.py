"""In-process memory, on fsspec's ``memory://`` file system.

Objects live in fsspec's process-wide memory store, so every ``memory://x``
opened in one process sees the same objects (and fsspec's own memory file
system sees them too). Conditional writes run under one process-wide lock. A
version is a counter tied to the stored file object, so an object replaced
behind the store's back gets a new version too. Memory is not shared between
processes: ``capabilities.shared_between_processes`` is ``False``.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from typing import Any

from fsspec.implementations.memory import MemoryFile, MemoryFileSystem

from hangar.exceptions import AlreadyExistsError, VersionConflictError

from ._base import Buffer, Store, StoreCapabilities, Version

__all__ = ["MemoryStore"]

_LOCK = threading.RLock()
_COUNTER = itertools.count(1)
# path -> (the MemoryFile object that version was given to, version number)
_VERSIONS: dict[str, tuple[Any, int]] = {}


class MemoryStore(Store):
    """A store in this process's memory (fsspec ``memory://``).

    Parameters
    ----------
    path
        The root inside the memory file system, e.g. ``"repo"`` for ``memory://repo``.
    """

    capabilities = StoreCapabilities(shared_between_processes=False, append=True)

    def __init__(self, path: str) -> None:
        self._fs = MemoryFileSystem()
        self.root = "/" + path.strip("/") if path.strip("/") else ""
        super().__init__(f"memory://{path.strip('/')}")

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def _file(self, key: str) -> Any:
        f = self._fs.store.get(self._path(key))
        if f is None:
            raise self._not_found(key)
        return f

    def _version_of(self, path: str, f: Any) -> Version:
        known = _VERSIONS.get(path)
        if known is None or known[0] is not f:
            known = (f, next(_COUNTER))
            _VERSIONS[path] = known
        return Version(str(known[1]))

    def _store(self, key: str, data: Buffer) -> Any:
        # straight into fsspec's memory store: what pipe_file ends in, without open()
        path = self._path(key)
        f = MemoryFile(self._fs, path, bytes(data))
        self._fs.store[path] = f
        return f

    # --------------------------------------------------------------- reads
    # reads copy with getvalue(), or under the lock: an append grows a file in place, which
    # a buffer exported at the same moment would forbid
    def _get(self, key: str) -> bytes:
        data: bytes = self._file(key).getvalue()
        return data

    def _get_range(self, key: str, start: int, end: int) -> bytes:
        with _LOCK, self._file(key).getbuffer() as view:
            return bytes(view[start:end])

    def _get_versioned(self, key: str) -> tuple[bytes, Version]:
        with _LOCK:
            f = self._file(key)
            return f.getvalue(), self._version_of(self._path(key), f)

    def _exists(self, key: str) -> bool:
        return self._path(key) in self._fs.store

    def _list(self, prefix: str) -> Iterator[str]:
        base = f"{self.root}/"
        want = f"{base}{prefix}/" if prefix else base
        for path in list(self._fs.store):
            if path.startswith(want):  # a folder listing never yields the folder itself
                yield path[len(base) :]

    def _disk_usage(self, prefix: str) -> int:
        with _LOCK:
            return sum(self._file(k).getbuffer().nbytes for k in self._list(prefix))

    # -------------------------------------------------------------- writes
    def _put(self, key: str, data: Buffer) -> None:
        with _LOCK:
            self._store(key, data)

    def _put_if_absent(self, key: str, data: Buffer) -> Version:
        with _LOCK:
            if self._path(key) in self._fs.store:
                raise AlreadyExistsError(key)
            return self._version_of(self._path(key), self._store(key, data))

    def _replace_if_version(self, key: str, data: Buffer, version: Version) -> Version:
        with _LOCK:
            path = self._path(key)
            f = self._fs.store.get(path)
            if f is None:
                raise VersionConflictError(key, version, "the object is gone")
            current = self._version_of(path, f)
            if current != version:
                raise VersionConflictError(key, version, f"it is at version {current}")
            return self._version_of(path, self._store(key, data))

    def _append(self, key: str, data: Buffer) -> None:
        with _LOCK:
            path = self._path(key)
            f = self._fs.store.get(path)
            if f is None:
                self._store(key, data)
                return
            f.seek(0, 2)
            f.write(data)  # in place: amortised constant time, as a file's append
            _VERSIONS.pop(path, None)  # the object changed: a new version when asked

    def _delete(self, key: str) -> None:
        with _LOCK:
            path = self._path(key)
            self._fs.store.pop(path, None)
            _VERSIONS.pop(path, None)
