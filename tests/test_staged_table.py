"""With-block samples kept as arrays until commit (hangar.columns._table).

After a with-block, a flat fixed-shape column's index points each key at a
row of its StagedTable (no entry per sample); a commit encodes the segments
from those arrays. These tests pin that the arrays give the same segments,
reads and diffs as entries would.
"""

from __future__ import annotations

import sys
import threading
import uuid
from typing import Any

import numpy as np
import pytest

import hangar.columns._engine as engine_module
import hangar.staging as staging_module
from hangar import Repository
from hangar.columns._rows import increasing_ints
from hangar.columns._table import StagedTable, batch_from_runs, is_packed
from hangar.exceptions import HangarError
from hangar.format.chunks import Run
from hangar.format.manifest import (
    SegmentLocations,
    decode_columns,
    decode_locations,
    encode_segment,
)
from hangar.format.names import manifest_key
from hangar.format.staging import JournalEntry, list_entries, read_entries
from hangar.replay import replay_entry


def new_repo() -> Repository:
    repo = Repository(f"memory://staged-{uuid.uuid4().hex}", exists=False)
    repo.init("t", "t@example.com", remove_old=True)
    return repo


def new_column() -> tuple[Repository, Any, Any]:
    """A new repository, its writer checkout, and an empty uint8[160] column "x"."""
    repo = new_repo()
    co = repo.checkout(write=True)
    return repo, co, co.add_ndarray_column("x", prototype=v(0))


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
    repo, co, col = new_column()
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
    repo, co, col = new_column()
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
    repo, co, col = new_column()
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


@pytest.mark.parametrize("kind", ["range", "int", "str", "mixed"])
def test_a_reopened_writer_gets_the_packed_rows_back_from_the_journal(kind: str) -> None:
    def key(i: int) -> Any:
        if kind == "range":
            return 7 + i
        if kind == "int" or (kind == "mixed" and i % 2):
            return 3 * i
        return f"k{i}"

    repo, co, col = new_column()
    with col:
        for i in range(300):
            col[key(i)] = v(i % 120)  # repeats
    entries = read_entries_of(co)
    ops = [op for e in entries for op in e.ops if op[0] == "setpacked"]
    assert len(ops) == 1
    keys = ops[0][2]
    assert isinstance(keys, dict) == (kind in ("range", "int"))  # int keys go inline
    if kind == "range":
        assert keys == {"range": [7, 300]}  # consecutive keys: no key bytes
    co.close()
    co = repo.checkout(write=True)
    engine = co._staging.columns["x"]
    assert engine.table.count == 300
    assert all(is_packed(engine.index[key(i)]) for i in range(300))
    col = co["x"]
    assert all(int(col[key(i)][0]) == i % 120 for i in range(300))
    co.commit("replayed")
    co.close()
    datas = segment_bytes(repo, "x")
    assert_same_as_row_encoding(datas)
    assert_digests_are_of_the_samples(repo, datas)


def read_entries_of(co: Any) -> list[JournalEntry]:
    staging = co._staging
    out = []
    for name in list_entries(staging.store, staging.branch):
        out.extend(read_entries(staging.store, staging.branch, name)[0])
    return out


def _packed_entry(**change: Any) -> JournalEntry:
    """A valid setpacked entry for keys 0, 1, 2 of column "x" (key 2 repeats key 0)."""
    entry = JournalEntry()
    fields = {
        "keys": {"int64": entry.add_inline(np.array([0, 1, 2], "<i8").tobytes())},
        "digests": entry.add_inline(bytes(24)),
        "runs": [["c" * 40, 0, 10, "0" * 16, 0, 2, 16]],
        "same": entry.add_inline(np.array([2, 0], "<i8").tobytes()),
    }
    fields.update(change)
    entry.ops.append(["setpacked", "x", *fields.values()])
    return entry


