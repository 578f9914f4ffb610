"""Diffs (issue 5): Hangar's result structure, conflicts, staged changes, and their cost."""

from __future__ import annotations

import uuid

import pytest

import hangar.columns._engine as engine_module
from hangar.diff import ColumnSchemaKey, FlatColumnDataKey, NestedColumnDataKey
from hangar.store import open_store
from hangar.testing.counting import CountingStore
from history_helpers import change, new_repo, v


def fk(*keys: int) -> tuple[FlatColumnDataKey, ...]:
    return tuple(FlatColumnDataKey("x", k) for k in keys)


def test_fast_forward_diff_lists_what_dev_changed() -> None:
    repo = new_repo()
    change(repo, "master", {0: 0, 1: 1, 3: 3})
    repo.create_branch("dev")
    dev = change(repo, "dev", {1: 10, 2: 2}, dels=(0,))
    co = repo.checkout(branch="master")
    for out in (co.diff.branch("dev"), co.diff.commit(dev)):
        assert out.diff.added.samples == fk(2)
        assert out.diff.deleted.samples == fk(0)
        assert out.diff.mutated.samples == fk(1)
        assert out.diff.added.schema == {}
        assert out.conflict.conflict is False
    same = co.diff.commit(co.commit_hash)
    assert same.diff.added.samples == same.diff.deleted.samples == same.diff.mutated.samples == ()


def test_repository_diff_takes_branches_commits_and_tags() -> None:
    repo = new_repo()
    base = change(repo, "master", {0: 0, 1: 1, 3: 3})
    repo.create_branch("dev")
    repo.create_tag("base", base)
    dev = change(repo, "dev", {1: 10, 2: 2}, dels=(0,))
    for master_side, dev_side in (("master", "dev"), (base, dev), ("base", "dev")):
        out = repo.diff(master_side, dev_side)
        assert out.diff.added.samples == fk(2)
        assert out.diff.deleted.samples == fk(0)
        assert out.diff.mutated.samples == fk(1)
        assert out.conflict.conflict is False
    # not a fast-forward the other way: as Hangar, the changes from master's head to dev's
    back = repo.diff("dev", "master")
    assert back.diff.added.samples == fk(2)
    assert back.diff.deleted.samples == fk(0)
    assert back.conflict.conflict is False
    for bad in ("nope", "a=" + "0" * 40, ""):
        with pytest.raises(ValueError, match=r"dev|nope|a=0"):
            repo.diff("master", bad)
        with pytest.raises(KeyError if bad else ValueError):
            repo.diff(bad, "dev")


def test_three_way_conflicts_of_each_kind() -> None:
    repo = new_repo()
    change(repo, "master", {1: 1, 2: 2, 3: 3, 4: 4})
    repo.create_branch("dev")
    change(repo, "master", {5: 50, 1: 11, 3: 30, 4: 44}, dels=(2,))
    change(repo, "dev", {5: 51, 2: 22, 3: 31, 4: 44, 6: 6}, dels=(1,))
    out = repo.checkout(branch="master").diff.branch("dev")
    c = out.conflict
    assert c.conflict is True
    assert c.t1.samples == fk(5)  # added in both, differently
    assert c.t21.samples == fk(2)  # removed in master, mutated in dev
    assert c.t22.samples == fk(1)  # removed in dev, mutated in master
    assert c.t3.samples == fk(3)  # mutated in both, differently (4: the same change)
    # as Hangar: the diff is from dev to master
    assert out.diff.added.samples == fk(1)
    assert out.diff.deleted.samples == fk(2, 6)
    assert set(out.diff.mutated.samples) == set(fk(3, 5))


def test_schema_changes_and_nested_keys() -> None:
    repo = new_repo()
    change(repo, "master", {0: 0})
    repo.create_branch("dev")
    co = repo.checkout(write=True, branch="dev")
    nest = co.add_str_column("notes", contains_subsamples=True)
    nest["a"] = {"s1": "x", "s2": "y"}
    co.columns.delete("x")
    dev = co.commit("schemas")
    co.close()
    out = repo.checkout(branch="master").diff.commit(dev)
    assert list(out.diff.added.schema) == [ColumnSchemaKey("notes", "nested")]
    assert list(out.diff.deleted.schema) == [ColumnSchemaKey("x", "flat")]
    assert out.diff.added.samples == (NestedColumnDataKey("notes", "a", "s1"),
                                      NestedColumnDataKey("notes", "a", "s2"))  # fmt: skip
    assert out.diff.deleted.samples == fk(0)


def test_staged_diff_and_status() -> None:
    repo = new_repo()
    change(repo, "master", {0: 0, 1: 1, 2: 2})
    co = repo.checkout(write=True)
    assert co.diff.status() == "CLEAN"
    col = co["x"]
    col[0] = v(100)
    col[1] = v(1)  # same content: no change
    del col[2]
    with col:
        col[7] = v(7)  # still buffered in the block
        staged = co.diff.staged()
    assert staged.diff.added.samples == fk(7)
    assert staged.diff.mutated.samples == fk(0)
    assert staged.diff.deleted.samples == fk(2)
    assert co.diff.status() == "DIRTY"
    co.add_bytes_column("raw")["k"] = b"data"
    staged = co.diff.staged()
    assert list(staged.diff.added.schema) == [ColumnSchemaKey("raw", "flat")]
    assert FlatColumnDataKey("raw", "k") in staged.diff.added.samples
    co.commit("all")
    assert co.diff.status() == "CLEAN"
    assert co.diff.staged().diff.added.samples == ()
    co.close()


def test_diff_reads_only_differing_segments_and_no_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "SEGMENT_ROWS", 16)
    counting = CountingStore(open_store(f"memory://diff-{uuid.uuid4().hex}"))
    repo = new_repo(counting)
    change(repo, "master", {i: i for i in range(400)})  # 25 segments
    repo.create_branch("dev")
    dev = change(repo, "dev", {100: -1, 101: -1, 102: -1})
    co = repo.checkout(branch="master")
    counting.reset()
    out = co.diff.commit(dev)
    assert out.diff.mutated.samples == fk(100, 101, 102)
    assert counting.keys_of("get_range", prefix="chunks/") == []
    assert counting.keys_of("get", prefix="chunks/") == []
    assert len(counting.keys_of("get", prefix="manifests/")) == 2  # the segment, each side
