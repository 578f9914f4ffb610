"""Key validation, the location resolver, the error tree and the public names."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

import hangar
from hangar import exceptions
from hangar.store import LocalStore, MemoryStore, Version, open_store, validate_key
from hangar.store._keys import MAX_KEY_BYTES, validate_prefix
from hangar.testing import BAD_KEYS


@pytest.mark.parametrize(("key", "why"), BAD_KEYS)
def test_bad_keys(key: str, why: str) -> None:
    with pytest.raises(exceptions.InvalidKeyError):
        validate_key(key)


@pytest.mark.parametrize(
    "key",
    ["a", "a/b/c.json", "refs/heads/feature-1.json", "x" * MAX_KEY_BYTES, "...", "a..b",
     ".hidden/x", "ünïcödé/キー", "with space/and+plus=equals@at"],
)  # fmt: skip
def test_good_keys(key: str) -> None:
    assert validate_key(key) == key


def test_prefix_rules() -> None:
    assert validate_prefix("") == ""
    assert validate_prefix("/") == ""
    assert validate_prefix("refs/") == "refs"
    assert validate_prefix("refs/heads") == "refs/heads"
    for bad in ("../x", "a//", "/abs", "a/../b"):
        with pytest.raises(exceptions.InvalidKeyError):
            validate_prefix(bad)


def test_open_store_resolves_locations(tmp_path: Path) -> None:
    local = open_store(tmp_path)
    assert isinstance(local, LocalStore)
    assert local.root == str(tmp_path)
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert isinstance(open_store(f"file://{tmp_path}"), LocalStore)
    rel = open_store("relative/dir")
    assert isinstance(rel, LocalStore)
    assert rel.root == os.path.abspath("relative/dir")
    mem = open_store("memory://resolver-test")
    assert isinstance(mem, MemoryStore)
    assert open_store(mem) is mem


@pytest.mark.parametrize(
    ("location", "options", "match"),
    [
        ("ftp://host/x", {}, "unknown storage scheme"),
        ("s3://", {}, "names no bucket"),
        ("gs://", {}, "names no bucket"),
        ("", {}, "path or URL"),
        ("memory://x", {"key": "k"}, "memory stores take no options"),
        ("/tmp/x", {"endpoint_url": "http://x"}, "local stores take only 'fsync'"),
    ],
)
def test_open_store_rejects(location: str, options: dict[str, str], match: str) -> None:
    with pytest.raises(exceptions.InvalidStoreURLError, match=match) as info:
        open_store(location, **options)
    assert isinstance(info.value, ValueError)


def test_open_store_rejects_options_for_an_open_store() -> None:
    with pytest.raises(exceptions.InvalidStoreURLError):
        open_store(open_store("memory://x"), fsync=True)


def test_s3_and_gcs_parse_bucket_and_prefix() -> None:
    s3 = open_store("s3://bucket/a/b/", anon=True)
    assert (s3.bucket, s3.prefix, s3.url) == ("bucket", "a/b", "s3://bucket/a/b/")  # type: ignore[attr-defined]
    gs = open_store("gcs://bkt", token="anon")
    assert (gs.bucket, gs.prefix, gs.url) == ("bkt", "", "gs://bkt")  # type: ignore[attr-defined]
    assert pickle.loads(pickle.dumps(s3)).storage_options == {"anon": True}


def test_local_store_pickles_with_options(tmp_path: Path) -> None:
    store = open_store(tmp_path, fsync=True)
    again = pickle.loads(pickle.dumps(store))
    assert isinstance(again, LocalStore)
    assert again.storage_options == {"fsync": True}


def test_error_tree() -> None:
    assert issubclass(exceptions.ObjectNotFoundError, FileNotFoundError)
    assert issubclass(exceptions.AlreadyExistsError, FileExistsError)
    assert issubclass(exceptions.InvalidKeyError, ValueError)
    assert issubclass(exceptions.InvalidStoreURLError, ValueError)
    assert issubclass(exceptions.StoreCapabilityError, NotImplementedError)
    for name in exceptions.__all__:
        assert issubclass(getattr(exceptions, name), exceptions.HangarError)
    err = exceptions.VersionConflictError("k", Version("7"), "it is at version 8")
    assert "'k'" in str(err)
    assert "version 7" in str(err)
    assert "retry" in str(err)


def test_version_token_must_be_text() -> None:
    with pytest.raises(ValueError, match="version token"):
        Version("")
    assert str(Version("abc")) == "abc"


def test_public_names() -> None:
    assert set(hangar.__all__) >= {
        "open_store", "HangarError", "ObjectNotFoundError", "AlreadyExistsError",
        "VersionConflictError", "InvalidKeyError", "__version__",
    }  # fmt: skip
    for name in hangar.__all__:
        assert hasattr(hangar, name)
