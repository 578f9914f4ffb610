"""Local disk: atomic create with ``os.link``, compare-and-swap under ``flock``.

- ``put``: write a temporary file under ``<root>/.hangar-tmp``, then
  ``os.replace`` it over the key: readers see the old file or the new one.
- ``put_if_absent``: write and ``fsync`` a temporary file, then ``os.link`` it
  to the key. ``link`` fails if the key exists, atomically; the object is
  complete before it becomes visible. (fsspec's ``mode="create"`` on local disk
  checks and then writes, a race, and is not used.)
- ``replace_if_version``: the new file is written first; then, holding an
  exclusive ``fcntl.flock`` on the key's folder (released by the kernel if the
  process dies), the current file is read, its version compared, and the new
  file renamed over it.
- A version is a digest of the file's identity (inode, modification time,
  size) and content, read from one open file descriptor.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import uuid
from collections.abc import Iterator

from hangar.exceptions import AlreadyExistsError, VersionConflictError

from ._base import Buffer, Store, StoreCapabilities, Version
from ._keys import RESERVED_SEGMENT

__all__ = ["LocalStore"]


_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_APPEND_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)


def _token(st: os.stat_result, data: Buffer) -> Version:
    digest = hashlib.blake2b(data, digest_size=8).hexdigest()
    return Version(f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}-{digest}")


class LocalStore(Store):
    """A store in a folder of the local file system (one object per file).

    Parameters
    ----------
    root
        The folder; created on first write.
    fsync
        Also ``fsync`` unconditional ``put`` writes (conditional writes are
        always synced to disk before they become visible).
    """

    capabilities = StoreCapabilities(lost_reply_recovery=False, append=True)

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.root = os.path.abspath(os.fspath(root))
        super().__init__(self.root, {"fsync": fsync} if fsync else {})
        self._fsync = fsync
        self._tmpdir = os.path.join(self.root, RESERVED_SEGMENT)

    # ------------------------------------------------------------- helpers
    def _path(self, key: str) -> str:
        return os.path.join(self.root, *key.split("/"))

    def _open(self, path: str, flags: int) -> int:
        """A descriptor of ``path`` opened with ``flags``, its folder made if missing."""
        try:
            return os.open(path, flags, 0o644)
        except FileNotFoundError:  # first object in its folder
            self._ensure_parent(path)
            return os.open(path, flags, 0o644)

    @staticmethod
    def _write_all(fd: int, data: Buffer, sync: bool) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if sync:
            os.fsync(fd)

    def _write_temp(self, data: Buffer, sync: bool) -> str:
        tmp = os.path.join(self._tmpdir, uuid.uuid4().hex)
        fd = self._open(tmp, _TEMP_FLAGS)
        try:
            self._write_all(fd, data, sync)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        os.close(fd)
        return tmp

    def _ensure_parent(self, path: str) -> str:
        parent = os.path.dirname(path)
        os.makedirs(parent, exist_ok=True)
        return parent

    @contextlib.contextmanager
    def _locked(self, folder: str) -> Iterator[None]:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the last descriptor releases the flock

    def _read_versioned(self, path: str, key: str) -> tuple[bytes, Version]:
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                data = f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise self._not_found(key) from exc
        return data, _token(st, data)

    # --------------------------------------------------------------- reads
    def _get(self, key: str) -> bytes:
        try:
            with open(self._path(key), "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise self._not_found(key) from exc

    def _get_range(self, key: str, start: int, end: int) -> bytes:
        try:
            with open(self._path(key), "rb") as f:
                f.seek(start)
                return f.read(end - start)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise self._not_found(key) from exc

    def _get_versioned(self, key: str) -> tuple[bytes, Version]:
        return self._read_versioned(self._path(key), key)

    def _exists(self, key: str) -> bool:
        return os.path.isfile(self._path(key))

    def _list(self, prefix: str) -> Iterator[str]:
        top = self._path(prefix) if prefix else self.root
        if os.path.isfile(top):
            return  # a folder listing never yields the folder itself
        for dirpath, dirnames, filenames in os.walk(top):
            rel = os.path.relpath(dirpath, self.root)
            if rel == ".":
                dirnames[:] = [d for d in dirnames if d != RESERVED_SEGMENT]
                rel = ""
            base = rel.replace(os.sep, "/")
            for name in filenames:
                yield f"{base}/{name}" if base else name

    def _disk_usage(self, prefix: str) -> int:
        return sum(os.path.getsize(self._path(k)) for k in self._list(prefix))

    # -------------------------------------------------------------- writes
    def _put(self, key: str, data: Buffer) -> None:
        path = self._path(key)
        tmp = self._write_temp(data, self._fsync)
        try:
            try:
                os.replace(tmp, path)
            except FileNotFoundError:  # first object in its folder
                self._ensure_parent(path)
                os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _put_if_absent(self, key: str, data: Buffer) -> Version:
        path = self._path(key)
        tmp = self._write_temp(data, sync=True)
        try:
            self._ensure_parent(path)
            try:
                os.link(tmp, path)
            except FileExistsError as exc:
                raise AlreadyExistsError(key) from exc
            return _token(os.stat(tmp), data)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _replace_if_version(self, key: str, data: Buffer, version: Version) -> Version:
        path = self._path(key)
        tmp = self._write_temp(data, sync=True)
        try:
            with contextlib.ExitStack() as stack:
                try:
                    stack.enter_context(self._locked(os.path.dirname(path)))
                except (FileNotFoundError, NotADirectoryError) as exc:
                    raise VersionConflictError(key, version, "the object does not exist") from exc
                try:
                    _, current = self._read_versioned(path, key)
                except FileNotFoundError as exc:
                    raise VersionConflictError(key, version, "the object is gone") from exc
                if current != version:
                    raise VersionConflictError(key, version, f"it is at version {current}")
                new = _token(os.stat(tmp), data)
                os.replace(tmp, path)
                return new
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _append(self, key: str, data: Buffer) -> None:
        fd = self._open(self._path(key), _APPEND_FLAGS)  # O_APPEND: every write at the end
        try:
            self._write_all(fd, data, self._fsync)
        finally:
            os.close(fd)

    def _delete(self, key: str) -> None:
        path = self._path(key)
        folder = os.path.dirname(path)
        try:
            with self._locked(folder):
                os.unlink(path)
        except (FileNotFoundError, NotADirectoryError):
            pass
