"""``StoreTests``: the conformance suite every store backend must pass.

Subclass it in a test module, provide the ``store`` fixture (a fresh, empty
store per test) and the three raw accessors, which must bypass the store under
test (boto3 for S3, plain HTTP for GCS, ``open()`` for local disk)::

    class TestMyStore(StoreTests):
        @pytest.fixture
        def store(self, tmp_path):
            return open_store(tmp_path)

        def raw_get(self, store, key): ...
        def raw_put(self, store, key, data): ...
        def raw_exists(self, store, key): ...

Set ``race_processes = True`` where writers must be separate processes (local
disk), and override :meth:`contender` to give each racing writer its own client.
"""

from __future__ import annotations

import pickle
from collections import defaultdict
from typing import ClassVar

import pytest

from hangar.exceptions import (
    AlreadyExistsError,
    InvalidKeyError,
    ObjectNotFoundError,
    StoreCapabilityError,
    VersionConflictError,
)
from hangar.store import Store, Version

from ._race import RaceResult, payload_for, run_race

__all__ = ["BAD_KEYS", "StoreTests"]

#: keys every store must refuse, with the reason
BAD_KEYS: list[tuple[str, str]] = [
    ("", "empty"),
    ("/abs", "leading slash"),
    ("a//b", "empty segment"),
    ("a/", "trailing slash"),
    (".", "dot"),
    ("..", "dotdot"),
    ("a/../b", "dotdot segment"),
    ("../escape", "escape"),
    ("a/./b", "dot segment"),
    ("a\\b", "backslash"),
    ("a\x00b", "NUL"),
    ("a\nb", "newline"),
    ("a\x7fb", "DEL"),
    ("x" * 1025, "too long"),
    ("é" * 513, "too long in UTF-8"),
    (".hangar-tmp/x", "reserved"),
    (".hangar-tmp", "reserved"),
    ("a\ud800b", "lone surrogate"),
]


