"""Session fixtures: the real S3 and GCS servers the tests run against.

Each server starts once per test session on a free 127.0.0.1 port and is
stopped by its process id at the end. A server that cannot start fails the
tests that need it (ServerStartError); nothing is skipped.

Set ``HANGAR_TEST_S3_ENDPOINT`` (with ``HANGAR_TEST_S3_KEY``,
``HANGAR_TEST_S3_SECRET`` and optionally ``HANGAR_TEST_S3_REGION``) to run the
S3 suite against another server as well, e.g. MinIO from infra/compose.yaml,
or ``HANGAR_TEST_S3_BUCKET`` for a real AWS bucket (see infra/README.md).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hangar.testing.servers import FakeGCSServer, MotoServer, SeaweedFSServer

# recent gcsfs probes an emulator over gRPC for 60 s per bucket unless told not to
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedFSServer]:
    with SeaweedFSServer() as server:
        yield server


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="session")
def fake_gcs() -> Iterator[FakeGCSServer]:
    with FakeGCSServer() as server:
        yield server


@pytest.fixture(params=["local", "memory", "s3"])
def repo_location(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """Where a test repository goes, as ``(url, storage_options)``: each backend in turn."""
    if request.param == "local":
        return str(tmp_path / "repo"), {}
    if request.param == "memory":
        return f"memory://repo-{uuid.uuid4().hex}", {}
    server = request.getfixturevalue("seaweedfs")
    return f"s3://{server.create_bucket()}/repo", server.storage_options()
