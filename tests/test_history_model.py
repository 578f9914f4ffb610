"""A Hypothesis state machine over branches, commits, merges and leases (issue 5).

The model is plain Python: per branch a head commit, per commit its content
(``{key: value}`` of one column) and parents, per branch a staging journal
(base commit, staged content, whether anything was staged) and at most one
live writer. Each step does the same thing to a real repository and checks
that they agree: contents of every branch head and open writer, the errors
raised (leases held or lost, merge conflicts, nothing to commit), and that
a merge or a rebuilt commit computes the same three-way result as the model.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hangar import Repository
from hangar.ancestry import common_ancestor
from hangar.exceptions import (
    HangarError,
    LeaseLostError,
    LockHeldError,
    MergeConflictError,
    NameTakenError,
)

BRANCHES = ["master", "a", "b", "c"]
KEYS = st.integers(0, 5)
VALUES = st.integers(0, 3)
STRATEGIES = st.sampled_from([None, None, "ours", "theirs"])

Content = dict[int, int]


def three_way(anc: Content, ours: Content, theirs: Content,
              strategy: str | None) -> tuple[Content, set[int]]:  # fmt: skip
    """Hangar's merge on dicts: theirs' changes onto ours, and the keys that conflict."""
    out = dict(ours)
    conflicts = set()
    for k in set(anc) | set(ours) | set(theirs):
        a, o, t = anc.get(k), ours.get(k), theirs.get(k)
        if t == a or o == t:
            continue
        if o != a:
            conflicts.add(k)
            if strategy != "theirs":
                continue
        if t is None:
            out.pop(k, None)
        else:
            out[k] = t
    return out, conflicts


class Journal:
    """A branch's staging area: what a writer (open or not) has staged."""

    def __init__(self, base: str | None, content: Content) -> None:
        self.base = base
        self.staged = dict(content)
        self.dirty = False


