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


@pytest.mark.parametrize("version", [1])
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
