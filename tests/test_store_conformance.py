"""The conformance suite over every backend, each checked through a raw path."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fsspec.implementations.memory import MemoryFileSystem

from hangar.store import LocalStore, MemoryStore, Store, open_store
from hangar.testing import StoreTests
from hangar.testing.servers import FakeGCSServer, MotoServer, SeaweedFSServer


class TestMemoryStore(StoreTests):
    @pytest.fixture
    def store(self) -> Iterator[Store]:
        s = open_store(f"memory://conformance-{uuid.uuid4().hex}")
        assert isinstance(s, MemoryStore)
        yield s
        for key in list(s.list()):
            s.delete(key)

    def raw_get(self, store: Store, key: str) -> bytes:
        return bytes(MemoryFileSystem().cat_file(f"{store.root}/{key}"))  # type: ignore[attr-defined]

    def raw_put(self, store: Store, key: str, data: bytes) -> None:
        MemoryFileSystem().pipe_file(f"{store.root}/{key}", data)  # type: ignore[attr-defined]

    def raw_exists(self, store: Store, key: str) -> bool:
        return f"{store.root}/{key}" in MemoryFileSystem.store  # type: ignore[attr-defined]


class TestLocalStore(StoreTests):
    race_processes = True

    @pytest.fixture
    def store(self, tmp_path: Path) -> Store:
        s = open_store(tmp_path / "repo")
        assert isinstance(s, LocalStore)
        return s

    def _raw(self, store: Store, key: str) -> Path:
        return Path(store.root, *key.split("/"))  # type: ignore[attr-defined]

    def raw_get(self, store: Store, key: str) -> bytes:
        return self._raw(store, key).read_bytes()

    def raw_put(self, store: Store, key: str, data: bytes) -> None:
        p = self._raw(store, key)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)

    def raw_exists(self, store: Store, key: str) -> bool:
        return self._raw(store, key).is_file()

    def test_file_url_and_path_are_the_same_store(self, store: Store) -> None:
        store.put("k", b"v")
        assert open_store(f"file://{store.root}").get("k") == b"v"  # type: ignore[attr-defined]

    def test_temp_files_never_show(self, store: Store) -> None:
        store.put("a", b"1")
        store.put_if_absent("b", b"2")
        v = store.get_versioned("b")[1]
        store.replace_if_version("b", b"3", v)
        assert list(store.list()) == ["a", "b"]
        tmpdir = Path(store.root, ".hangar-tmp")  # type: ignore[attr-defined]
        assert list(tmpdir.iterdir()) == []


class _S3Tests(StoreTests):
    server_fixture = ""

    @pytest.fixture
    def server(self, request: pytest.FixtureRequest) -> Any:
        return request.getfixturevalue(self.server_fixture)

    @pytest.fixture
    def store(self, server: SeaweedFSServer | MotoServer) -> Store:
        bucket = server.create_bucket()
        self._client = server.boto3_client()
        self._prefix = f"repo/{uuid.uuid4().hex[:12]}"
        return open_store(f"s3://{bucket}/{self._prefix}", **server.storage_options())

    def contender(self, store: Store) -> Store:
        return open_store(store.url, skip_instance_cache=True, **store.storage_options)

    def raw_get(self, store: Store, key: str) -> bytes:
        body = self._client.get_object(Bucket=store.bucket, Key=f"{self._prefix}/{key}")["Body"]  # type: ignore[attr-defined]
        return bytes(body.read())

    def raw_put(self, store: Store, key: str, data: bytes) -> None:
        self._client.put_object(Bucket=store.bucket, Key=f"{self._prefix}/{key}", Body=data)  # type: ignore[attr-defined]

    def raw_exists(self, store: Store, key: str) -> bool:
        try:
            self._client.head_object(Bucket=store.bucket, Key=f"{self._prefix}/{key}")  # type: ignore[attr-defined]
        except self._client.exceptions.ClientError:
            return False
        return True


class TestSeaweedFSStore(_S3Tests):
    server_fixture = "seaweedfs"


class TestMotoStore(_S3Tests):
    server_fixture = "moto_server"


class TestGCSStore(StoreTests):
    @pytest.fixture
    def store(self, fake_gcs: FakeGCSServer) -> Store:
        self._endpoint = fake_gcs.endpoint
        bucket = fake_gcs.create_bucket()
        return open_store(f"gs://{bucket}/repo/root", **fake_gcs.storage_options())

    def contender(self, store: Store) -> Store:
        return open_store(store.url, skip_instance_cache=True, **store.storage_options)

    def _object_url(self, store: Store, key: str, media: bool) -> str:
        name = urllib.parse.quote(f"repo/root/{key}", safe="")
        return f"{self._endpoint}/storage/v1/b/{store.bucket}/o/{name}" + (  # type: ignore[attr-defined]
            "?alt=media" if media else ""
        )

    def raw_get(self, store: Store, key: str) -> bytes:
        with urllib.request.urlopen(self._object_url(store, key, True)) as r:
            return bytes(r.read())

    def raw_put(self, store: Store, key: str, data: bytes) -> None:
        name = urllib.parse.quote(f"repo/root/{key}", safe="")
        url = f"{self._endpoint}/upload/storage/v1/b/{store.bucket}/o?uploadType=media&name={name}"  # type: ignore[attr-defined]
        headers = {"Content-Type": "application/octet-stream"}
        req = urllib.request.Request(url, data=data, method="POST", headers=headers)
        with urllib.request.urlopen(req) as r:
            json.loads(r.read())

    def raw_exists(self, store: Store, key: str) -> bool:
        try:
            with urllib.request.urlopen(self._object_url(store, key, False)):
                return True
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return False
            raise


_EXTERNAL = os.environ.get("HANGAR_TEST_S3_ENDPOINT") or os.environ.get("HANGAR_TEST_S3_BUCKET")

if _EXTERNAL:

    class TestExternalS3Store(_S3Tests):
        """The same suite against MinIO or a real bucket (infra/README.md)."""

        @pytest.fixture
        def server(self) -> Any:
            from external import ExternalS3

            return ExternalS3.from_env()
