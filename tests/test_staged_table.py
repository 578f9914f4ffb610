"""With-block samples kept as arrays until commit (hangar.columns._table).

After a with-block, a flat fixed-shape column's index points each key at a
row of its StagedTable (no entry per sample); a commit encodes the segments
from those arrays. These tests pin that the arrays give the same segments,
reads and diffs as entries would.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest

import hangar.columns._engine as engine_module
from hangar import Repository
from hangar.columns._table import StagedTable, is_packed
from hangar.format.manifest import (
    SegmentLocations,
    decode_columns,
    decode_locations,
    encode_segment,
)
from hangar.format.names import manifest_key


def new_repo() -> Repository:
    repo = Repository(f"memory://staged-{uuid.uuid4().hex}", exists=False)
    repo.init("t", "t@example.com", remove_old=True)
    return repo


def v(i: int) -> np.ndarray:
    return np.full(160, i % 251, np.uint8)  # >= 128 bytes: repeats are deduplicated


def segment_bytes(repo: Repository, column: str) -> list[bytes]:
    record = repo._read_commit(repo.log(return_contents=True)["head"])
    return [repo._store.get(manifest_key(s.digest)) for s in record.columns[column].segments]


def assert_digests_are_of_the_samples(repo: Repository, datas: list[bytes]) -> None:
    """Every committed row's digest is the digest of the sample it reads back."""
    column = repo.checkout()["x"]
    for data in datas:
        keys, _, entries = decode_columns(data)
        for key, entry in zip(keys, entries, strict=True):
            assert entry.digest == repo._sample_digest.of(column[key], False), key


def assert_same_as_row_encoding(datas: list[bytes]) -> None:
    """Each segment is byte for byte what encode_segment makes of its rows."""
    for data in datas:
        keys, subkeys, entries = decode_columns(data)
        assert encode_segment(list(zip(keys, subkeys, entries, strict=True))) == data


def test_with_block_rows_stay_arrays_until_commit() -> None:
    repo = new_repo()
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("x", prototype=v(0))
    with col:
        for i in range(500):
            col[i] = v(i % 300)  # 200 repeats
    engine = co._staging.columns["x"]
    slots = [engine.index[k] for k in range(500)]
    assert all(is_packed(s) for s in slots)
    assert engine.table.count == 500
    assert np.array_equal(col[7], v(7))
    assert np.array_equal(col[307], v(7))
    assert [int(a[0]) for _, a in col.items()] == [i % 300 % 251 for i in range(500)]
    co.commit("one")
    assert engine.table.count == 0
    assert np.array_equal(col[499], v(199))
    co.close()
    assert_same_as_row_encoding(segment_bytes(repo, "x"))
    assert_digests_are_of_the_samples(repo, segment_bytes(repo, "x"))
    r = repo.checkout()["x"]
    assert [int(r[k][0]) for k in range(500)] == [i % 300 % 251 for i in range(500)]
    assert repo.verify().ok


