"""Every format version ever written stays readable (DESIGN.md, invariant 9).

The golden repository of each format version (minio-fixtures/vN/store, made
by minio-fixtures/make_vN.py) is uploaded into a fresh bucket of the real S3
server and read back through hangar.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hangar import Repository
from hangar.store import open_store

FIXTURES = Path(__file__).resolve().parents[1] / "minio-fixtures"


def load_maker(version: int) -> Any:
    spec = importlib.util.spec_from_file_location(
        f"make_v{version}", FIXTURES / f"make_v{version}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upload(version: int, seaweedfs: Any) -> str:
    bucket = seaweedfs.create_bucket()
    url = f"s3://{bucket}/golden-v{version}"
    store = open_store(url, **seaweedfs.storage_options())
    root = FIXTURES / f"v{version}" / "store"
    files = [p for p in root.rglob("*") if p.is_file() and ".hangar-tmp" not in p.parts]
    assert files, f"no golden repository for format v{version}"
    for path in files:
        store.put(path.relative_to(root).as_posix(), path.read_bytes())
    return url


@pytest.mark.parametrize("version", [1, 2])
def test_golden_repository_reads_back_from_s3(version: int, seaweedfs: Any) -> None:
    maker = load_maker(version)
    url = upload(version, seaweedfs)
    repo = Repository(url, storage_options=seaweedfs.storage_options())
    log = repo.log(return_contents=True)
    messages = [log["specs"][c]["commit_message"] for c in log["order"]]
    assert messages == list(reversed(maker.MESSAGES))
    co = repo.checkout()
    want = maker.expected()
    assert sorted(co.keys()) == sorted(want)
    for name, content in want.items():
        col = co[name]
        assert len(col) == len(content), name
        for key, value in content.items():
            got = col[key]
            if isinstance(value, dict):
                assert set(got.keys()) == set(value)
                for sk, v in value.items():
                    _same(got[sk], v)
            else:
                _same(got, value)
        scanned = dict(col.items())  # a scan reads what key reads read
        assert sorted(scanned, key=str) == sorted(content, key=str)
        for key, value in content.items():
            if not isinstance(value, dict):
                _same(scanned[key], value)
    # the first commit is there too, unchanged
    first = repo.checkout(commit=log["order"][-1])
    assert 5 in first["images"]
    assert "str-key" not in first["images"]


def _same(got: Any, want: Any) -> None:
    if isinstance(want, np.ndarray):
        assert got.dtype == want.dtype
        assert np.array_equal(got, want)
    else:
        assert got == want


def test_writing_into_a_v1_repository_keeps_its_format(seaweedfs: Any) -> None:
    """A newer hangar writes a format 1 repository as format 1: BLAKE2b-64 sample digests,
    so a sample written again with the same bytes is no change, and older builds still
    read every commit."""
    maker = load_maker(1)
    url = upload(1, seaweedfs)
    repo = Repository(url, storage_options=seaweedfs.storage_options())
    co = repo.checkout(write=True)
    images = co["images"]
    images[0] = images[0]  # the same bytes: the same digest
    with images:
        images[1] = images[1]
    assert co.diff.staged().diff.mutated.samples == ()
    images[100] = np.ones((4, 4), np.uint8)
    co.commit("written by a newer hangar")
    co.close()
    store = open_store(url, **seaweedfs.storage_options())
    assert b'"format_version":1' in store.get("hangar.json")
    head = repo.checkout()
    assert np.array_equal(head["images", 100], np.ones((4, 4), np.uint8))
    assert np.array_equal(head["images", 0], maker.expected()["images"][0])
    record = repo._read_commit(repo.log(return_contents=True)["order"][0])
    assert record.format_version == 1


def test_a_newer_format_asks_for_an_upgrade(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "r"))
    store.put("hangar.json", b'{"format_version": 99, "some_new_field": 1}')
    with pytest.raises(ValueError, match="format version 99; this hangar reads up to 2: upgrade"):
        Repository(store)


def test_an_unknown_sample_digest_is_refused(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "r"))
    store.put(
        "hangar.json",
        b'{"created":"2026-01-01T00:00:00Z","format_version":2,"repository_id":"x",'
        b'"sample_digest":"md5-64","user_email":"e","user_name":"n"}',
    )
    with pytest.raises(ValueError, match="unknown sample digest 'md5-64'"):
        Repository(store)
