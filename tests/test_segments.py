"""Columns spread over many manifest segments: lazy loading, incremental commits.

Segments are made tiny here (a few rows) so that small tests cross many
segment boundaries; the same code runs with the real size (65,536 rows).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import hangar.columns._engine as engine_module
from hangar import Repository
from hangar.store import open_store
from hangar.testing.counting import CountingStore


@pytest.fixture(autouse=True)
def tiny_segments(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(engine_module, "SEGMENT_ROWS", 4)
    return


def new_repo(store: Any = None) -> Repository:
    repo = Repository(store or f"memory://seg-{uuid.uuid4().hex}", exists=False)
    repo.init("t", "t@example.com", remove_old=True)
    return repo


def value(v: int) -> np.ndarray:
    return np.full(2, v, np.int32)


keys = st.one_of(st.integers(0, 30), st.sampled_from(["a", "b", "k1", "k2", "zz"]))
ops = st.lists(
    st.one_of(
        st.tuples(st.just("set"), keys, st.integers(0, 1000)),
        st.tuples(st.just("del"), keys, st.just(0)),
        st.tuples(
            st.just("block"),
            st.lists(st.tuples(keys, st.integers(0, 1000)), max_size=12),
            st.just(0),
        ),
        st.tuples(st.just("blockdel"), keys, st.integers(0, 1000)),
        st.tuples(st.just("commit"), st.just(0), st.just(0)),
        st.tuples(st.just("reopen"), st.just(0), st.just(0)),
    ),
    max_size=25,
)


def check(col: Any, model: dict[Any, int], nested: bool, lookups_only: bool = False) -> None:
    """``col`` holds ``model``; key lookups come first, so they run on segments not loaded."""
    for k, v in model.items():
        got = col[k]["s"] if nested else col[k]
        assert np.array_equal(got, value(v)), (k, got, v)
    for k in (31, "zz", "k1"):
        assert (k in col) == (k in model)
    assert len(col) == len(model)
    if lookups_only:
        return
    assert sorted(col.keys(), key=str) == sorted(model, key=str)
    if not nested:
        assert {k: int(a[0]) for k, a in col.items()} == model


@settings(max_examples=40, deadline=None)
@given(ops=ops, nested=st.booleans())
# a rewritten segment that splits into a new part and one with the old digest (found
# by this test: the old, changed bucket was reused for the old digest after commit)
@example(
    ops=[("set", "a", 0), ("commit", 0, 0), ("set", 0, 0),
         ("block", [(1, 0), (2, 0), (3, 0)], 0), ("commit", 0, 0)],
    nested=False,
)  # fmt: skip
def test_many_segments_behave_like_a_dict(ops: list[tuple[Any, Any, Any]], nested: bool) -> None:
    repo = new_repo()
    co = repo.checkout(write=True)
    co.add_ndarray_column("c", prototype=value(0), contains_subsamples=nested)
    model: dict[Any, int] = {}

    def put(col: Any, k: Any, v: int) -> None:
        col[k] = {"s": value(v)} if nested else value(v)

    for kind, a, b in ops:
        col = co["c"]
        if kind == "set":
            put(col, a, b)
            model[a] = b
        elif kind == "del":
            if a in model:
                del col[a]
                del model[a]
        elif kind == "block":
            with col:
                for k, v in a:
                    put(col, k, v)
                    model[k] = v
        elif kind == "blockdel":  # write, then delete, inside one block
            with col:
                put(col, a, b)
                del col[a]
            model.pop(a, None)
        elif kind == "commit":
            if co._staging.has_changes:
                co.commit("step")
        else:  # the next step changes segments that only lookups have read
            co.close()
            co = repo.checkout(write=True)
            check(co["c"], model, nested, lookups_only=True)
            continue
        check(co["c"], model, nested)
    if co._staging.has_changes:
        co.commit("end")
    co.close()
    check(repo.checkout()["c"], model, nested)


def counted_repo(samples: int) -> tuple[CountingStore, Repository]:
    """A repository on a counting store whose column "c" holds keys 0..samples-1, committed."""
    counting = CountingStore(open_store(f"memory://seg-{uuid.uuid4().hex}"))
    repo = new_repo(counting)
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("c", prototype=value(0))
    with col:
        for i in range(samples):
            col[i] = value(i)
    co.commit(f"{samples} samples")
    assert len(co._staging.columns["c"].base_segments) == samples // 4
    co.close()
    return counting, repo


def test_a_small_change_rewrites_one_segment_and_reads_one() -> None:
    counting, repo = counted_repo(200)  # 50 segments

    co = repo.checkout(write=True)
    counting.reset()
    col = co["c"]
    for i in (101, 102, 103):
        col[i] = value(-i)
    del col[100]
    assert len(col) == 199
    co.commit("4 keys in one segment")
    manifest_puts = counting.keys_of("put", prefix="manifests/")
    manifest_gets = counting.keys_of("get", prefix="manifests/")
    assert len(manifest_puts) == 1  # the one segment that changed
    assert len(manifest_gets) == 1  # and only it was read
    co.close()

    counting.reset()
    r = repo.checkout()
    assert np.array_equal(r["c", 150], value(150))
    assert len(counting.keys_of("get", prefix="manifests/")) == 1
    index = r["c"]._engine.index
    assert list(index.loaded()) == []  # a lookup decodes no segment into a bucket
    assert len(r["c"]) == 199
    assert np.array_equal(r["c", 102], value(-102))
    assert 100 not in r["c"]


def test_lookups_then_changes_and_scans_read_each_segment_once() -> None:
    counting, repo = counted_repo(40)  # 10 segments

    co = repo.checkout(write=True)
    col = co["c"]
    counting.reset()
    assert [int(col[i][0]) for i in (1, 5, 9)] == [1, 5, 9]  # segments 0, 1 and 2, viewed
    assert col.get(41) is None
    assert 41 not in col
    assert 6 in col
    assert [i for i, _ in col._engine.index.loaded()] == []  # looked up, not decoded
    col[5] = value(-5)  # segment 1 becomes a bucket, from the bytes its view read
    col[6] = value(-6)
    assert [int(col[i][0]) for i in (4, 5, 6)] == [4, -5, -6]
    assert len(col) == 40
    assert sorted(col.keys()) == list(range(40))
    want = {i: -i if i in (5, 6) else i for i in range(40)}
    assert {i: int(a[0]) for i, a in col.items()} == want
    gets = counting.keys_of("get", prefix="manifests/")
    assert len(gets) == 10 == len(set(gets)), "a segment was read twice"
    co.commit("2 changed")
    co.close()

    r = repo.checkout()["c"]
    counting.reset()
    assert [int(r[i][0]) for i in (0, 6, 39)] == [0, -6, 39]
    assert {i: int(a[0]) for i, a in r.items()}[6] == -6  # a scan reuses what lookups read
    gets = counting.keys_of("get", prefix="manifests/")
    assert len(gets) == 10 == len(set(gets)), "a segment was read twice"