@pytest.mark.parametrize(
    ("change", "ok"),
    [
        ({}, True),
        ({"same": None, "runs": [["c" * 40, 0, 10, "0" * 16, 0, 3, 16]]}, True),
        ({"keys": {"range": [0, 3]}}, True),  # keys 0, 1, 2 with no key bytes
        ({"keys": {"range": [-1, 3]}}, False),
        ({"keys": {"range": [0, 0]}}, False),
        ({"keys": {"range": [0, 2]}}, False),  # 2 keys, 3 digests
        ({"keys": {"range": ["0", 3]}}, False),
        ({"keys": {"range": [0, 3.0]}}, False),
        ({"keys": {"range": [0]}}, False),
        ({"same": None}, False),  # the runs cover 2 keys of 3
        ({"digests": [0, 16]}, False),  # 16 bytes for 3 keys
        ({"digests": [0, 10_000]}, False),  # out of the entry
        ({"keys": [0, 1]}, False),
        ({"keys": {"int64": [0, 8]}}, False),
        ({"keys": {"int32": [0, 24]}}, False),
        ({"runs": [["c" * 40, 0, 10, "0" * 16, 0, 2]]}, False),
        ({"runs": [["c" * 40, 0, 10, "0" * 16, 0, -1, 16]]}, False),
        # keys as a JSON list: each must be one a write accepts
        ({"keys": ["a", "b", ""]}, False),
        ({"keys": ["a", "b\n", "c"]}, False),
        ({"keys": [0, -1, 2]}, False),
        ({"keys": [0, 1.5, 2]}, False),
        ({"keys": [0, None, 2]}, False),
        ({"keys": "abc"}, False),
    ],
)
def test_malformed_packed_ops_are_refused_on_replay(change: dict[str, Any], ok: bool) -> None:
    repo = new_repo()
    co = repo.checkout(write=True)
    co.add_ndarray_column("x", shape=(2,), dtype=np.int64)
    staging = co._staging
    entry = _packed_entry(**change)
    if ok:
        replay_entry(entry, staging.columns, staging._new_engine, "master")
        index, table = staging.columns["x"].index, staging.columns["x"].table
        offsets = [table.entry(index[k]).location.item_offset for k in range(3)]
        assert offsets == ([0, 16, 0] if change.get("same", 1) is not None else [0, 16, 32])
    else:
        with pytest.raises(HangarError, match="malformed"):
            replay_entry(entry, staging.columns, staging._new_engine, "master")
    co.close()


@pytest.mark.parametrize(
    "same",
    [[[1, 1]], [[0, 1]], [[5, 0]], [[2, 0], [2, 1]], [[1, 0], [2, 1]], [[-1, 0]]],
)
def test_repeats_in_packed_ops_must_name_an_earlier_stored_key(same: list[list[int]]) -> None:
    keys = [0, 1, 2]
    runs = [Run("c" * 40, 0, 10, "0" * 16, 0, 3 - len(same), 16)]
    with pytest.raises(ValueError, match="repeat"):
        batch_from_runs(keys, bytes(24), runs, same)


@pytest.mark.parametrize(
    "op",
    [
        ["set", "x", "bad\n", None, "00" * 8, None, ["c" * 40, 0, 10, "0" * 16, 0, 16], None],
        ["set", "x", -3, None, "00" * 8, None, ["c" * 40, 0, 10, "0" * 16, 0, 16], None],
        ["set", "x", 1, None, "zz", None, ["c" * 40, 0, 10, "0" * 16, 0, 16], None],
        ["del", "x", "", None],
        ["del", "x", [1], None],
        [
            "setruns",
            "x",
            [0, "a b\t"],
            None,
            "00" * 16,
            None,
            [["c" * 40, 0, 10, "0" * 16, 0, 2, 16]],
        ],
        [
            "setmany",
            "x",
            [0, 1],
            [None, ""],
            "00" * 16,
            None,
            [["c" * 40] * 2, [0, 0], [10, 10], ["0" * 16] * 2, [0, 16], [16, 16]],
        ],
    ],
)
def test_every_op_refuses_keys_no_write_accepts(op: list[Any]) -> None:
    repo = new_repo()
    co = repo.checkout(write=True)
    co.add_ndarray_column("x", shape=(2,), dtype=np.int64)
    staging = co._staging
    entry = JournalEntry()
    entry.ops.append(op)
    with pytest.raises(HangarError, match="malformed"):
        replay_entry(entry, staging.columns, staging._new_engine, "master")
    co.close()