def test_buckets_mixing_packed_rows_entries_and_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stored entries, journal-replayed entries, several blocks, overwrites and deletes in
    the same buckets: the commit holds the last value of each key."""
    monkeypatch.setattr(engine_module, "SEGMENT_ROWS", 7)
    repo = new_repo()
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("x", prototype=v(0))
    model: dict[Any, int] = {}
    for i in range(0, 60, 2):
        col[i] = v(i)
        model[i] = i
    co.commit("base")
    with col:  # a block over keys that are stored, and new ones
        for i in range(0, 60, 3):
            col[i] = v(1000 + i)
            model[i] = 1000 + i
    co.close()
    co = repo.checkout(write=True)  # the block's samples come back from the journal
    col = co["x"]
    with col:
        for i in range(1, 60, 5):
            col[i] = v(2000 + i)
            model[i] = 2000 + i
        col["s"] = v(5)
        model["s"] = 5
    with col:
        for i in range(0, 60, 7):
            col[i] = v(3000 + i)
            model[i] = 3000 + i
    col[4] = v(77)  # a naked write over a packed row
    model[4] = 77
    for k in (6, 11, 14):  # deletes of packed rows and of entries
        del col[k]
        model.pop(k, None)
    engine = co._staging.columns["x"]
    assert sum(is_packed(engine.index.get(k)) for k in model) > 10
    co.commit("mixed")
    co.close()
    datas = segment_bytes(repo, "x")
    assert len(datas) > 5
    assert_same_as_row_encoding(datas)
    assert_digests_are_of_the_samples(repo, datas)
    r = repo.checkout()["x"]
    assert {k: int(a[0]) for k, a in r.items()} == {k: x % 251 for k, x in model.items()}


def test_staged_diff_of_packed_rows_matches_naked_writes() -> None:
    repo = new_repo()
    co = repo.checkout(write=True)
    a = co.add_ndarray_column("a", prototype=v(0))
    b = co.add_ndarray_column("b", prototype=v(0))
    co.commit("columns")
    with a:
        for i in range(20):
            a[i] = v(i)
    for i in range(20):
        b[i] = v(i)
    staged = co.diff.staged().diff.added.samples
    by_column: dict[str, set[Any]] = {"a": set(), "b": set()}
    for key in staged:
        by_column[key.column].add(key.sample)
    assert by_column["a"] == by_column["b"] == set(range(20))
    digests = co._staging.staged_diff().added
    assert {k[1:]: d for k, d in digests.items() if k[0] == "a"} == {
        k[1:]: d for k, d in digests.items() if k[0] == "b"
    }
    co.close()


def test_a_failed_commit_keeps_the_packed_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    repo = new_repo()
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("x", prototype=v(0))
    with col:
        for i in range(100):
            col[i] = v(i)
    store = co._staging.store
    real_put = store.put
    calls = {"n": 0}

    def failing_put(key: str, data: Any) -> None:
        if key.startswith("manifests/"):
            calls["n"] += 1
            raise OSError("injected: the store refused the segment")
        real_put(key, data)

    monkeypatch.setattr(store, "put", failing_put)
    with pytest.raises(OSError, match="injected"):
        co.commit("refused")
    assert calls["n"] == 1
    monkeypatch.setattr(store, "put", real_put)
    assert co._staging.columns["x"].table.count == 100
    assert np.array_equal(col[42], v(42))
    co.commit("again")
    co.close()
    r = repo.checkout()["x"]
    assert [int(r[k][0]) for k in range(100)] == list(range(100))


def _batch(keys: list[int], chunks: list[str], chunk_index: list[int]) -> SegmentLocations:
    n = len(keys)
    ints = np.arange(n, dtype=np.int64)
    return SegmentLocations(
        keys=list(keys),
        chunks=chunks,
        chunk_index=np.array(chunk_index, np.int64),
        block_offset=ints * 10,
        block_size=ints + 5,
        block_checks=["c0", "c1"],
        check_index=ints % 2,
        item_offset=ints * 3,
        item_nbytes=np.full(n, 3, np.int64),
        fixed_shape=True,
        digests=b"".join(int(k).to_bytes(8, "big") for k in keys),
    )


def test_staged_table_numbers_rows_across_batches_and_unifies_names() -> None:
    table = StagedTable()
    first = table.add(_batch([10, 11, 12], ["A", "B"], [0, 1, 1]))
    second = table.add(_batch([20, 21], ["C", "A"], [1, 0]))
    assert list(first) == [-1, -2, -3]
    assert list(second) == [-4, -5]
    assert table.entry(-4).location.chunk == "A"  # key 20
    assert table.entry(-5).location.chunk == "C"
    assert table.entry(-3).location.block_offset == 20
    assert table.digest(-4) == (20).to_bytes(8, "big")
    whole = table.whole()
    assert whole.keys == [10, 11, 12, 20, 21]
    assert whole.chunks == ["A", "B", "C"]
    assert [whole.chunks[i] for i in whole.chunk_index] == ["A", "B", "B", "A", "C"]
    for slot in range(-1, -6, -1):
        row = ~slot
        assert whole.entry(row) == table.entry(slot)
    with pytest.raises(ValueError, match="digests"):
        table.add(decode_locations(encode_segment([])))
    table.clear()
    assert table.count == 0
