"""Branches, tags and time travel (issue 5), on local disk, memory and the S3 server."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hangar import Repository
from hangar.exceptions import (
    EmptyHistoryError,
    LockHeldError,
    NameTakenError,
    RefNotFoundError,
    UnmergedBranchError,
)
from history_helpers import new_repo


def commit_values(repo: Repository, branch: str, values: dict[int, int], msg: str) -> str:
    co = repo.checkout(write=True, branch=branch)
    try:
        col = co.columns.get("x") or co.add_ndarray_column("x", shape=(2,), dtype=np.int64)
        for k, v in values.items():
            col[k] = np.full(2, v, np.int64)
        return co.commit(msg)
    finally:
        co.close()


def test_branches_tags_and_time_travel(repo_location: tuple[str, dict[str, Any]]) -> None:
    repo = new_repo(repo_location)
    with pytest.raises(EmptyHistoryError):
        repo.create_branch("dev")  # nothing to start from yet
    first = commit_values(repo, "master", {0: 0, 1: 1}, "first")
    head = repo.create_branch("dev")
    assert head == ("dev", first)
    assert head.name == "dev"
    assert head.digest == first
    assert repo.list_branches() == ["dev", "master"]
    with pytest.raises(ValueError, match="already exists"):
        repo.create_branch("dev")
    with pytest.raises(ValueError, match="invalid branch name"):
        repo.create_branch("no/slash")
    with pytest.raises(RefNotFoundError):
        repo.create_branch("other", base_commit="a=" + "0" * 40)

    on_dev = commit_values(repo, "dev", {1: 10, 2: 20}, "dev work")
    on_master = commit_values(repo, "master", {0: 100}, "master work")
    # each branch reads its own history; old commits stay readable
    assert int(repo.checkout(branch="dev")["x", 1][0]) == 10
    assert 2 not in repo.checkout(branch="master")["x"]
    old = repo.checkout(commit=first)
    assert sorted(old["x"].keys()) == [0, 1]
    assert int(old["x", 0][0]) == 0
    assert int(repo.checkout(commit=on_master)["x", 0][0]) == 100

    # tags: immutable names for commits
    tag = repo.create_tag("v1", first)
    assert tag == ("v1", first)
    repo.create_tag("dev-tip", on_dev)
    assert repo.list_tags() == ["dev-tip", "v1"]
    with pytest.raises(NameTakenError, match="tags never change"):
        repo.create_tag("v1", on_master)
    assert repo.checkout(tag="v1").commit_hash == first
    assert repo.checkout(commit="dev-tip").commit_hash == on_dev
    with pytest.raises(RefNotFoundError):
        repo.checkout(tag="nope")
    with pytest.raises(KeyError):
        repo.checkout(branch="nope")

    log = repo.log(branch="dev", return_contents=True)
    assert log is not None
    assert log["order"] == [on_dev, first]
    assert log["ancestors"][on_dev] == [first]
    assert log["specs"][on_dev]["commit_message"] == "dev work"

    # removal: refused while unmerged, then forced; a merged branch goes freely
    with pytest.raises(UnmergedBranchError, match="not fully merged"):
        repo.remove_branch("dev")
    assert "dev" in repo.list_branches()
    assert repo.remove_branch("dev", force_delete=True) == ("dev", on_dev)
    assert repo.list_branches() == ["master"]
    assert int(repo.checkout(commit=on_dev)["x", 2][0]) == 20  # commits stay
    repo.create_branch("old-master", base_commit=first)
    assert repo.remove_branch("old-master") == ("old-master", first)  # in master's history
    with pytest.raises(PermissionError, match="only branch"):
        repo.remove_branch("master")


def test_two_branches_are_written_at_once(repo_location: tuple[str, dict[str, Any]]) -> None:
    repo = new_repo(repo_location)
    commit_values(repo, "master", {0: 0}, "base")
    repo.create_branch("dev")
    a = repo.checkout(write=True, branch="master")
    b = repo.checkout(write=True, branch="dev")  # its own lease: not refused
    with pytest.raises(LockHeldError):
        repo.checkout(write=True, branch="dev")
    with pytest.raises(PermissionError, match="holds branch 'dev'"):
        repo.remove_branch("dev", force_delete=True)
    a["x", 1] = np.full(2, 1, np.int64)
    b["x", 2] = np.full(2, 2, np.int64)
    ca = a.commit("on master")
    cb = b.commit("on dev")
    a.close()
    b.close()
    assert sorted(repo.checkout(commit=ca)["x"].keys()) == [0, 1]
    assert sorted(repo.checkout(commit=cb)["x"].keys()) == [0, 2]
    assert repo.remove_branch("dev", force_delete=True) == ("dev", cb)


def test_removed_branch_forgets_its_staged_changes(
    repo_location: tuple[str, dict[str, Any]],
) -> None:
    repo = new_repo(repo_location)
    base = commit_values(repo, "master", {0: 0}, "base")
    repo.create_branch("tmp")
    co = repo.checkout(write=True, branch="tmp")
    co["x", 5] = np.full(2, 5, np.int64)  # staged, never committed
    co.close()
    repo.remove_branch("tmp")
    repo.create_branch("tmp", base_commit=base)
    co = repo.checkout(write=True, branch="tmp")
    assert 5 not in co["x"]
    co.close()
