"""Scans (items(), values()) of committed fixed-shape columns, read column-wise."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest

from hangar import Repository
from hangar.columns._scan import scannable
from hangar.exceptions import CorruptionError
from hangar.store import open_store
from hangar.testing.counting import CountingStore

N = 20_000  # three manifest segments


def value(i: int) -> np.ndarray:
    return np.array([i, -i, i % 7, 3], np.int32)


def build(store: Any = None) -> Repository:
    repo = Repository(store or f"memory://scan-{uuid.uuid4().hex}", exists=False)
    repo.init("t", "t@example.com")
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("x", shape=(4,), dtype=np.int32)
    with col:
        for i in range(N):
            col[i] = value(i)
        for i in range(50):
            col[f"s{i}"] = value(i)  # str keys sort after every int key
    co.commit("c")
    co.close()
    return repo


def test_a_scan_returns_what_key_reads_return_in_key_order() -> None:
    repo = build()
    r = repo.checkout()["x"]
    assert scannable(r._engine)
    keys = list(r.keys())
    got = list(r.items())
    assert [k for k, _ in got] == keys
    assert keys[:3] == [0, 1, 2]
    assert keys[N:] == sorted(f"s{i}" for i in range(50))
    for k, v in got:
        want = value(k) if isinstance(k, int) else value(int(k[1:]))
        assert v.dtype == np.int32
        assert v.tolist() == want.tolist(), k
    assert [v.tolist() for v in r.values()] == [v.tolist() for _, v in got]
    # a reader that already read a key from one segment scans it from its entries
    other = repo.checkout()["x"]
    assert other[10_000].tolist() == value(10_000).tolist()
    assert [(k, v.tolist()) for k, v in other.items()] == [(k, v.tolist()) for k, v in got]
    got[0][1][:] = 99  # each sample is the caller's own
    assert got[1][1].tolist() == value(1).tolist()
    assert r[0].tolist() == value(0).tolist()


def test_staged_changes_are_scanned_with_the_writer() -> None:
    repo = build()
    co = repo.checkout(write=True)
    col = co["x"]
    assert scannable(col._engine)  # nothing staged yet
    col[5] = np.full(4, 7, np.int32)
    del col[6]
    assert not scannable(col._engine)
    got = dict(col.items())
    assert got[5].tolist() == [7] * 4
    assert 6 not in got
    assert len(got) == N + 49
    co.close()


def test_a_scan_reads_each_segment_and_chunk_once() -> None:
    counting = CountingStore(open_store(f"memory://scan-{uuid.uuid4().hex}"))
    repo = build(counting)
    r = repo.checkout()["x"]
    counting.reset()
    assert sum(1 for _ in r.items()) == N + 50
    got = counting.keys_of("get", "get_range")
    assert len(got) == len(set(got)), "an object was read twice"
    assert counting.calls["get_range"] == 0
    assert {k.split("/")[0] for k in got} == {"manifests", "chunks"}


def test_a_damaged_block_stops_a_scan() -> None:
    counting = CountingStore(open_store(f"memory://scan-{uuid.uuid4().hex}"))
    repo = build(counting)
    chunk = next(k for k in counting.inner.list("chunks"))
    data = bytearray(counting.inner.get(chunk))
    data[len(data) // 2] ^= 0xFF
    counting.inner.put(chunk, bytes(data))
    with pytest.raises(CorruptionError, match="checksum"):
        for _ in repo.checkout()["x"].items():
            pass


def test_a_scan_with_a_tiny_block_cache_or_stopped_early_is_still_right() -> None:
    repo = build()
    small = Repository(repo._store, cache_blocks=2)  # blocks are evicted before they are used
    col = small.checkout()["x"]
    for k, v in col.items():
        if isinstance(k, int):
            assert v.tolist() == value(k).tolist(), k
    it = repo.checkout()["x"].items()
    assert [next(it)[0] for _ in range(3)] == [0, 1, 2]
    it.close()  # the chunk readers stop with the generator


@pytest.mark.parametrize("arena_bytes", [256 << 20, 1 << 20, 0])
def test_repeats_across_segments_partly_cached_and_arenas_over_budget(
    monkeypatch: pytest.MonkeyPatch, arena_bytes: int
) -> None:
    """Later segments point into earlier chunks (repeats stored once); some blocks are
    cached before the scan, the rest decoded into arenas, or blocks alone past the budget."""
    import hangar.columns._scan as scan

    monkeypatch.setattr(scan, "_ARENA_BYTES", arena_bytes)
    repo = Repository(f"memory://scan-{uuid.uuid4().hex}", exists=False)
    repo.init("t", "t@example.com")
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("x", shape=(64,), dtype=np.int64)
    n = 30_000  # four segments, several chunks
    with col:
        for i in range(n):
            col[i] = np.full(64, i % 7_000 if i >= 7_000 else i, np.int64)
    co.commit("repeats")
    co.close()
    r = repo.checkout()["x"]
    for k in range(0, n, 997):  # some blocks in the cache before the scan
        assert int(r[k][0]) == k % 7_000
    seen = 0
    for k, v in r.items():
        assert v.shape == (64,)
        assert int(v[0]) == int(v[-1]) == k % 7_000, k
        seen += 1
    assert seen == n