class StoreTests:
    """The conformance suite. See the module docstring for how to use it."""

    #: writers racing per round, and rounds
    race_writers: ClassVar[int] = 16
    race_rounds: ClassVar[int] = 20
    #: race in separate processes (True) or threads with separate clients (False)
    race_processes: ClassVar[bool] = False

    # ------------------------------------------------------------ to provide
    @pytest.fixture
    def store(self) -> Store:
        """A fresh, empty store."""
        raise NotImplementedError

    def raw_get(self, store: Store, key: str) -> bytes:
        """Read ``key`` without going through ``store``."""
        raise NotImplementedError

    def raw_put(self, store: Store, key: str, data: bytes) -> None:
        """Write ``key`` without going through ``store``."""
        raise NotImplementedError

    def raw_exists(self, store: Store, key: str) -> bool:
        """Tell whether ``key`` exists without going through ``store``."""
        raise NotImplementedError

    def contender(self, store: Store) -> Store:
        """A second store on the same location with its own client (for races)."""
        again: Store = pickle.loads(pickle.dumps(store))  # noqa: S301 - our own object, in memory
        return again

    # ------------------------------------------------------------------ reads
    def test_missing_key_raises_not_found(self, store: Store) -> None:
        for call in (
            lambda: store.get("nope/missing"),
            lambda: store.get_range("nope/missing", 0, 10),
            lambda: store.get_range("nope/missing", 0, 0),
            lambda: store.get_versioned("nope/missing"),
        ):
            with pytest.raises(ObjectNotFoundError) as info:
                call()
            assert isinstance(info.value, FileNotFoundError)
            assert "nope/missing" in str(info.value)

    def test_put_is_seen_by_raw_read(self, store: Store) -> None:
        store.put("a/b/c.bin", b"\x00\x01payload")
        assert self.raw_get(store, "a/b/c.bin") == b"\x00\x01payload"

    def test_raw_write_is_seen_by_get(self, store: Store) -> None:
        self.raw_put(store, "x/y.bin", b"raw bytes")
        assert store.get("x/y.bin") == b"raw bytes"
        assert store.exists("x/y.bin")

    def test_put_overwrites(self, store: Store) -> None:
        store.put("k", b"one")
        store.put("k", b"two, longer")
        assert store.get("k") == b"two, longer"
        assert self.raw_get(store, "k") == b"two, longer"

    @pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
    def test_put_accepts_bytes_like(self, store: Store, kind: type) -> None:
        store.put("k", kind(b"abc"))
        assert store.get("k") == b"abc"

    def test_put_rejects_non_bytes(self, store: Store) -> None:
        with pytest.raises(TypeError, match="bytes-like"):
            store.put("k", "text")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="bytes-like"):
            store.put_if_absent("k", 123)  # type: ignore[arg-type]
        assert not self.raw_exists(store, "k")

    def test_empty_object(self, store: Store) -> None:
        store.put("empty", b"")
        assert store.get("empty") == b""
        assert store.exists("empty")
        assert store.get_range("empty", 0, 10) == b""

    def test_large_object_round_trip(self, store: Store) -> None:
        data = bytes(range(256)) * (6 * 4096)  # 6 MiB
        store.put("big", data)
        assert store.get("big") == data
        assert self.raw_get(store, "big") == data
        assert store.get_range("big", 3_000_000, 3_000_100) == data[3_000_000:3_000_100]

    def test_unicode_and_spaces_in_keys(self, store: Store) -> None:
        key = "columns/naïve name/サンプル 1.bin"
        store.put(key, b"u")
        assert store.get(key) == b"u"
        assert self.raw_get(store, key) == b"u"
        assert list(store.list("columns")) == [key]

    # ---------------------------------------------------------------- ranges
    @pytest.mark.parametrize(
        ("start", "end"),
        [(0, 1), (0, 10), (3, 7), (9, 10), (5, 5), (0, 100), (8, 100), (10, 20), (50, 60)],
    )
    def test_get_range_is_a_slice(self, store: Store, start: int, end: int) -> None:
        data = b"0123456789"
        store.put("r", data)
        assert store.get_range("r", start, end) == data[start:end]

    @pytest.mark.parametrize(("start", "end"), [(-1, 3), (5, 4)])
    def test_get_range_rejects_bad_ranges(self, store: Store, start: int, end: int) -> None:
        store.put("r", b"0123456789")
        with pytest.raises(ValueError, match="byte range"):
            store.get_range("r", start, end)

    # -------------------------------------------------------------- versions
    def test_get_versioned_matches_content_and_changes_on_write(self, store: Store) -> None:
        self.raw_put(store, "v", b"first")
        data, v1 = store.get_versioned("v")
        assert data == b"first"
        assert isinstance(v1, Version)
        assert store.get_versioned("v") == (b"first", v1)  # stable while unchanged
        store.put("v", b"second")
        data2, v2 = store.get_versioned("v")
        assert data2 == b"second"
        assert v2 != v1

    def test_put_if_absent_creates_once(self, store: Store) -> None:
        v = store.put_if_absent("refs/heads/main.json", b'{"commit": 1}')
        assert self.raw_get(store, "refs/heads/main.json") == b'{"commit": 1}'
        assert store.get_versioned("refs/heads/main.json") == (b'{"commit": 1}', v)
        with pytest.raises(AlreadyExistsError) as info:
            store.put_if_absent("refs/heads/main.json", b'{"commit": 2}')
        assert isinstance(info.value, FileExistsError)
        assert "refs/heads/main.json" in str(info.value)
        assert self.raw_get(store, "refs/heads/main.json") == b'{"commit": 1}'

    def test_put_if_absent_refuses_a_raw_object(self, store: Store) -> None:
        self.raw_put(store, "taken", b"by someone else")
        with pytest.raises(AlreadyExistsError):
            store.put_if_absent("taken", b"mine")
        assert self.raw_get(store, "taken") == b"by someone else"

    def test_put_if_absent_after_delete(self, store: Store) -> None:
        store.put_if_absent("lease", b"a")
        store.delete("lease")
        assert not self.raw_exists(store, "lease")
        store.put_if_absent("lease", b"b")
        assert store.get("lease") == b"b"

    def test_replace_if_version_swaps(self, store: Store) -> None:
        v1 = store.put_if_absent("ref", b"one")
        v2 = store.replace_if_version("ref", b"two", v1)
        assert v2 != v1
        assert self.raw_get(store, "ref") == b"two"
        assert store.get_versioned("ref") == (b"two", v2)
        v3 = store.replace_if_version("ref", b"three", v2)
        assert store.get_versioned("ref") == (b"three", v3)

    def test_replace_with_stale_version_conflicts(self, store: Store) -> None:
        v1 = store.put_if_absent("ref", b"one")
        store.replace_if_version("ref", b"two", v1)
        with pytest.raises(VersionConflictError) as info:
            store.replace_if_version("ref", b"three", v1)
        assert info.value.key == "ref"
        assert self.raw_get(store, "ref") == b"two"

    def test_replace_conflicts_after_a_raw_write(self, store: Store) -> None:
        v1 = store.put_if_absent("ref", b"one")
        self.raw_put(store, "ref", b"changed behind the store's back")
        with pytest.raises(VersionConflictError):
            store.replace_if_version("ref", b"two", v1)
        assert self.raw_get(store, "ref") == b"changed behind the store's back"

    def test_replace_missing_conflicts(self, store: Store) -> None:
        v1 = store.put_if_absent("ref", b"one")
        store.delete("ref")
        with pytest.raises(VersionConflictError):
            store.replace_if_version("ref", b"two", v1)
        assert not self.raw_exists(store, "ref")
        with pytest.raises(VersionConflictError):
            store.replace_if_version("never/was", b"two", v1)
        assert not self.raw_exists(store, "never/was")

    def test_replace_requires_a_version(self, store: Store) -> None:
        v1 = store.put_if_absent("ref", b"one")
        with pytest.raises(TypeError, match="Version"):
            store.replace_if_version("ref", b"two", v1.token)  # type: ignore[arg-type]
        assert store.get("ref") == b"one"

    # -------------------------------------------------------- delete, exists
    def test_delete(self, store: Store) -> None:
        store.put("d/x", b"1")
        store.put("d/y", b"2")
        store.delete("d/x")
        assert not self.raw_exists(store, "d/x")
        assert not store.exists("d/x")
        assert store.get("d/y") == b"2"
        store.delete("d/x")  # missing: not an error
        store.delete("never/there")

    def test_exists_is_for_objects_only(self, store: Store) -> None:
        store.put("dir/obj", b"1")
        assert store.exists("dir/obj")
        assert not store.exists("dir")
        assert not store.exists("dir/ob")
        assert not store.exists("other")

    # ------------------------------------------------------------ threads
    def test_writes_from_several_threads_all_land(self, store: Store) -> None:
        """Writers keep several writes in flight on upload threads (hangar._uploads)."""
        from concurrent.futures import ThreadPoolExecutor

        def write(i: int) -> None:
            key = f"chunks/t{i % 4}/{i}"
            if not store.exists(key):
                store.put(key, bytes([i % 256]) * (1000 + i))

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(write, range(40)))
        for i in range(40):
            assert store.get(f"chunks/t{i % 4}/{i}") == bytes([i % 256]) * (1000 + i)

    # ----------------------------------------------------------------- append
    def test_append_adds_to_the_end_or_says_it_cannot(self, store: Store) -> None:
        if not store.capabilities.append:
            with pytest.raises(StoreCapabilityError, match="cannot append"):
                store.append("log/a", b"x")
            assert not self.raw_exists(store, "log/a")
            return
        store.append("log/a", b"one")  # creates the object (and its folder)
        store.append("log/a", bytearray(b"-two"))
        store.append("log/a", memoryview(b"-three"))
        store.append("log/a", b"")
        assert store.get("log/a") == b"one-two-three"
        assert self.raw_get(store, "log/a") == b"one-two-three"
        assert store.get_range("log/a", 3, 7) == b"-two"
        _, before = store.get_versioned("log/a")
        store.append("log/a", b"!")
        _, after = store.get_versioned("log/a")
        assert before != after  # an append is a new version: a stale swap conflicts
        with pytest.raises(VersionConflictError):
            store.replace_if_version("log/a", b"", before)
        self.raw_put(store, "log/b", b"raw")
        store.append("log/b", b"+1")
        assert store.get("log/b") == b"raw+1"
        assert list(store.list("log")) == ["log/a", "log/b"]
        with pytest.raises(TypeError):
            store.append("log/a", "text")  # type: ignore[arg-type]
        with pytest.raises(InvalidKeyError):
            store.append("../escape", b"x")

    # --------------------------------------------------------------- listing
    def test_list(self, store: Store) -> None:
        assert list(store.list()) == []
        keys = ["refs/heads/master.json", "refs/heads/dev.json", "refs/tags/v1.json",
                "refs/headsup.json", "commits/abc.json", "hangar.json"]  # fmt: skip
        for k in keys:
            store.put(k, b"x")
        assert list(store.list()) == sorted(keys)
        assert list(store.list("")) == sorted(keys)
        assert list(store.list("refs/heads")) == ["refs/heads/dev.json", "refs/heads/master.json"]
        assert list(store.list("refs/heads/")) == list(store.list("refs/heads"))
        assert list(store.list("refs")) == sorted(k for k in keys if k.startswith("refs/"))
        assert list(store.list("nothing/here")) == []

    def test_list_after_emptying_a_folder(self, store: Store) -> None:
        # S3 servers may keep a marker for a folder whose objects are gone: it is no key
        store.put("a/b/c", b"x")
        store.put("a/d", b"y")
        store.delete("a/b/c")
        assert list(store.list("a/b")) == []
        assert list(store.list("a")) == ["a/d"]
        assert list(store.list()) == ["a/d"]
        store.delete("a/d")
        assert list(store.list("a")) == []
        assert list(store.list()) == []
        assert list(store.list("a/d")) == []  # a folder listing never yields the folder

    def test_disk_usage_adds_object_sizes(self, store: Store) -> None:
        assert store.disk_usage() == 0
        store.put("a/x", b"12345")
        store.put("a/y", b"")
        store.put("b/z", bytes(1000))
        assert store.disk_usage() == 1005
        assert store.disk_usage("a") == 5
        assert store.disk_usage("nothing") == 0

    def test_list_sees_raw_objects(self, store: Store) -> None:
        self.raw_put(store, "chunks/ab/abcdef", b"c")
        assert list(store.list("chunks")) == ["chunks/ab/abcdef"]

    # ------------------------------------------------------------- bad keys
    @pytest.mark.parametrize(("key", "why"), BAD_KEYS)
    def test_bad_keys_are_refused(self, store: Store, key: str, why: str) -> None:
        v = store.put_if_absent("good", b"g")
        for call in (
            lambda: store.get(key),
            lambda: store.get_range(key, 0, 1),
            lambda: store.get_versioned(key),
            lambda: store.exists(key),
            lambda: store.put(key, b"x"),
            lambda: store.put_if_absent(key, b"x"),
            lambda: store.replace_if_version(key, b"x", v),
            lambda: store.delete(key),
        ):
            with pytest.raises(InvalidKeyError) as info:
                call()
            assert isinstance(info.value, ValueError), why
        assert list(store.list()) == ["good"]

    def test_non_str_keys_are_refused(self, store: Store) -> None:
        for key in (b"bytes", 1, None):
            with pytest.raises(InvalidKeyError):
                store.put(key, b"x")  # type: ignore[arg-type]
        with pytest.raises(InvalidKeyError):
            list(store.list("../up"))

    # --------------------------------------------------------------- pickle
    def test_pickles_as_its_location(self, store: Store) -> None:
        store.put("p", b"shared")
        again = pickle.loads(pickle.dumps(store))  # noqa: S301 - our own object
        assert type(again) is type(store)
        assert again.url == store.url
        assert again.get("p") == b"shared"

    # ---------------------------------------------------------------- races
    def _contenders(self, store: Store) -> list[Store]:
        return [self.contender(store) for _ in range(self.race_writers)]

    def _check_race(self, store: Store, keys: list[str], results: list[RaceResult],
                    loser_error: type[Exception]) -> None:  # fmt: skip
        assert len(results) == self.race_writers * len(keys), "a writer did not report"
        by_round: dict[int, list[RaceResult]] = defaultdict(list)
        for r in results:
            by_round[r.round].append(r)
        for rnd, key in enumerate(keys):
            winners = [r for r in by_round[rnd] if r.won]
            assert len(winners) == 1, f"round {rnd}: {len(winners)} winners"
            losers = [r for r in by_round[rnd] if not r.won]
            assert {r.error for r in losers} <= {loser_error.__name__}, (
                f"round {rnd}: losers got {sorted({r.error for r in losers})}"
            )
            winner = winners[0]
            assert self.raw_get(store, key) == winner.payload == payload_for(winner.writer, rnd)
            assert store.get_versioned(key)[1] == Version(winner.version)

    def test_race_put_if_absent(self, store: Store) -> None:
        keys = [f"race/create/{r}.json" for r in range(self.race_rounds)]
        results = run_race(
            self._contenders(store), "put_if_absent", keys, [None] * len(keys),
            processes=self.race_processes,
        )  # fmt: skip
        self._check_race(store, keys, results, AlreadyExistsError)

    def test_race_replace_if_version(self, store: Store) -> None:
        keys = [f"race/swap/{r}.json" for r in range(self.race_rounds)]
        versions: list[str | None] = [store.put_if_absent(k, b"base").token for k in keys]
        results = run_race(
            self._contenders(store), "replace_if_version", keys, versions,
            processes=self.race_processes,
        )  # fmt: skip
        self._check_race(store, keys, results, VersionConflictError)
