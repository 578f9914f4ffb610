"""A store wrapper that counts calls: for tests that assert request counts, not timings."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

from hangar.store import Buffer, Store, Version

__all__ = ["CountingStore"]


class CountingStore(Store):
    """Forwards every operation to ``inner`` and counts them in :attr:`calls`.

    ``calls`` counts by operation name (``"get_range"``, ``"put"``...);
    ``bytes_read`` and ``bytes_written`` add up payloads; ``log`` lists every
    ``(operation, key)`` in order (the prefix for ``list``). Safe to share
    between threads (scans read from several): every count is taken under a lock.
    """

    def __init__(self, inner: Store) -> None:
        super().__init__(inner.url, inner.storage_options)
        self.inner = inner
        self.capabilities = inner.capabilities
        self.calls: Counter[str] = Counter()
        self.bytes_read = 0
        self.bytes_written = 0
        self.log: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def _count(self, op: str, key: str, read: int = 0, written: int = 0) -> None:
        with self._lock:
            self.calls[op] += 1
            self.log.append((op, key))
            self.bytes_read += read
            self.bytes_written += written

    def keys_of(self, *ops: str, prefix: str = "") -> list[str]:
        """Keys that ``ops`` touched (all operations if none are named), under ``prefix``."""
        return [k for op, k in self.log if (not ops or op in ops) and k.startswith(prefix)]

    def reset(self) -> None:
        """Zero the counters."""
        with self._lock:
            self.calls.clear()
            self.log.clear()
            self.bytes_read = self.bytes_written = 0

    def _read(self, op: str, key: str, data: bytes) -> bytes:
        self._count(op, key, read=len(data))
        return data

    def _get(self, key: str) -> bytes:
        return self._read("get", key, self.inner.get(key))

    def _get_range(self, key: str, start: int, end: int) -> bytes:
        return self._read("get_range", key, self.inner.get_range(key, start, end))

    def _get_versioned(self, key: str) -> tuple[bytes, Version]:
        data, version = self.inner.get_versioned(key)
        return self._read("get_versioned", key, data), version

    def _exists(self, key: str) -> bool:
        self._count("exists", key)
        return self.inner.exists(key)

    def _list(self, prefix: str) -> Iterator[str]:
        self._count("list", prefix)
        return self.inner.list(prefix)

    def _put(self, key: str, data: Buffer) -> None:
        self._count("put", key, written=len(data))
        self.inner.put(key, data)

    def _put_if_absent(self, key: str, data: Buffer) -> Version:
        self._count("put_if_absent", key, written=len(data))
        return self.inner.put_if_absent(key, data)

    def _replace_if_version(self, key: str, data: Buffer, version: Version) -> Version:
        self._count("replace_if_version", key, written=len(data))
        return self.inner.replace_if_version(key, data, version)

    def _append(self, key: str, data: Buffer) -> None:
        self._count("append", key, written=len(data))
        self.inner.append(key, data)

    def _delete(self, key: str) -> None:
        self._count("delete", key)
        self.inner.delete(key)

    def _disk_usage(self, prefix: str) -> int:
        return self.inner.disk_usage(prefix)

    def __reduce__(self) -> Any:
        return (CountingStore, (self.inner,))
