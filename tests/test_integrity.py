"""Integrity (issue 5): corruption injected into a chunk, a manifest and a commit, on local
disk and the S3 server. Reads raise CorruptionError, never return data; verify() lists it all."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hangar import Repository
from hangar.exceptions import CorruptionError
from hangar.format.manifest import decode_segment
from hangar.format.names import chunk_key, commit_key, manifest_key
from hangar.verify import Problem

N = 300


@pytest.fixture(params=["local", "s3"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Repository:
    if request.param == "local":
        url, opts = str(tmp_path / "repo"), {}
    else:
        server = request.getfixturevalue("seaweedfs")
        url, opts = f"s3://{server.create_bucket()}/repo", server.storage_options()
    repo = Repository(url, exists=False, storage_options=opts)
    repo.init("Tester", "t@example.com", remove_old=True)
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("x", shape=(64,), dtype=np.float32)
    with col:
        for i in range(N):
            col[i] = np.full(64, i, np.float32)
    co.add_str_column("s")["k"] = "text"
    co.commit("first")
    co["x", 0] = np.full(64, -1, np.float32)
    co.commit("second")
    co.close()
    repo.create_branch("dev")
    repo.create_tag("v1")
    return repo


def flip(repo: Repository, key: str, at: int) -> None:
    data = bytearray(repo._store.get(key))
    data[at] ^= 0xFF
    repo._store.put(key, bytes(data))


def x_rows(repo: Repository) -> list[Any]:
    rec = repo._read_commit(repo._branch_head("master"))
    segs = rec.columns["x"].segments
    return [r for s in segs for r in decode_segment(repo._store.get(manifest_key(s.digest)))]


def test_clean_repository_verifies(repo: Repository) -> None:
    report = repo.verify(progress=False)
    assert report.ok, str(report)
    assert report  # truthy when verified
    assert report.refs == 3  # master, dev, v1
    assert report.commits == 2
    assert report.manifests >= 3  # x at each commit, s
    assert report.chunks >= 2
    assert report.nbytes > 0
    assert "no problem found" in str(report)


def test_corrupt_chunk_raises_on_read_and_is_reported(repo: Repository) -> None:
    rows = x_rows(repo)
    loc = rows[N // 2][2].location
    flip(repo, chunk_key(loc.chunk), loc.block_offset + loc.block_size // 2)
    co = repo.checkout()
    bad = {k for k, _, e in rows if (e.location.chunk, e.location.block_offset)
           == (loc.chunk, loc.block_offset)}  # fmt: skip
    assert rows[N // 2][0] in bad
    for key in range(1, N):
        if key in bad:
            with pytest.raises(CorruptionError, match="checksum"):
                co["x", key]
        else:
            assert float(co["x", key][0]) == key  # the other blocks still read
    with pytest.raises(CorruptionError):
        dict(repo.checkout()["x"].items())  # a scan reads the whole chunk: it is checked too
    report = repo.verify(progress=False)
    assert not report.ok
    assert not report
    assert [(p.kind, p.key) for p in report.problems] == [("corrupt", chunk_key(loc.chunk))]
    assert chunk_key(loc.chunk) in str(report)


def test_missing_chunk(repo: Repository) -> None:
    assert repo.verify_repo_integrity() is True
    loc = x_rows(repo)[5][2].location
    repo._store.delete(chunk_key(loc.chunk))
    with pytest.raises(CorruptionError, match=chunk_key(loc.chunk)):
        repo.verify_repo_integrity()  # Hangar's name: True, or an error naming every problem
    with pytest.raises(CorruptionError, match="missing"):
        repo.checkout()["x", 5]
    report = repo.verify(progress=False)
    assert Problem("missing", chunk_key(loc.chunk), "chunk referenced but not in the store") in (
        report.problems
    )


def test_corrupt_manifest_raises_on_read_and_is_reported(repo: Repository) -> None:
    rec = repo._read_commit(repo._branch_head("master"))
    seg = rec.columns["x"].segments[0]
    key = manifest_key(seg.digest)
    flip(repo, key, len(repo._store.get(key)) // 2)
    with pytest.raises(CorruptionError, match="does not match its digest"):
        repo.checkout()["x", 3]
    with pytest.raises(CorruptionError):
        repo.checkout(commit=rec.parents[0]).diff.branch("master")
    report = repo.verify(progress=False)
    assert [(p.kind, p.key) for p in report.problems] == [("corrupt", key)]
    # the string column and the older commit's own segment still read
    assert repo.checkout()["s", "k"] == "text"


def test_corrupt_commit_record(repo: Repository) -> None:
    first = repo._read_commit(repo._branch_head("master")).parents[0]
    flip(repo, commit_key(first), 10)
    fresh = Repository(repo._store)
    with pytest.raises(CorruptionError):
        fresh.checkout(commit=first)
    report = fresh.verify(progress=False)
    assert [(p.kind, p.key) for p in report.problems] == [("corrupt", commit_key(first))]


def test_verify_of_an_empty_repository() -> None:
    repo = Repository(f"memory://verify-{uuid.uuid4().hex}", exists=False)
    repo.init("t", "t@example.com")
    report = repo.verify(progress=False)
    assert report.ok
    assert (report.commits, report.manifests, report.chunks) == (0, 0, 0)
