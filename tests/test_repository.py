"""The Hangar tutorial API on the object-store format: repository, checkouts, columns."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hangar import Repository
from hangar.exceptions import (
    HangarError,
    LockHeldError,
    ReadOnlyError,
    RepositoryNotFoundError,
)


@pytest.fixture(params=["local", "memory"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "repo")
    return f"memory://repo-{uuid.uuid4().hex}"


def new_repo(location: str, **kw: Any) -> Repository:
    with pytest.warns(UserWarning, match=r"init\(\)"):
        repo = Repository(location, **kw)
    repo.init(user_name="Rick Izzo", user_email="rick@tensorwerk.com", remove_old=True)
    return repo


def images(n: int = 100, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (n, 784), dtype=np.uint8)


def test_no_repository_says_init_and_refuses_work(location: str) -> None:
    with pytest.warns(UserWarning, match=r"init\(\)"):
        repo = Repository(location)
    assert not repo.initialized
    with pytest.raises(RepositoryNotFoundError, match=r"init\(\)"):
        repo.checkout(write=True)
    with pytest.raises(RepositoryNotFoundError):
        repo.log()


def test_init_twice_needs_remove_old(location: str, capsys: pytest.CaptureFixture[str]) -> None:
    repo = new_repo(location)
    assert "Hangar Repo initialized at:" in capsys.readouterr().out
    with pytest.raises(FileExistsError):
        repo.init("a", "b@c")
    assert Repository(location).initialized


def test_tutorial_reprs_are_hangars(location: str) -> None:
    repo = new_repo(location)
    co = repo.checkout(write=True)
    pad = " " * 16
    assert repr(co) == (
        f"Hangar WriterCheckout{pad}\n    Writer       : True{pad}\n    Base Branch  : master"
        f"{pad}\n    Num Columns  : 0\n"
    )
    col = co.add_ndarray_column(name="mnist_training_images", prototype=images(1)[0])
    assert repr(col) == (
        f"Hangar FlatSampleWriter {pad}"
        f"\n    Column Name              : mnist_training_images{pad}"
        f"\n    Writeable                : True{pad}"
        f"\n    Column Type              : ndarray{pad}"
        f"\n    Column Layout            : flat{pad}"
        f"\n    Schema Type              : fixed_shape{pad}"
        f"\n    DType                    : uint8{pad}"
        f"\n    Shape                    : (784,){pad}"
        f"\n    Number of Samples        : 0{pad}"
        f"\n    Partial Remote Data Refs : False\n"
    )
    assert repr(co.columns) == (
        f"Hangar Columns{pad}\n    Writeable         : True{pad}\n    Number of Columns : 1"
        f"{pad}\n    Column Names / Partial Remote References:{pad}"
        "\n      - mnist_training_images / False"
    )
    co.close()


def test_tutorial_flow(location: str, capsys: pytest.CaptureFixture[str]) -> None:
    repo = new_repo(location)
    trimgs = images(200)
    trlabels = np.arange(200) % 10
    co = repo.checkout(write=True)
    col = co.add_ndarray_column(name="mnist_training_images", prototype=trimgs[0])
    lab = co.add_ndarray_column(name="mnist_training_labels", prototype=np.array([trlabels[0]]))
    assert co.columns["mnist_training_images"] is col
    assert co.columns.get("mnist_training_images") is col
    assert co["mnist_training_images"] is col
    col["0"] = trimgs[0]
    col[51] = trimgs[51]
    co["mnist_training_images", 60] = trimgs[60]
    assert len(col) == 3
    assert "hi" not in col
    assert "0" in col
    assert 60 in col
    assert 0 not in col  # '0' and 0 are different keys
    assert np.array_equal(col["0"], trimgs[0])
    assert np.array_equal(co["mnist_training_images", 60], trimgs[60])
    with col, lab:
        for i in range(len(trimgs)):
            col[i] = trimgs[i]
            lab[i] = np.array([trlabels[i]])
    digest = co.commit("first commit adding training images and labels")
    assert re.fullmatch(r"a=[0-9a-f]{40}", digest)
    assert repr(co).endswith("Num Columns  : 2\n")
    co.close()
    capsys.readouterr()
    repo.log()
    assert capsys.readouterr().out == (
        f"* {digest} (master) : first commit adding training images and labels\n"
    )
    log = repo.log(return_contents=True)
    assert log["head"] == digest
    assert log["order"] == [digest]
    assert log["specs"][digest]["commit_user"] == "Rick Izzo"
    text = repo.summary(return_contents=True)
    assert f"|  Commit: {digest} \n" in text
    assert "|  * Column Name: mnist_training_images \n|    Num Data Pieces: 201 \n" in text
    assert "|  Number of Named Columns: 2 \n" in text
    r = repo.checkout()
    assert r.commit_hash == digest
    assert repr(r).startswith("Hangar ReaderCheckout")
    rc = r.columns["mnist_training_images"]
    assert repr(rc).startswith("Hangar FlatSampleReader ")
    assert len(rc) == 201
    for i in (0, 51, 199):
        assert np.array_equal(rc[i], trimgs[i])
        assert int(r["mnist_training_labels", i][0]) == trlabels[i]
    with rc:
        got = dict(rc.items())
    assert len(got) == 201
    assert np.array_equal(got["0"], trimgs[0])
    with pytest.raises(ReadOnlyError):
        rc[5] = trimgs[5]
    with pytest.raises(KeyError):
        rc["nope"]
    r.close()
    with pytest.raises(PermissionError, match="closed"):
        _ = r.columns


@pytest.mark.parametrize(
    ("kind", "layout", "variable"),
    [(k, lay, v) for k in ("ndarray", "str", "bytes") for lay in ("flat", "nested")
     for v in ((False, True) if k == "ndarray" else (True,))],
)  # fmt: skip
def test_column_kinds(location: str, kind: str, layout: str, variable: bool) -> None:
    repo = new_repo(location)
    nested = layout == "nested"
    rng = np.random.default_rng(1)

    def sample(i: int) -> Any:
        if kind == "str":
            return f"sample {i} ünïcode " * (i % 5 + 1)
        if kind == "bytes":
            return bytes(rng.integers(0, 255, i % 37 + 1, dtype=np.uint8))
        shape = (i % 7 + 1, 3) if variable else (7, 3)
        return rng.standard_normal(shape).astype(np.float32)

    co = repo.checkout(write=True)
    if kind == "ndarray":
        col = co.add_ndarray_column(
            "c", shape=(7, 3), dtype=np.float32, variable_shape=variable, contains_subsamples=nested
        )
    elif kind == "str":
        col = co.add_str_column("c", contains_subsamples=nested)
    else:
        col = co.add_bytes_column("c", contains_subsamples=nested)
    expected: dict[Any, Any] = {}
    for i in range(40):
        key: Any = i if i % 2 else f"k{i}"
        value = {0: sample(i), "s": sample(i + 1)} if nested else sample(i)
        expected[key] = value
        if i < 20:
            col[key] = value  # journaled one by one
    with col:
        for key in list(expected)[20:]:
            col[key] = expected[key]

    def check(c: Any) -> None:
        assert len(c) == len(expected)
        assert set(c.keys()) == set(expected)
        for key, value in expected.items():
            got = c[key]
            if nested:
                assert set(got.keys()) == set(value)
                for sk, v in value.items():
                    _same(got[sk], v)
            else:
                _same(got, value)

    check(col)
    co.commit("all kinds")
    check(col)
    co.close()
    r = repo.checkout()
    check(r["c"])
    assert r["c"].column_type == kind
    assert r["c"].column_layout == layout
    assert r["c"].schema_type == ("variable_shape" if variable else "fixed_shape")
    r.close()


def _same(got: Any, want: Any) -> None:
    if isinstance(want, np.ndarray):
        assert got.dtype == want.dtype
        assert np.array_equal(got, want)
    else:
        assert type(got) is type(want)
        assert got == want


def test_dict_interface(location: str) -> None:
    repo = new_repo(location)
    co = repo.checkout(write=True)
    col = co.add_str_column("names")
    col.update({1: "one", "1": "string one"}, two="two")
    assert col[1] == "one"
    assert col["1"] == "string one"
    assert col.get(3) is None
    assert col.get(3, "x") == "x"
    assert col.pop("two") == "two"
    assert "two" not in col
    with pytest.raises(KeyError):
        col.pop("two")
    assert col.pop("two", None) is None
    del col[1]
    assert list(col) == ["1"]
    assert list(col.values()) == ["string one"]
    with pytest.raises(KeyError):
        del col["missing"]
    key = col.append("appended")
    assert col[key] == "appended"
    co.commit("dict ops")
    co.columns.delete("names")
    assert "names" not in co.columns
    co.commit("dropped the column")
    co.close()
    assert len(repo.checkout().columns) == 0


def test_bad_input_is_refused_and_changes_nothing(location: str) -> None:
    repo = new_repo(location)
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("img", shape=(4, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"column 'img', key 1: expected dtype uint8, got float64"):
        col[1] = np.zeros((4, 4))
    with pytest.raises(ValueError, match=r"expected shape \(4, 4\), got \(4,\)"):
        col[1] = np.zeros(4, np.uint8)
    with pytest.raises(ValueError, match=r"numpy\.ndarray"):
        col[1] = [[0] * 4] * 4
    for bad_key in (1.5, None, -1, "", "a\nb", ("t",), b"k"):
        with pytest.raises(ValueError, match="key"):
            col[bad_key] = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match=r"column 'img', key 'bad'"):
        col.update({"ok": np.zeros((4, 4), np.uint8), "bad": np.zeros((3, 3), np.uint8)})
    assert len(col) == 0  # update wrote none of them
    for bad_name in ("", "has space", "../up", "a/b", "é", "x" * 65):
        with pytest.raises(ValueError, match="column name"):
            co.add_str_column(bad_name)
    with pytest.raises(ValueError, match="already exists"):
        co.add_str_column("img")
    with pytest.raises(ValueError, match="prototype"):
        co.add_ndarray_column("noshape")
    with pytest.raises(ValueError, match="backend"):
        co.add_str_column("s", backend="10")
    co.commit("a column")
    with pytest.raises(HangarError, match="No changes"):
        co.commit("nothing")
    co.close()


def test_staged_changes_persist_across_close(location: str) -> None:
    repo = new_repo(location)
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("c", shape=(3,), dtype=np.int16)
    col[1] = np.array([1, 2, 3], np.int16)
    with col:
        col[2] = np.array([4, 5, 6], np.int16)
    co.close()
    co = repo.checkout(write=True)
    assert np.array_equal(co["c", 1], [1, 2, 3])
    assert np.array_equal(co["c", 2], [4, 5, 6])
    first = co.commit("staged in two sessions")
    co["c", 3] = np.array([7, 8, 9], np.int16)
    assert co.reset_staging_area() == first
    assert 3 not in co["c"]
    co.close()
    r = repo.checkout()
    assert sorted(r["c"].keys()) == [1, 2]


def test_second_writer_is_refused_with_holder(location: str) -> None:
    repo = new_repo(location)
    co = repo.checkout(write=True)
    with pytest.raises(PermissionError, match=r"Cannot acquire the writer lock") as info:
        repo.checkout(write=True)
    assert isinstance(info.value, LockHeldError)
    assert "Rick Izzo" in str(info.value)
    assert "until" in str(info.value)
    co.close()
    repo.checkout(write=True).close()  # released on close


def test_force_release_fences_the_old_writer(location: str) -> None:
    repo = new_repo(location)
    co = repo.checkout(write=True)
    col = co.add_str_column("s")
    col["a"] = "x"
    assert repo.force_release_writer_lock() is True
    co2 = repo.checkout(write=True)
    with pytest.raises(PermissionError, match="lost its lease"):
        col["b"] = "y"
    with pytest.raises(PermissionError):
        co.commit("stale")
    assert co2["s", "a"] == "x"  # the staged write of the old writer was adopted
    co2.commit("by the new writer")
    co2.close()
    co.close()


def test_with_form_and_naked_form_mix(location: str) -> None:
    repo = new_repo(location)
    co = repo.checkout(write=True)
    a = co.add_ndarray_column("a", shape=(2,), dtype=np.float64)
    with co:
        for i in range(10):
            a[i] = np.full(2, i, np.float64)
        assert np.array_equal(a[3], [3, 3])  # readable inside the block
        a[3] = np.full(2, 33.0)
    a[4] = np.full(2, 44.0)
    co.commit("mixed")
    co.close()
    r = repo.checkout()
    assert np.array_equal(r["a", 3], [33, 33])
    assert np.array_equal(r["a", 4], [44, 44])
    assert np.array_equal(r["a", 9], [9, 9])


def test_a_damaged_chunk_is_reported_never_returned(tmp_path: Path) -> None:
    from hangar.exceptions import CorruptionError

    repo = new_repo(str(tmp_path / "r"))
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("c", shape=(100,), dtype=np.uint8)
    with col:
        for i in range(50):
            col[i] = np.full(100, i, np.uint8)
    co.commit("fifty")
    co.close()
    chunks = list((tmp_path / "r" / ".hangar" / "chunks").rglob("*"))
    chunk = next(p for p in chunks if p.is_file())
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    r = repo.checkout()
    with pytest.raises(CorruptionError):
        r["c", 25]
    with pytest.raises(CorruptionError):
        list(r["c"].values())


def test_gc_pause_nests_and_restores() -> None:
    import gc

    from hangar._gcpause import gc_paused

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # it was off before: stays off
    finally:
        gc.enable()


def test_commit_inside_a_with_block_is_refused(location: str) -> None:
    repo = new_repo(location)
    co = repo.checkout(write=True)
    col = co.add_str_column("s")
    with col:
        col["a"] = "x"
        with pytest.raises(HangarError, match="leave the block"):
            co.commit("too early")
    co.commit("after the block")
    co.close()
    assert repo.checkout()["s", "a"] == "x"


def test_writer_dying_between_ref_and_journal_reset_loses_nothing(location: str) -> None:
    repo = new_repo(location)
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("c", shape=(2,), dtype=np.int32)
    with col:
        for i in range(10):
            col[i] = np.array([i, i], np.int32)
    co._staging._reset_journal = lambda base_commit: None  # type: ignore[method-assign]
    digest = co.commit("the ref moves, then the writer dies")
    repo.force_release_writer_lock()  # the dead writer's lease
    co2 = repo.checkout(write=True)
    assert co2.commit_hash == digest
    assert len(co2["c"]) == 10  # the leftover journal replays onto the new head harmlessly
    assert np.array_equal(co2["c", 7], [7, 7])
    co2["c", 10] = np.array([10, 10], np.int32)
    co2.commit("next")
    co2.close()
    r = repo.checkout()
    assert sorted(r["c"].keys()) == list(range(11))


def test_read_only_objects_pickle_and_writers_refuse(tmp_path: Path) -> None:
    import pickle

    repo = new_repo(str(tmp_path / "r"))
    co = repo.checkout(write=True)
    col = co.add_str_column("s")
    col["a"] = "x"
    with pytest.raises(PermissionError, match="pickled"):
        pickle.dumps(co)
    with pytest.raises(PermissionError, match="pickled"):
        pickle.dumps(col)
    co.commit("one")
    co.close()
    r = repo.checkout()
    again = pickle.loads(pickle.dumps(r))
    assert again.commit_hash == r.commit_hash
    assert again["s", "a"] == "x"
    column = pickle.loads(pickle.dumps(r["s"]))
    assert column["a"] == "x"
    assert not column.iswriteable


def test_reusing_one_array_for_many_writes_stores_each_value(location: str) -> None:
    repo = new_repo(location)
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("c", shape=(3,), dtype=np.int64)
    buf = np.zeros(3, np.int64)
    with col:
        for i in range(5):
            buf[:] = i
            col[i] = buf  # the same object every time
    buf[:] = 99
    col[5] = buf  # outside a block: journaled now
    buf[:] = -1  # changed after the write returned
    co.commit("reused buffer")
    co.close()
    r = repo.checkout()
    assert [int(r["c", i][0]) for i in range(6)] == [0, 1, 2, 3, 4, 99]


def test_branches_lock_state_and_size(location: str) -> None:
    repo = new_repo(location)
    assert repo.list_branches() == ["master"]
    assert not repo.writer_lock_held
    co = repo.checkout(write=True)
    assert repo.writer_lock_held
    col = co.add_bytes_column("b")
    col[0] = bytes(5000)
    co.commit("five thousand zero bytes")
    assert repo.branch_lock_held("master")
    repo.create_branch("dev")
    assert not repo.branch_lock_held("dev")
    co.close()
    assert not repo.writer_lock_held
    assert not repo.branch_lock_held()
    dev = repo.checkout(write=True, branch="dev")
    assert repo.writer_lock_held  # any branch held, as Hangar's one lock
    assert repo.branch_lock_held("dev")
    assert not repo.branch_lock_held("master")
    dev.close()
    assert not repo.writer_lock_held
    with pytest.raises(ValueError, match="branch name"):
        repo.branch_lock_held("../x")
    assert repo.size_nbytes > 0
    assert repo.size_human.endswith(("B", "kB", "MB"))
    with pytest.raises(KeyError, match="no branch"):
        repo.checkout(branch="nope")
    with pytest.raises(KeyError, match="no commit"):
        repo.checkout(commit="a=" + "0" * 40)


def test_nested_deletes_and_reader_refuses_deletes(location: str) -> None:
    repo = new_repo(location)
    co = repo.checkout(write=True)
    col = co.add_str_column("n", contains_subsamples=True)
    col["a"] = {"x": "1", "y": "2"}
    col["b"] = {0: "3"}
    del col["a"]["x"]
    assert list(col["a"].keys()) == ["y"]
    del col["b"]
    assert "b" not in col
    with pytest.raises(KeyError):
        del col["b"]
    assert col.pop("a") == {"y": "2"}
    col["c"] = {"z": "4"}
    co.commit("nested deletes")
    co.close()
    r = repo.checkout()
    assert list(r["n"].keys()) == ["c"]
    with pytest.raises(PermissionError):
        del r["n"]["c"]


def test_closing_inside_a_with_block_keeps_its_writes(location: str) -> None:
    repo = new_repo(location)
    co = repo.checkout(write=True)
    col = co.add_str_column("s")
    col.__enter__()
    col["a"] = "buffered"
    co.close()  # the block never ended: closing flushes it
    co = repo.checkout(write=True)
    assert co["s", "a"] == "buffered"
    co.close()
    import gc

    assert gc.isenabled()  # the block's pause of the collector ended with it


@pytest.mark.parametrize("layout", ["flat-fixed", "flat-variable", "nested"])
def test_with_block_deletes_and_overwrites_survive_reopen(location: str, layout: str) -> None:
    """Inside a block: write, overwrite, delete, rewrite; the journal replays the end state."""
    repo = new_repo(location)
    co = repo.checkout(write=True)
    nested = layout == "nested"
    col = co.add_ndarray_column(
        "x", shape=(3,), dtype=np.float32, variable_shape=layout == "flat-variable",
        contains_subsamples=nested,
    )  # fmt: skip

    def put(key: Any, value: float) -> None:
        arr = np.full(3, value, np.float32)
        if nested:
            col[key] = {"s": arr}
        else:
            col[key] = arr

    put(0, 0.0)  # journaled outside any block
    with col:
        for k in range(1, 6):
            put(k, float(k))
        put(2, 20.0)  # overwritten
        del col[3]  # deleted after its write
        del col[0]  # deleted, written before the block
        put(4, 40.0)
        del col[4]
        put(4, 400.0)  # rewritten after a delete
        col.update({5: {"s": np.full(3, 50.0, np.float32)}} if nested else
                   {5: np.full(3, 50.0, np.float32)})  # the slow path, same block  # fmt: skip
        assert sorted(col.keys()) == [1, 2, 4, 5]
    want = {1: 1.0, 2: 20.0, 4: 400.0, 5: 50.0}

    def check(c: Any) -> None:
        assert sorted(c.keys()) == sorted(want)
        for k, v in want.items():
            got = c[k]["s"] if nested else c[k]
            assert np.array_equal(got, np.full(3, v, np.float32)), (k, got)

    check(col)
    co.close()
    co = repo.checkout(write=True)  # replays the journal
    check(co["x"])
    co.commit("end state")
    co.close()
    check(repo.checkout()["x"])


def test_with_block_reads_see_buffered_rows(location: str) -> None:
    repo = new_repo(location)
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("img", prototype=images(1)[0])
    data = images(300)
    with col:
        for i, img in enumerate(data):
            col[i] = img
        col["s"] = data[0][::-1].copy()
        assert len(col) == 301
        assert 299 in col
        assert "s" in col
        assert np.array_equal(col[123], data[123])
        got = dict(col.items())
        assert np.array_equal(got[7], data[7])
        assert np.array_equal(got["s"], data[0][::-1])
        view = data[5]
        col[5] = view
        view[:] = 0  # changing the caller's array after the write changes nothing
        assert np.array_equal(col[5], images(300)[5])
    co.commit("rows")
    co.close()
    r = repo.checkout()
    assert len(r["img"]) == 301
    for i in (0, 5, 150, 299):
        assert np.array_equal(r["img", i], images(300)[i])


def test_reset_inside_a_with_block_is_refused(location: str) -> None:
    repo = new_repo(location)
    co = repo.checkout(write=True)
    col = co.add_str_column("s")
    with col:
        col["a"] = "x"
        with pytest.raises(HangarError, match="leave the block"):
            co.reset_staging_area()
    assert col["a"] == "x"
    co.close()


def test_arrays_from_a_scan_can_be_changed_without_touching_the_store() -> None:
    repo = Repository(f"memory://scan-{uuid.uuid4().hex}", exists=False)
    repo.init("t", "t@example.com")
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("x", shape=(4,), dtype=np.int32)
    with col:
        for i in range(100):
            col[i] = np.full(4, i, np.int32)
    co.commit("c")
    co.close()
    r = repo.checkout()["x"]
    got = dict(r.items())
    got[5][:] = -1  # the caller's array, not the stored sample
    assert got[6].tolist() == [6, 6, 6, 6]
    assert r[5].tolist() == [5, 5, 5, 5]
    assert dict(r.items())[5].tolist() == [5, 5, 5, 5]


def test_new_columns_get_bigger_blocks_on_object_stores(
    repo_location: tuple[str, dict[str, Any]],
) -> None:
    from hangar.format.schema import BLOCK_BYTES, REMOTE_BLOCK_BYTES

    url, opts = repo_location
    repo = Repository(url, exists=False, storage_options=opts)
    repo.init("t", "t@example.com", remove_old=True)
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("x", shape=(4,), dtype=np.uint8)
    text = co.add_str_column("s")
    want = REMOTE_BLOCK_BYTES if url.startswith("s3://") else BLOCK_BYTES
    assert col._engine.schema.block_bytes == text._engine.schema.block_bytes == want
    col[0] = np.arange(4, dtype=np.uint8)
    co.commit("one")
    co.close()
    r = repo.checkout()
    assert r["x"]._engine.schema.block_bytes == want  # it is the column's: in its schema
    r.close()
