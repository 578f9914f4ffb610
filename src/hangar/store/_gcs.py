"""Google Cloud Storage (and fake-gcs-server) through gcsfs.

- version: the object's generation;
- ``put_if_absent``: a multipart upload with ``ifGenerationMatch=0``;
- ``replace_if_version``: a multipart upload with ``ifGenerationMatch=<generation>``
  (gcsfs has no public compare-and-swap; fake-gcs-server honours this
  precondition on multipart uploads, not on ``uploadType=media`` ones);
- ``get_versioned``: one media download; the generation comes in its
  ``x-goog-generation`` header;
- ``get_range``: one download with a ``Range`` header.

Conditional writes are single multipart requests: keep such objects small
(refs, leases), as hangar does.
"""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import gcsfs
from gcsfs.core import quote

from ._base import Buffer, Version
from ._remote import WRITE_ID, PreconditionFailedError, RemoteStore

__all__ = ["GCSStore"]

_BOUNDARY = "hangar-7f3c1e9a5b2d4c8e"


class _Body(io.BytesIO):
    """A request body that a retry can send again (aiohttp closes what it sent)."""

    def close(self) -> None:
        self.seek(0)


def _status(exc: BaseException) -> int | None:
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) else None


class GCSStore(RemoteStore):
    """A store under ``gs://bucket/prefix``.

    Parameters
    ----------
    url
        ``gs://bucket`` or ``gs://bucket/prefix`` (``gcs://`` too).
    **storage_options
        Passed to :class:`gcsfs.GCSFileSystem`: ``project``, ``token``,
        ``endpoint_url`` and so on. The listing cache is off unless asked for.
    """

    def _make_fs(self, options: dict[str, Any]) -> Any:
        return gcsfs.GCSFileSystem(**options)

    # --------------------------------------------------------------- reads
    def _get_range(self, key: str, start: int, end: int) -> bytes:
        try:
            data: bytes = self._fs.cat_file(self._path(key), start=start, end=end)
        except FileNotFoundError as exc:
            raise self._not_found(key) from exc
        except Exception as exc:
            if _status(exc) == 416:  # the object exists, the range starts past its end
                return b""
            raise
        return data

    def _get_versioned(self, key: str) -> tuple[bytes, Version]:
        async def run() -> tuple[bytes, Version]:
            try:
                headers, data = await self._fs._call("GET", self._fs.url(self._path(key)))
            except FileNotFoundError as exc:
                raise self._not_found(key) from exc
            return data, Version(str(headers["X-Goog-Generation"]))

        return self._run(run())

    # -------------------------------------------------------------- writes
    def _put(self, key: str, data: Buffer) -> None:
        self._run(self._a_upload(key, data, None, None))

    def _delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._fs.call("DELETE", "b/{}/o/{}", self.bucket, self._key(key))

    async def _a_conditional_put(
        self, key: str, data: Buffer, version: Version | None, write_id: str
    ) -> Version:
        generation = "0" if version is None else version.token
        try:
            return await self._a_upload(key, data, generation, write_id)
        except FileExistsError as exc:  # gcsfs maps HTTP 412 to FileExistsError
            raise PreconditionFailedError(str(exc)) from exc
        except Exception as exc:
            if _status(exc) == 412:
                raise PreconditionFailedError(str(exc)) from exc
            raise

    async def _a_upload(
        self, key: str, data: Buffer, generation: str | None, write_id: str | None
    ) -> Version:
        """One multipart upload (metadata and bytes in one request)."""
        meta: dict[str, Any] = {"name": self._key(key)}
        if write_id is not None:
            meta["metadata"] = {WRITE_ID: write_id}
        head = f"--{_BOUNDARY}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
        mid = f"\r\n--{_BOUNDARY}\r\nContent-Type: application/octet-stream\r\n\r\n"
        tail = f"\r\n--{_BOUNDARY}--"
        body = _Body(
            b"".join([head.encode(), json.dumps(meta).encode(), mid.encode(), data, tail.encode()])
        )
        params = {} if generation is None else {"ifGenerationMatch": generation}
        out = await self._fs._call(
            "POST",
            f"{self._fs._location}/upload/storage/v1/b/{quote(self.bucket)}/o",
            uploadType="multipart",
            headers={"Content-Type": f'multipart/related; boundary="{_BOUNDARY}"'},
            data=body,
            json_out=True,
            **params,
        )
        self._fs.invalidate_cache(self._path(key))
        return Version(str(out["generation"]))

    async def _a_written_by(self, key: str) -> tuple[str | None, Version] | None:
        try:
            meta = await self._fs._call(
                "GET", "b/{}/o/{}", self.bucket, self._key(key), json_out=True
            )
        except FileNotFoundError:
            return None
        return (meta.get("metadata") or {}).get(WRITE_ID), Version(str(meta["generation"]))