class HistoryMachine(RuleBasedStateMachine):
    location: Any = None

    def __init__(self) -> None:
        super().__init__()
        url, opts = self.location()
        self.repo = Repository(url, exists=False, storage_options=opts)
        self.repo.init("Model", "model@example.com", remove_old=True)
        co = self.repo.checkout(write=True)
        co.add_ndarray_column("x", shape=(1,), dtype=np.int64)[0] = np.zeros(1, np.int64)
        root = co.commit("root")
        co.close()
        self.content: dict[str, Content] = {root: {0: 0}}
        self.parents: dict[str, tuple[str, ...]] = {root: ()}
        self.heads: dict[str, str] = {"master": root}
        for name in BRANCHES[1:3]:
            self.heads[name] = self.repo.create_branch(name).digest
        self.journals: dict[str, Journal] = {}
        self.writers: dict[str, Any] = {}  # branch -> live writer checkout
        self.dead: list[Any] = []  # writers whose lease was force-released

    # ------------------------------------------------------------ helpers
    def journal(self, branch: str) -> Journal:
        j = self.journals.get(branch)
        stale = j is not None and not j.dirty and j.base != self.heads[branch]
        if j is None or (stale and branch not in self.writers):
            # a writer starts at the head unless something is staged; an open one
            # keeps the commit it started from until it commits or resets
            head = self.heads[branch]
            j = self.journals[branch] = Journal(head, self.content[head])
        return j

    def ancestors(self, cid: str) -> set[str]:
        seen, todo = set(), [cid]
        while todo:
            c = todo.pop()
            if c not in seen:
                seen.add(c)
                todo.extend(self.parents[c])
        return seen

    def record(self, cid: str, content: Content, parents: tuple[str, ...]) -> None:
        assert self.repo._read_commit(cid).parents == parents
        self.content[cid] = content
        self.parents[cid] = parents

    # -------------------------------------------------------------- rules
    @rule(name=st.sampled_from(BRANCHES[1:]), start=st.sampled_from(BRANCHES))
    def create_branch(self, name: str, start: str) -> None:
        if start not in self.heads:
            return
        if name in self.heads:
            with pytest.raises(NameTakenError):
                self.repo.create_branch(name, base_commit=self.heads[start])
            return
        self.repo.create_branch(name, base_commit=self.heads[start])
        self.heads[name] = self.heads[start]

    @rule(
        branch=st.sampled_from(BRANCHES),
        sets=st.dictionaries(KEYS, VALUES, max_size=3),
        dels=st.sets(KEYS, max_size=2),
    )
    def commit_on(self, branch: str, sets: Content, dels: set[int]) -> None:
        """A whole writer session: open, change, commit, close (if no writer holds the branch)."""
        if branch not in self.heads or branch in self.writers:
            return
        self.open_writer(branch)
        for k, val in sets.items():
            self._set(branch, k, val)
        for k in dels - set(sets):
            if k in self.journal(branch).staged:
                self._delete(branch, k)
        self._commit(branch)
        self.close_writer_of(branch)

    @rule(branch=st.sampled_from(BRANCHES), dev=st.sampled_from(BRANCHES),
          sets=st.dictionaries(KEYS, VALUES, min_size=1, max_size=2))  # fmt: skip
    def commit_across_a_merge(self, branch: str, dev: str, sets: Content) -> None:
        """Stage on a branch, merge another branch into it meanwhile, then commit."""
        if branch not in self.heads or dev not in self.heads or branch in self.writers:
            return
        self.open_writer(branch)
        for k, val in sets.items():
            self._set(branch, k, val)
        self.merge(branch, dev, None)
        self._commit(branch)
        self.close_writer_of(branch)

    @rule(branch=st.sampled_from(BRANCHES))
    def open_writer(self, branch: str) -> None:
        if branch not in self.heads:
            return
        if branch in self.writers:
            with pytest.raises(LockHeldError):
                self.repo.checkout(write=True, branch=branch)
            return
        self.journal(branch)  # a clean journal restarts at the head
        self.writers[branch] = self.repo.checkout(write=True, branch=branch)

    @precondition(lambda self: self.writers)
    @rule(data=st.data(), key=KEYS, value=VALUES)
    def stage_set(self, data: st.DataObject, key: int, value: int) -> None:
        self._set(data.draw(st.sampled_from(sorted(self.writers))), key, value)

    def _set(self, branch: str, key: int, value: int) -> None:
        self.writers[branch]["x", key] = np.full(1, value, np.int64)
        j = self.journal(branch)
        j.staged[key] = value
        j.dirty = True

    def _delete(self, branch: str, key: int) -> None:
        del self.writers[branch]["x", key]
        j = self.journal(branch)
        del j.staged[key]
        j.dirty = True

    @precondition(lambda self: self.writers)
    @rule(data=st.data(), key=KEYS)
    def stage_delete(self, data: st.DataObject, key: int) -> None:
        branch = data.draw(st.sampled_from(sorted(self.writers)))
        j = self.journal(branch)
        if key not in j.staged:
            with pytest.raises(KeyError):
                del self.writers[branch]["x", key]
            return
        self._delete(branch, key)

    @precondition(lambda self: self.writers)
    @rule(data=st.data())
    def commit(self, data: st.DataObject) -> None:
        self._commit(data.draw(st.sampled_from(sorted(self.writers))))

    def _commit(self, branch: str) -> None:
        co, j = self.writers[branch], self.journal(branch)
        head = self.heads[branch]
        if not j.dirty:
            with pytest.raises(HangarError, match="No changes"):
                co.commit("nothing")
            return
        if j.base == head:
            cid = co.commit("commit")
            self.record(cid, dict(j.staged), (head,))
        else:  # a merge moved the branch: the commit is rebuilt on its head
            assert j.base is not None
            result, conflicts = three_way(self.content[j.base], self.content[head], j.staged, None)
            if conflicts:
                event("commit: rebuild conflicts")
                with pytest.raises(MergeConflictError) as err:
                    co.commit("commit")
                for k in conflicts:
                    assert f"x[{k}]" in str(err.value)
                return
            event("commit: rebuilt on a moved head")
            cid = co.commit("commit")
            if result == self.content[head]:
                assert cid == head  # nothing to add on top of the head
            else:
                self.record(cid, result, (head,))
        self.heads[branch] = cid
        self.journals[branch] = Journal(cid, self.content[cid])

    @precondition(lambda self: self.writers)
    @rule(data=st.data())
    def reset(self, data: st.DataObject) -> None:
        branch = data.draw(st.sampled_from(sorted(self.writers)))
        assert self.writers[branch].reset_staging_area() == self.heads[branch]
        head = self.heads[branch]
        self.journals[branch] = Journal(head, self.content[head])

    @precondition(lambda self: self.writers)
    @rule(data=st.data())
    def close_writer(self, data: st.DataObject) -> None:
        self.close_writer_of(data.draw(st.sampled_from(sorted(self.writers))))

    def close_writer_of(self, branch: str) -> None:
        self.writers.pop(branch).close()  # staged changes stay in the journal

    @precondition(lambda self: self.writers)
    @rule(data=st.data())
    def force_release(self, data: st.DataObject) -> None:
        branch = data.draw(st.sampled_from(sorted(self.writers)))
        assert self.repo.force_release_writer_lock(branch) is True
        self.dead.append(self.writers.pop(branch))

    @precondition(lambda self: self.dead)
    @rule(data=st.data(), key=KEYS)
    def dead_writer_is_fenced(self, data: st.DataObject, key: int) -> None:
        co = data.draw(st.sampled_from(self.dead))
        with pytest.raises(LeaseLostError):
            co["x", key] = np.full(1, 9, np.int64)
        with pytest.raises(LeaseLostError):
            co.commit("fenced")

    @rule(master=st.sampled_from(BRANCHES), dev=st.sampled_from(BRANCHES), strategy=STRATEGIES)
    def merge(self, master: str, dev: str, strategy: str | None) -> None:
        if master not in self.heads or dev not in self.heads:
            return
        m, d = self.heads[master], self.heads[dev]
        if d in self.ancestors(m):
            assert self.repo.merge("m", master, dev, strategy=strategy) == m
            return
        if m in self.ancestors(d):
            event("merge: fast-forward")
            assert self.repo.merge("m", master, dev, strategy=strategy) == d
            self.heads[master] = d
            return
        anc = common_ancestor(m, d, self.repo._read_commit)
        assert anc is not None
        assert anc in self.ancestors(m) & self.ancestors(d)
        result, conflicts = three_way(self.content[anc], self.content[m], self.content[d],
                                      strategy)  # fmt: skip
        event(f"merge: three-way, {'conflicts' if conflicts else 'clean'}, strategy {strategy}")
        if conflicts and strategy is None:
            with pytest.raises(MergeConflictError) as err:
                self.repo.merge("m", master, dev)
            c = err.value.conflicts
            found = c.t1.samples + c.t21.samples + c.t22.samples + c.t3.samples
            assert {k.sample for k in found} == conflicts
            assert self.repo._branch_head(master) == m  # nothing changed
            return
        cid = self.repo.merge("m", master, dev, strategy=strategy)
        self.record(cid, result, (m, d))
        self.heads[master] = cid

    # --------------------------------------------------------- invariants
    @invariant()
    def branches_agree(self) -> None:
        assert self.repo.list_branches() == sorted(self.heads)
        for branch, head in self.heads.items():
            assert self.repo._branch_head(branch) == head

    @invariant()
    def writers_read_what_they_staged(self) -> None:
        for branch, co in self.writers.items():
            got = {k: int(a[0]) for k, a in co["x"].items()}
            assert got == self.journal(branch).staged, branch

    def teardown(self) -> None:
        for co in [*self.writers.values(), *self.dead]:
            co.close()
        for cid, content in self.content.items():  # every commit ever made, as it was
            got = {k: int(a[0]) for k, a in self.repo.checkout(commit=cid)["x"].items()}
            assert got == content, cid


def _run(location: Any, examples: int, steps: int = 40) -> None:
    HistoryMachine.location = staticmethod(location)
    machine = HistoryMachine.TestCase
    machine.settings = settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    machine().runTest()


def test_history_state_machine_in_memory() -> None:
    examples = int(os.environ.get("MODEL_EXAMPLES", "150"))
    _run(lambda: (f"memory://model-{uuid.uuid4().hex}", {}), examples)


def test_history_state_machine_on_local_disk(tmp_path: Path) -> None:
    _run(lambda: (str(tmp_path / uuid.uuid4().hex), {}), 30)


def test_history_state_machine_on_the_s3_server(seaweedfs: Any) -> None:
    _run(lambda: (f"s3://{seaweedfs.create_bucket()}/repo", seaweedfs.storage_options()), 4, 25)
