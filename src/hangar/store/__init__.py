"""The one interface to storage.

:func:`open_store` turns what a user passes (a path, a URL with
``storage_options``, or a store) into a :class:`Store`. Backends:

==========================  ==========================================================
location                    backend
==========================  ==========================================================
``/path``, ``file:///path``  :class:`LocalStore`: a folder on local disk
``memory://name``           :class:`MemoryStore`: this process's memory (fsspec ``memory://``)
``s3://bucket/prefix``      ``S3Store``: S3, MinIO, SeaweedFS... through s3fs
``gs://bucket/prefix``      ``GCSStore``: Google Cloud Storage through gcsfs
==========================  ==========================================================

The S3 and GCS backends are imported on first use, so ``import hangar`` does
not pay for s3fs or gcsfs.
"""

from __future__ import annotations

import os
from typing import Any

from hangar.exceptions import InvalidStoreURLError

from ._base import Buffer, Store, StoreCapabilities, Version
from ._keys import validate_key, validate_prefix
from ._local import LocalStore
from ._memory import MemoryStore

__all__ = [
    "Buffer",
    "LocalStore",
    "MemoryStore",
    "Store",
    "StoreCapabilities",
    "Version",
    "open_store",
    "validate_key",
    "validate_prefix",
]

_S3_SCHEMES = ("s3", "s3a")
_GCS_SCHEMES = ("gs", "gcs")


def open_store(location: str | os.PathLike[str] | Store, **storage_options: Any) -> Store:
    """Return the store at ``location``.

    Parameters
    ----------
    location
        A local path or ``file://`` URL, ``memory://name``,
        ``s3://bucket[/prefix]``, ``gs://bucket[/prefix]``, or a :class:`Store`
        (returned as it is).
    **storage_options
        Passed to the fsspec file system of S3 and GCS stores (``key``,
        ``secret``, ``endpoint_url``, ``token``...). For local disk the only
        option is ``fsync`` (bool); memory takes none.

    Raises
    ------
    InvalidStoreURLError
        (a ``ValueError``) for an unknown scheme, a URL without a bucket, or
        options a backend does not take.
    """
    if isinstance(location, Store):
        if storage_options:
            raise InvalidStoreURLError("storage_options cannot be applied to an open Store")
        return location
    if isinstance(location, os.PathLike):
        location = os.fspath(location)
    if not isinstance(location, str) or not location:
        raise InvalidStoreURLError(f"a store location must be a path or URL, not {location!r}")
    scheme, sep, rest = location.partition("://")
    if not sep:
        return _local(location, storage_options)
    scheme = scheme.lower()
    if scheme == "file":
        return _local(rest, storage_options)
    if scheme == "memory":
        if storage_options:
            raise InvalidStoreURLError(
                f"memory stores take no options, got {sorted(storage_options)}"
            )
        return MemoryStore(rest)
    if scheme in _S3_SCHEMES:
        from ._s3 import S3Store

        return S3Store(f"s3://{rest}", **storage_options)
    if scheme in _GCS_SCHEMES:
        from ._gcs import GCSStore

        return GCSStore(f"gs://{rest}", **storage_options)
    raise InvalidStoreURLError(
        f"unknown storage scheme {scheme!r} in {location!r}; use a local path, file://, "
        "memory://, s3:// or gs://"
    )


def _local(path: str, options: dict[str, Any]) -> LocalStore:
    unknown = set(options) - {"fsync"}
    if unknown:
        raise InvalidStoreURLError(f"local stores take only 'fsync', got {sorted(unknown)}")
    return LocalStore(path, fsync=bool(options.get("fsync", False)))


def _reopen(url: str, storage_options: dict[str, Any]) -> Store:
    """Unpickle a store: open the same location again."""
    return open_store(url, **storage_options)
