"""Merges (issue 5): fast-forward, three-way, every conflict kind, strategies, cost,
and commits rebuilt when a merge moved the branch under a writer."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest

import hangar.columns._engine as engine_module
from hangar import Repository
from hangar.ancestry import common_ancestor
from hangar.diff import (
    ColumnSchemaKey,
    FlatColumnDataKey,
    NestedColumnDataKey,
)
from hangar.exceptions import (
    EmptyHistoryError,
    InvalidKeyError,
    LeaseLostError,
    MergeConflictError,
    RefNotFoundError,
)
from hangar.history import graph_rows
from hangar.store import open_store
from hangar.testing.counting import CountingStore
from history_helpers import change, contents, new_repo, v


def head(repo: Repository, branch: str) -> str | None:
    return repo._branch_head(branch)


def fk(*keys: Any) -> tuple[FlatColumnDataKey, ...]:
    return tuple(FlatColumnDataKey("x", k) for k in keys)


# ------------------------------------------------------------ the three kinds
def test_fast_forward_three_way_and_up_to_date(
    repo_location: tuple[str, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    repo = new_repo(repo_location)
    base = change(repo, "master", {0: 0, 1: 1, 2: 2, 3: 3}, msg="base")
    repo.create_branch("dev")
    dev1 = change(repo, "dev", {1: 10, 4: 4}, dels=(0,), msg="dev 1")

    # master is in dev's history: fast-forward, no new commit
    assert repo.merge("ff", "master", "dev") == dev1
    assert "Selected Fast-Forward Merge Strategy" in capsys.readouterr().out
    assert head(repo, "master") == dev1
    assert contents(repo) == {1: 10, 2: 2, 3: 3, 4: 4}

    # both moved: three-way merge with both heads as parents
    dev2 = change(repo, "dev", {2: 20, 5: 5}, dels=(3,), msg="dev 2")
    mast = change(repo, "master", {1: 11, 6: 6}, dels=(4,), msg="master 2")
    merged = repo.merge("merge dev", "master", "dev")
    assert "Selected 3-Way Merge Strategy" in capsys.readouterr().out
    assert head(repo, "master") == merged
    assert head(repo, "dev") == dev2
    rec = repo._read_commit(merged)
    assert rec.parents == (mast, dev2)
    assert rec.message == "merge dev"
    assert contents(repo) == {1: 11, 2: 20, 5: 5, 6: 6}
    assert contents(repo, "dev") == {1: 10, 2: 20, 4: 4, 5: 5}
    log = repo.log(return_contents=True)
    assert log["ancestors"][merged] == [mast, dev2]
    assert {base, dev1, dev2, mast, merged} <= set(log["order"])
    capsys.readouterr()
    repo.log()
    graph = [line.split(" a=")[0] for line in capsys.readouterr().out.splitlines()]
    # merge, its two lines of descent (dev's commits on the right), and where they join
    assert graph == ["*", "|\\", "* |", "| *", "|/", "*", "*"]
    # the old commits read as they were
    assert {k: int(a[0]) for k, a in repo.checkout(commit=mast)["x"].items()} == {
        1: 11, 2: 2, 3: 3, 6: 6
    }  # fmt: skip

    # dev already merged: nothing changes
    assert repo.merge("again", "master", "dev") == merged
    assert "Already up to date" in capsys.readouterr().out
    assert head(repo, "master") == merged
    # and master back into dev is a fast-forward now
    assert repo.merge("back", "dev", "master") == merged


def test_merge_of_columns_added_and_removed() -> None:
    repo = new_repo()
    change(repo, "master", {0: 0, 1: 1})
    co = repo.checkout(write=True)
    co.add_str_column("gone")["a"] = "old"
    co.commit("a column dev removes")
    co.close()
    repo.create_branch("dev")
    co = repo.checkout(write=True, branch="dev")
    co.add_str_column("names")["a"] = "alpha"
    co.columns.delete("gone")
    nested = co.add_ndarray_column("nest", prototype=v(0), contains_subsamples=True)
    nested["s"] = {"p": v(1), "q": v(2)}
    co.commit("dev columns")
    co.close()
    change(repo, "master", {2: 2})
    repo.merge("columns", "master", "dev")
    r = repo.checkout()
    assert sorted(r.columns) == ["names", "nest", "x"]
    assert r["names", "a"] == "alpha"
    assert int(r["nest"]["s"]["q"][0]) == 2
    assert sorted(r["x"].keys()) == [0, 1, 2]


def test_nested_columns_merge_per_subsample() -> None:
    repo = new_repo()
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("n", prototype=v(0), contains_subsamples=True)
    col["s"] = {"a": v(1), "b": v(2), "c": v(3)}
    co.commit("base")
    co.close()
    repo.create_branch("dev")
    co = repo.checkout(write=True, branch="dev")
    co["n"]["s"]["a"] = v(10)
    del co["n"]["s"]["c"]
    co.commit("dev subsamples")
    co.close()
    co = repo.checkout(write=True)
    co["n"]["s"]["b"] = v(20)
    co["n"]["t"] = {"z": v(0)}
    co.commit("master subsamples")
    co.close()
    repo.merge("m", "master", "dev")
    r = repo.checkout()
    assert {k: int(a[0]) for k, a in r["n"]["s"].items()} == {"a": 10, "b": 20}
    assert sorted(r["n"].keys()) == ["s", "t"]

    # the same subsample changed on both sides conflicts, named down to the subsample
    co = repo.checkout(write=True, branch="dev")
    co["n"]["s"]["a"] = v(100)
    co.commit("dev a")
    co.close()
    co = repo.checkout(write=True)
    co["n"]["s"]["a"] = v(200)
    co.commit("master a")
    co.close()
    with pytest.raises(MergeConflictError, match=r"n\['s'\]\['a'\]") as err:
        repo.merge("m2", "master", "dev")
    assert err.value.conflicts.t3.samples == (NestedColumnDataKey("n", "s", "a"),)


def test_log_graph_of_nested_merges() -> None:
    parents = {"M2": ["M1", "D2"], "D2": ["D1"], "M1": ["M0", "X"], "X": ["B"],
               "D1": ["B"], "M0": ["B"], "B": []}  # fmt: skip
    rows = graph_rows(["M2", "D2", "M1", "X", "D1", "M0", "B"], parents)
    assert rows == [
        ("*", "M2"), ("|\\", None), ("| *", "D2"), ("* |", "M1"), ("|\\ \\", None),
        ("| * |", "X"), ("| | *", "D1"), ("* | |", "M0"), ("| |/", None), ("|/", None),
        ("*", "B"),
    ]  # fmt: skip


# ----------------------------------------------------------------- conflicts
def _diverge(repo: Repository, master: dict[Any, int], mdel: tuple[Any, ...],
             dev: dict[Any, int], ddel: tuple[Any, ...]) -> None:  # fmt: skip
    change(repo, "master", {0: 0, 1: 1, 2: 2, 3: 3}, msg="base")
    repo.create_branch("dev")
    change(repo, "dev", dev, ddel, msg="dev")
    change(repo, "master", master, mdel, msg="master")


CASES = {
    # name: (master sets, master dels, dev sets, dev dels, kind, key, ours, theirs)
    "t1 added in both, different content": ({9: 1}, (), {9: 2}, (), "t1", 9, 1, 2),
    "t21 removed in master, mutated in dev": ({}, (1,), {1: 5}, (), "t21", 1, None, 5),
    "t22 removed in dev, mutated in master": ({1: 5}, (), {}, (1,), "t22", 1, 5, None),
    "t3 mutated differently in both": ({2: 7}, (), {2: 8}, (), "t3", 2, 7, 8),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_conflict_kind_changes_nothing_and_strategies_pick_a_side(
    case: str, repo_location: tuple[str, dict[str, Any]]
) -> None:
    msets, mdels, dsets, ddels, kind, key, ours, theirs = CASES[case]
    repo = new_repo(repo_location)
    _diverge(repo, msets, mdels, {**dsets, 3: 33}, ddels)  # plus a clean change on dev
    before = head(repo, "master")
    expected_conflict = repo.checkout().diff.branch("dev").conflict
    with pytest.raises(MergeConflictError) as err:
        repo.merge("m", "master", "dev")
    assert isinstance(err.value, ValueError)  # as Hangar raises
    assert f"x[{key!r}]" in str(err.value)
    assert f"({kind})" in str(err.value)
    got = err.value.conflicts
    assert getattr(got, kind).samples == fk(key)
    assert got.conflict is True
    assert got == expected_conflict  # what co.diff predicted
    assert head(repo, "master") == before  # nothing changed

    for strategy, want in (("ours", ours), ("theirs", theirs)):
        repo.create_branch(f"try-{strategy}", base_commit=before)
        repo.merge("resolved", f"try-{strategy}", "dev", strategy=strategy)
        out = contents(repo, f"try-{strategy}")
        assert out.get(key) == want, strategy
        assert out[3] == 33  # the change that did not conflict is merged either way


def test_conflict_lists_every_key_and_column() -> None:
    repo = new_repo()
    change(repo, "master", {i: i for i in range(20)}, msg="base")
    repo.create_branch("dev")
    change(repo, "dev", {i: 100 + i for i in range(10)}, msg="dev")
    change(repo, "master", {i: 200 + i for i in range(5, 15)}, msg="master")
    with pytest.raises(MergeConflictError) as err:
        repo.merge("m", "master", "dev")
    text = str(err.value)
    for k in range(5, 10):
        assert f"x[{k}]" in text
    assert "x[4]" not in text
    assert "x[10]" not in text
    assert err.value.conflicts.t3.samples == fk(5, 6, 7, 8, 9)


def test_schema_conflicts(repo_location: tuple[str, dict[str, Any]]) -> None:
    repo = new_repo(repo_location)
    change(repo, "master", {0: 0, 1: 1}, msg="base")
    repo.create_branch("dev")
    # dev re-creates x with another shape; master changes a sample of x
    co = repo.checkout(write=True, branch="dev")
    co.columns.delete("x")
    co.add_ndarray_column("x", shape=(3,), dtype=np.int64)[0] = np.zeros(3, np.int64)
    co.add_str_column("both")["k"] = "dev"
    co.commit("dev schema")
    co.close()
    co = repo.checkout(write=True)
    co["x", 1] = v(11)
    co.add_bytes_column("both")["k"] = b"master"  # same name, other type
    co.commit("master schema")
    co.close()
    before = head(repo, "master")
    with pytest.raises(MergeConflictError, match="both, x") as err:
        repo.merge("m", "master", "dev")
    schema = err.value.conflicts.t3.schema
    assert set(schema) == {ColumnSchemaKey("both", "flat"), ColumnSchemaKey("x", "flat")}
    assert head(repo, "master") == before

    repo.merge("ours", "master", "dev", strategy="ours")
    r = repo.checkout()
    assert r["x"].shape == (2,)
    assert r["both", "k"] == b"master"
    repo.create_branch("t", base_commit=before)
    repo.merge("theirs", "t", "dev", strategy="theirs")
    r = repo.checkout(branch="t")
    assert r["x"].shape == (3,)
    assert sorted(r["x"].keys()) == [0]
    assert r["both", "k"] == "dev"


def test_same_change_on_both_sides_is_no_conflict() -> None:
    repo = new_repo()
    change(repo, "master", {0: 0, 1: 1}, msg="base")
    repo.create_branch("dev")
    change(repo, "dev", {1: 5, 2: 2}, dels=(0,), msg="dev")
    change(repo, "master", {1: 5, 2: 2, 3: 3}, dels=(0,), msg="master")
    repo.merge("m", "master", "dev")
    assert contents(repo) == {1: 5, 2: 2, 3: 3}


def test_bad_merge_requests() -> None:
    repo = new_repo()
    change(repo, "master", {0: 0})
    repo.create_branch("dev")
    with pytest.raises(RefNotFoundError):
        repo.merge("m", "master", "nope")
    with pytest.raises(RefNotFoundError):
        repo.merge("m", "nope", "dev")
    with pytest.raises(InvalidKeyError, match="strategy"):
        repo.merge("m", "master", "dev", strategy="mine")
    with pytest.raises(ValueError, match="message"):
        repo.merge("", "master", "dev")
    with pytest.raises(ValueError, match="branch name"):
        repo.merge("m", "master", "../dev")
    empty = new_repo()
    co = empty.checkout(write=True)
    co.close()
    with pytest.raises(EmptyHistoryError):
        empty.merge("m", "master", "master")


# ---------------------------------------------------------------------- cost
def test_merge_reads_no_chunk_and_only_differing_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "SEGMENT_ROWS", 16)
    counting = CountingStore(open_store(f"memory://merge-{uuid.uuid4().hex}"))
    repo = new_repo(counting)
    change(repo, "master", {i: i for i in range(400)}, msg="base")  # 25 segments
    repo.create_branch("dev")
    change(repo, "dev", {100: -1, 101: -1}, msg="dev")
    change(repo, "master", {300: -3}, msg="master")
    counting.reset()
    repo.merge("m", "master", "dev")
    assert counting.keys_of("get_range", prefix="chunks/") == []
    assert counting.keys_of("get", prefix="chunks/") == []
    assert counting.keys_of("put", prefix="chunks/") == []  # samples are never copied
    # ancestor and each side: the one segment that differs; master's segment of 100, 101
    assert len(counting.keys_of("get", prefix="manifests/")) <= 5
    assert len(counting.keys_of("put", prefix="manifests/")) == 1
    assert contents(repo)[100] == -1
    assert contents(repo)[300] == -3


# ------------------------------------------------- merges under a live writer
def test_commit_is_rebuilt_on_a_head_a_merge_moved(
    repo_location: tuple[str, dict[str, Any]],
) -> None:
    repo = new_repo(repo_location)
    change(repo, "master", {0: 0, 1: 1}, msg="base")
    repo.create_branch("dev")
    change(repo, "dev", {5: 5}, msg="dev")
    writer = repo.checkout(write=True)
    writer["x", 7] = v(7)  # staged before the merge, on the old head
    merged = repo.merge("merge while a writer is open", "master", "dev")
    assert merged == head(repo, "dev")  # a fast-forward under the writer
    cid = writer.commit("rebuilt on the merge")
    writer.close()
    assert repo._read_commit(cid).parents == (merged,)
    assert contents(repo) == {0: 0, 1: 1, 5: 5, 7: 7}


def test_a_with_block_commit_is_rebuilt_on_a_moved_head_and_held_columns_follow(
    repo_location: tuple[str, dict[str, Any]],
) -> None:
    """Samples staged by a with-block (arrays, not entries) are rebuilt on the merge like
    any others, and the column object held through it reads the new head."""
    repo = new_repo(repo_location)
    change(repo, "master", {0: 0, 1: 1}, msg="base")
    repo.create_branch("dev")
    change(repo, "dev", {5: 5}, msg="dev")
    writer = repo.checkout(write=True)
    col = writer["x"]
    with col:
        for k in (7, 8, 9):
            col[k] = v(k)
    merged = repo.merge("merge while a writer is open", "master", "dev")
    cid = writer.commit("rebuilt on the merge")
    assert repo._read_commit(cid).parents == (merged,)
    assert int(col[5][0]) == 5  # the held column is the rebuilt head's
    col[10] = v(10)
    writer.commit("more")
    writer.close()
    assert contents(repo) == {0: 0, 1: 1, 5: 5, 7: 7, 8: 8, 9: 9, 10: 10}


def test_commit_conflicting_with_a_merge_fails_and_keeps_the_staged_changes(
    repo_location: tuple[str, dict[str, Any]],
) -> None:
    repo = new_repo(repo_location)
    change(repo, "master", {0: 0, 1: 1}, msg="base")
    repo.create_branch("dev")
    change(repo, "dev", {1: 10}, msg="dev")
    writer = repo.checkout(write=True)
    writer["x", 1] = v(99)
    writer["x", 2] = v(2)
    merged = repo.merge("m", "master", "dev")
    with pytest.raises(MergeConflictError, match=r"x\[1\]") as err:
        writer.commit("conflicts with the merge")
    assert "x[2]" not in str(err.value)
    assert head(repo, "master") == merged
    assert writer.diff.status() == "DIRTY"
    assert int(writer["x", 1][0]) == 99  # still staged
    writer.reset_staging_area()
    assert writer.commit_hash == merged  # reset moves to the new head
    writer["x", 2] = v(2)
    cid = writer.commit("after reset")
    writer.close()
    assert repo._read_commit(cid).parents == (merged,)
    assert contents(repo) == {0: 0, 1: 10, 2: 2}


def test_staged_changes_of_a_closed_writer_are_rebuilt_on_the_merged_head() -> None:
    repo = new_repo()
    change(repo, "master", {0: 0}, msg="base")
    repo.create_branch("dev")
    change(repo, "dev", {1: 1}, msg="dev")
    change(repo, "master", {2: 2}, msg="master")
    co = repo.checkout(write=True)
    co["x", 3] = v(3)
    co.close()  # staged, not committed
    merged = repo.merge("m", "master", "dev")
    co = repo.checkout(write=True)
    assert int(co["x", 3][0]) == 3
    cid = co.commit("the staged change")
    co.close()
    assert repo._read_commit(cid).parents == (merged,)
    assert contents(repo) == {0: 0, 1: 1, 2: 2, 3: 3}


def test_writer_checkout_merge() -> None:
    repo = new_repo()
    change(repo, "master", {0: 0}, msg="base")
    repo.create_branch("dev")
    change(repo, "dev", {1: 1}, msg="dev")
    change(repo, "master", {2: 2}, msg="master")
    co = repo.checkout(write=True)
    co["x", 3] = v(3)
    with pytest.raises(RuntimeError, match="staging area must exist in a clean state"):
        co.merge("m", "dev")
    co.reset_staging_area()
    merged = co.merge("m", "dev")
    assert co.commit_hash == merged
    assert sorted(co["x"].keys()) == [0, 1, 2]
    co["x", 3] = v(3)
    cid = co.commit("after merge")
    assert repo._read_commit(cid).parents == (merged,)
    repo.force_release_writer_lock()
    with pytest.raises(LeaseLostError):
        co.merge("m", "dev")
    co.close()


def test_merge_base_is_the_newest_common_ancestor_not_the_closest_by_steps() -> None:
    # dev merged master's head long ago through a long chain, and an old commit directly:
    # master's head is in dev's history, so merging dev into master is a fast-forward
    records = {
        "m": (("x",), 5), "x": ((), 1),
        "d": (("c1", "x"), 9), "c1": (("c2",), 8), "c2": (("c3",), 7), "c3": (("m",), 6),
    }  # fmt: skip

    class Rec:
        def __init__(self, parents: tuple[str, ...], t: int) -> None:
            self.parents, self.time = parents, f"2026-01-01T00:00:{t:02d}Z"

    def read(c: str) -> Any:
        return Rec(*records[c])

    assert common_ancestor("m", "d", read) == "m"
    assert common_ancestor("d", "m", read) == "m"
    assert common_ancestor("c2", "x", read) == "x"


def test_re_adding_identical_content_stores_no_chunk_bytes() -> None:
    counting = CountingStore(open_store(f"memory://dedup-{uuid.uuid4().hex}"))
    repo = new_repo(counting)
    data = np.arange(20_000 * 16, dtype=np.uint8).reshape(20_000, 16)

    def write_all(msg: str) -> str:
        co = repo.checkout(write=True)
        col = co.columns.get("d") or co.add_ndarray_column("d", prototype=data[0])
        with col:
            for i in range(len(data)):
                col[i] = data[i]
        cid = co.commit(msg)
        co.close()
        return cid

    write_all("first")
    chunks = set(counting.keys_of("put", prefix="chunks/"))
    assert chunks
    counting.reset()
    second = write_all("the same samples again")
    assert counting.keys_of("put", prefix="chunks/") == []  # every chunk was there already
    assert repo._read_commit(second).columns["d"].samples == len(data)
    assert np.array_equal(repo.checkout()["d", 12_345], data[12_345])