def test_packed_ops_only_replay_into_columns_that_take_rows() -> None:
    repo = new_repo()
    co = repo.checkout(write=True)
    co.add_str_column("x")
    staging = co._staging
    with pytest.raises(HangarError, match="malformed"):
        replay_entry(_packed_entry(), staging.columns, staging._new_engine, "master")
    co.close()


def test_an_entry_with_its_own_shape_sends_the_bucket_down_the_row_path() -> None:
    """Arrays hold fixed-shape rows only; an entry that records a shape (as a journal of
    another build might) is committed with the packed rows as entries instead."""
    repo, co, col = new_column()
    col[0] = v(9)
    co.commit("one")
    staging = co._staging
    stored = staging.columns["x"].index[0]
    op = ["set", "x", 500, None, stored.digest.hex(), [160], list(stored.location), None]
    replay_entry(JournalEntry([op]), staging.columns, staging._new_engine, "master")
    with col:
        for i in range(1, 11):
            col[i] = v(i)
    co.commit("two")
    co.close()
    r = repo.checkout()["x"]
    assert int(r[500][0]) == 9
    assert [int(r[i][0]) for i in range(1, 11)] == list(range(1, 11))


class _Sub(np.ndarray):
    """An ndarray subclass: written through the general path, not as a row."""


def test_reads_deletes_and_slow_writes_inside_a_block_see_every_row_written() -> None:
    """Rows are indexed only when something looks: each kind of look must see them."""
    repo, co, col = new_column()
    with col:
        for i in range(100):
            col[i] = v(i)
        assert len(col) == 100
        assert 99 in col
        assert int(col[42][0]) == 42
        for i in range(100, 200):
            col[i] = v(i)
        assert int(col.get(150)[0]) == 150
        del col[150]  # a buffered row, deleted
        col[160] = v(1).view(_Sub)  # not exactly an ndarray: the general path
        col[170] = v(1)
        col[170] = v(2)  # written twice in the block
        assert sorted(col.keys()) == sorted(set(range(200)) - {150})
        assert co.diff.status() == "DIRTY"
    assert len(col) == 199
    assert 150 not in col
    assert int(col[160][0]) == 1
    assert int(col[170][0]) == 2
    co.commit("block")
    co.close()
    r = repo.checkout()["x"]
    want = {i: i % 251 for i in range(200) if i != 150} | {160: 1, 170: 2}
    assert {k: int(a[0]) for k, a in r.items()} == want


def _block_then_commit(writes: list[tuple[Any, int]], *, look: bool) -> tuple[Repository, Any]:
    """A new column, one with-block of ``writes`` (``None`` value: delete), a commit.

    ``look``: ask the column its length between the block and the commit, which
    indexes the block's keys (the general path of a commit); without it a
    commit right after the block may encode straight from the packed rows.
    """
    repo, co, col = new_column()
    engine = co._staging.columns["x"]
    with col:
        for key, value in writes:
            if value is None:
                del col[key]
            else:
                col[key] = v(value)
    if look:
        len(col)
        assert not engine._deferred
    co.commit("block")
    co.close()
    return repo, engine


_SCENARIOS = {
    "increasing ints, with repeated samples": [(i, i % 37) for i in range(300)],
    "one key": [(5, 1)],
    "decreasing ints": [(i, i) for i in range(120, 0, -1)],
    "str keys": [(f"k{i:03d}", i) for i in range(90)],
    "str keys of digits": [(str(i), i) for i in range(100, 190)],
    "a key written twice": [(i, i) for i in range(80)] + [(3, 200)],
    "a key deleted": [(i, i) for i in range(80)] + [(10, None)],
    "ints then a str key": [(i, i) for i in range(50)] + [("s", 9)],
}


