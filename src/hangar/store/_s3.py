"""Amazon S3 and S3-compatible servers (MinIO, SeaweedFS, moto) through s3fs.

- version: the object's ETag;
- ``put_if_absent``: ``PutObject`` with ``If-None-Match: *``;
- ``replace_if_version``: ``PutObject`` with ``If-Match: <etag>``;
- ``get_range``: one ``GetObject`` with a ``Range`` header (sent by obstore
  where it can be, see :mod:`hangar.store._obstore`; so are plain puts).

An ETag is a digest of the content, so an object rewritten with identical bytes
keeps its version: a compare-and-swap only tells content apart. Conditional
writes are single ``PutObject`` requests (at most 5 GB).
"""

from __future__ import annotations

from typing import Any

import s3fs

from ._base import Buffer, Version
from ._obstore import ObstoreClient, obstore_client
from ._remote import WRITE_ID, PreconditionFailedError, RemoteStore

__all__ = ["S3Store"]

_CONFLICT_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


def _error_code(exc: BaseException) -> str | None:
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    response = getattr(cause, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    if code is None:
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = str(status) if status is not None else None
    return str(code) if code is not None else None


def _is_conflict(exc: BaseException) -> bool:
    return isinstance(exc, FileExistsError) or _error_code(exc) in _CONFLICT_CODES


class S3Store(RemoteStore):
    """A store under ``s3://bucket/prefix``.

    Parameters
    ----------
    url
        ``s3://bucket`` or ``s3://bucket/prefix``.
    **storage_options
        Passed to :class:`s3fs.S3FileSystem`: ``key``, ``secret``,
        ``endpoint_url``, ``client_kwargs`` and so on. Listing caches are off
        unless asked for (``use_listings_cache=True``): a store must see other
        writers' objects. With an ``endpoint_url`` and explicit credentials,
        GETs are sent through obstore (about 1 ms faster each); the option
        ``use_obstore=False`` keeps them on s3fs (:mod:`hangar.store._obstore`).
    """

    def _make_fs(self, options: dict[str, Any]) -> Any:
        # GETs and plain puts go through obstore where it reaches the same objects
        self._obstore = obstore_client(self.bucket, options)
        return s3fs.S3FileSystem(**{k: v for k, v in options.items() if k != "use_obstore"})

    def _is_missing(self, exc: BaseException) -> bool:
        return isinstance(exc, FileNotFoundError) or _error_code(exc) in {"NoSuchKey", "404"}

    # --------------------------------------------------------------- reads
    # one GetObject each (s3fs's cat_file sends a HEAD first for whole objects)
    async def _a_get_object(self, key: str, **extra: str) -> tuple[bytes, Version]:
        try:
            resp = await self._fs._call_s3(
                "get_object", Bucket=self.bucket, Key=self._key(key), **extra
            )
        except Exception as exc:
            if self._is_missing(exc):
                raise self._not_found(key) from exc
            raise
        body = resp["Body"]
        try:
            data = await body.read()
        finally:
            body.close()
        return data, Version(resp["ETag"])

    def _fast(self) -> ObstoreClient | None:
        """The obstore client, where this store has one and this process may use it."""
        client = self._obstore
        return client if client is not None and client.usable() else None

    def _get(self, key: str) -> bytes:
        return self._get_versioned(key)[0]

    def _get_range(self, key: str, start: int, end: int) -> bytes:
        if (fast := self._fast()) is not None:
            try:
                data = fast.get_range(self._key(key), start, end)
            except FileNotFoundError as exc:
                raise self._not_found(key) from exc
            return b"" if data is None else data
        try:
            return self._run(self._a_get_object(key, Range=f"bytes={start}-{end - 1}"))[0]
        except OSError as exc:
            if _error_code(exc) == "InvalidRange":  # the object exists, the range is past its end
                return b""
            raise

    def _get_versioned(self, key: str) -> tuple[bytes, Version]:
        if (fast := self._fast()) is not None:
            try:
                data, etag = fast.get(self._key(key))
            except FileNotFoundError as exc:
                raise self._not_found(key) from exc
            return data, Version(etag)
        return self._run(self._a_get_object(key))

    def _exists(self, key: str) -> bool:
        if (fast := self._fast()) is not None:
            return fast.exists(self._key(key))
        return super()._exists(key)

    # -------------------------------------------------------------- writes
    def _put(self, key: str, data: Buffer) -> None:
        if (fast := self._fast()) is not None:
            fast.put(self._key(key), data)
            return
        super()._put(key, data)

    def _delete(self, key: str) -> None:
        self._fs.call_s3("delete_object", Bucket=self.bucket, Key=self._key(key))

    async def _a_conditional_put(
        self, key: str, data: Buffer, version: Version | None, write_id: str
    ) -> Version:
        condition = {"IfNoneMatch": "*"} if version is None else {"IfMatch": version.token}
        try:
            resp = await self._fs._call_s3(
                "put_object",
                Bucket=self.bucket,
                Key=self._key(key),
                Body=bytes(data),
                Metadata={WRITE_ID: write_id},
                **condition,
            )
        except Exception as exc:
            if _is_conflict(exc):
                raise PreconditionFailedError(str(exc)) from exc
            if self._is_missing(exc):
                raise self._not_found(key) from exc
            raise
        return Version(resp["ETag"])

    async def _a_written_by(self, key: str) -> tuple[str | None, Version] | None:
        try:
            head = await self._fs._call_s3("head_object", Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            if self._is_missing(exc):
                return None
            raise
        return head.get("Metadata", {}).get(WRITE_ID), Version(head["ETag"])