@pytest.mark.parametrize("writes", list(_SCENARIOS.values()), ids=list(_SCENARIOS))
def test_a_commit_right_after_a_block_matches_the_general_path(
    monkeypatch: pytest.MonkeyPatch, writes: list[tuple[Any, int]]
) -> None:
    """A commit straight after a new column's with-block is encoded from the packed rows when
    the keys are increasing ints written once, else through the index; either way its
    segments are the bytes the general path writes, and read back as written."""
    monkeypatch.setattr(engine_module, "SEGMENT_ROWS", 64)  # several segments
    fast, engine = _block_then_commit(writes, look=False)
    general, _ = _block_then_commit(writes, look=True)
    datas = segment_bytes(fast, "x")
    assert datas == segment_bytes(general, "x")
    assert_same_as_row_encoding(datas)
    assert_digests_are_of_the_samples(fast, datas)
    model: dict[Any, int] = {}
    for key, value in writes:
        if value is None:
            model.pop(key)
        else:
            model[key] = value
    r = fast.checkout()["x"]
    assert {k: int(a[0]) for k, a in r.items()} == {k: x % 251 for k, x in model.items()}
    assert not engine._deferred
    assert fast.verify().ok


def test_the_first_commit_of_a_block_makes_no_index_entry_per_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Increasing int keys written once: the commit encodes the packed rows as they are, and
    the index is never filled key by key (the with-block's end defers it)."""
    repo, co, col = new_column()
    engine = co._staging.columns["x"]
    with col:
        for i in range(1000):
            col[i] = v(i)
    assert engine._index.single == {}  # nothing indexed yet
    assert all(batch.ints is not None for batch in engine._deferred)  # their keys as int64

    def no_index() -> None:
        raise AssertionError("the commit indexed the block's keys one by one")

    monkeypatch.setattr(engine, "_undefer", no_index)
    co.commit("block")
    monkeypatch.undo()
    assert engine._index.single is None  # the new base: the committed segments
    assert not engine._deferred
    assert int(col[999][0]) == 999 % 251
    co.close()
    assert [int(a[0]) for a in repo.checkout()["x"].values()] == [i % 251 for i in range(1000)]


@pytest.mark.parametrize(
    ("keys", "want"),
    [
        ([0, 1, 5, 9], [0, 1, 5, 9]),
        ([7], [7]),
        ([1, 1, 2], None),  # a key twice
        ([3, 2], None),
        (["1", "2"], None),  # str keys, even of digits, are not ints
        ([1, "2"], None),
        ([1, 2**63], None),  # past int64
    ],
)
def test_increasing_ints_takes_only_ints_in_increasing_order(keys: list[Any], want: Any) -> None:
    got = increasing_ints(keys)
    assert (got is None) if want is None else (got is not None and got.tolist() == want)


def test_what_a_block_deferred_is_indexed_before_anything_looks() -> None:
    """Keys a block's end packed and did not index yet are seen by every later look: reads,
    length, a write or a delete, a diff, and another with-block."""
    repo, co, col = new_column()
    with col:
        for i in range(50):
            col[i] = v(i)
    assert 49 in col
    del col[3]
    assert len(col) == 49
    with col:
        col[60] = v(60)
        assert int(col[4][0]) == 4
    added = {k.sample for k in co.diff.staged().diff.added.samples}
    assert added == set(range(50)) - {3} | {60}
    co.commit("c")
    co.close()
    r = repo.checkout()["x"]
    assert sorted(r.keys()) == sorted(set(range(50)) - {3} | {60})


def _read_all(col: Any, n: int, first: int, start: threading.Barrier, errors: list[Any]) -> None:
    start.wait()
    try:
        for k in range(first, n, 331):
            assert int(col[k][0]) == k % 251
    except BaseException as exc:
        errors.append(exc)


def test_threads_reading_right_after_a_block_all_see_every_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first looks after a block index what it deferred (a batch per page); threads that
    look at once each see the whole index, never one half applied."""
    repo = new_repo()
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("x", prototype=v(0))
    co.commit("an empty column")  # each round resets to it
    monkeypatch.setattr(staging_module, "uniform_layout", lambda *a: (1024, 1024))  # page rows
    n = 6_000
    for _ in range(5):
        with col:
            for i in range(n):
                col[i] = v(i)
        assert len(co._staging.columns["x"]._deferred) > 3
        start = threading.Barrier(4)
        errors: list[Any] = []
        threads = [
            threading.Thread(target=_read_all, args=(col, n, n - 1 - t, start, errors))
            for t in range(4)
        ]
        old = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # threads take turns between any two bytecodes
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            sys.setswitchinterval(old)
        assert errors == []
        co.reset_staging_area()
    co.close()
