"""With-blocks larger than their buffer: pages packed before the block ends.

Pages are made tiny here (3 rows) and the budget one or two pages, so pages
are packed while later ones are written; the repeat finder keeps two pages.
The same code runs with one chunk per page and a 128 MiB budget.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hangar.columns._dedup as dedup_module
import hangar.columns._rows as rows_module
import hangar.staging as staging_module
from hangar import Repository
from hangar.columns._table import is_packed
from hangar.exceptions import HangarError
from hangar.store import open_store
from hangar.testing.counting import CountingStore

PAGE_ROWS = 3
SAMPLE = 160  # bytes: >= 128, so repeats are looked for


@pytest.fixture(autouse=True, params=[1, 2], ids=["hold-1-page", "hold-2-pages"])
def tiny_pages(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[None]:
    """Pages of 3 rows; a block holds 1 or 2 pages before it packs the oldest."""
    monkeypatch.setattr(staging_module, "uniform_layout", lambda *a: (PAGE_ROWS, PAGE_ROWS))
    monkeypatch.setattr(rows_module, "SPILL_BYTES", request.param * PAGE_ROWS * SAMPLE)
    monkeypatch.setattr(dedup_module, "DEDUP_WINDOW_BYTES", 2 * PAGE_ROWS * SAMPLE)
    return


class _SlowPuts(CountingStore):
    """Puts take a round trip's time, so a read that does not wait for them misses."""

    def _put(self, key: str, data: Any) -> None:
        time.sleep(0.002)
        super()._put(key, data)


@pytest.fixture(params=[False, True], ids=["in-line-writes", "writes-in-flight"])
def new_repo(request: pytest.FixtureRequest) -> Callable[[], Repository]:
    """Memory repositories; with ``writes-in-flight`` the store says each request is a
    round trip, so chunks and segments are written on the upload threads (as on S3)."""

    def make() -> Repository:
        inner = open_store(f"memory://spill-{uuid.uuid4().hex}")
        store = _SlowPuts(inner) if request.param else CountingStore(inner)
        store.capabilities = replace(store.capabilities, round_trips=request.param)
        repo = Repository(store, exists=False)
        repo.init("t", "t@example.com", remove_old=True)
        return repo

    return make


def v(i: int) -> np.ndarray:
    return np.full(SAMPLE, i % 251, np.uint8)


def values(col: Any) -> dict[Any, int]:
    return {k: int(a[0]) for k, a in col.items()}


def test_a_block_holds_one_page_and_packs_the_rest_as_it_goes(
    new_repo: Callable[[], Repository],
) -> None:
    repo = new_repo()
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("x", prototype=v(0))
    engine = co._staging.columns["x"]
    most_held = 0
    with col:
        for i in range(100):
            col[i] = v(i % 7)  # repeats, near and far
            pages = engine.rows._pages
            most_held = max(most_held, sum(p is not None for p in pages))
        assert engine.table.count >= 90  # packed while the block was open
        assert int(col[5][0]) == 5
        assert is_packed(engine.index[5])
    assert most_held <= 3  # the budget, and the page being started
    assert values(col) == {i: i % 7 for i in range(100)}
    co.commit("spilled")
    co.close()
    assert values(repo.checkout()["x"]) == {i: i % 7 for i in range(100)}
    co = repo.checkout(write=True)  # and the journal replays the same
    assert values(co["x"]) == {i: i % 7 for i in range(100)}
    co.close()


keys = st.integers(0, 20)
block_ops = st.lists(
    st.one_of(
        st.tuples(st.just("set"), keys, st.integers(0, 9)),  # few contents: many repeats
        st.tuples(st.just("del"), keys, st.just(0)),
        st.tuples(st.just("slow"), keys, st.integers(0, 9)),  # not a row: the general path
        st.tuples(st.just("read"), keys, st.just(0)),
    ),
    max_size=40,
)


class _Sub(np.ndarray):
    """An ndarray subclass: written through the general path, not as a row."""


# new_repo is a factory: every example makes its own repository with it
@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(blocks=st.lists(st.tuples(block_ops, st.booleans()), min_size=1, max_size=4))
@pytest.mark.parametrize("spill", [True, False], ids=["spill", "hold-all"])
def test_spilled_blocks_behave_like_a_dict(
    new_repo: Callable[[], Repository],
    blocks: list[tuple[list[Any], bool]],
    spill: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Overwrites, deletes, reads and general-path writes across packed pages; commits and
    reopens between blocks. ``hold-all``: no spills, so the pages started early (while
    every key was new) are finished at the block's end, live rows or not."""
    if not spill:
        monkeypatch.setattr(rows_module, "SPILL_BYTES", 1 << 30)
    repo = new_repo()
    co = repo.checkout(write=True)
    co.add_ndarray_column("x", prototype=v(0))
    model: dict[int, int] = {}
    for ops, then_commit in blocks:
        col = co["x"]
        with col:
            for kind, k, x in ops:
                if kind == "set":
                    col[k] = v(x)
                    model[k] = x
                elif kind == "slow":
                    col[k] = v(x).view(_Sub)
                    model[k] = x
                elif kind == "del":
                    if k in model:
                        del col[k]
                        del model[k]
                elif k in model:
                    assert int(col[k][0]) == model[k]
                else:
                    assert k not in col
        assert values(col) == model
        if then_commit and co.diff.status() == "DIRTY":
            co.commit("step")
        else:
            co.close()
            co = repo.checkout(write=True)
            assert values(co["x"]) == model
    if co.diff.status() == "DIRTY":
        co.commit("end")
    co.close()
    assert values(repo.checkout()["x"]) == model


def test_a_page_that_cannot_be_packed_fails_the_write_and_the_block(
    new_repo: Callable[[], Repository], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = new_repo()
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("x", prototype=v(0))
    col[0] = v(1)
    co.commit("one")
    col[1] = v(2)  # staged before the block
    store = co._staging.store
    real_put = store.put

    def refuse(key: str, data: Any) -> None:
        if key.startswith("chunks/"):
            raise OSError(28, "No space left on device (injected)")
        real_put(key, data)

    monkeypatch.setattr(store, "put", refuse)
    written = []

    def block() -> None:
        with col:
            for i in range(10, 30):
                col[i] = v(i)
                written.append(i)

    # the write that needed a page packed raised the store's error; the block's end says
    # its writes are not stored
    with pytest.raises(HangarError, match="packing this with-block's samples failed") as info:
        block()
    assert len(written) in (PAGE_ROWS, 2 * PAGE_ROWS)
    assert isinstance(info.value.__context__, OSError)
    monkeypatch.setattr(store, "put", real_put)
    assert values(col) == {0: 1, 1: 2}
    co.commit("two")
    co.close()
    assert values(repo.checkout()["x"]) == {0: 1, 1: 2}


def test_memory_stays_bounded_by_the_budget_not_the_block(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 96 MiB block with an 8 MiB budget peaks far below the block's size (real pages:
    one chunk each; chunks go to local disk)."""
    import tracemalloc

    monkeypatch.undo()  # real page sizes
    monkeypatch.setattr(rows_module, "SPILL_BYTES", 8 << 20)
    monkeypatch.setattr(dedup_module, "DEDUP_WINDOW_BYTES", 8 << 20)
    repo = Repository(str(tmp_path / "repo"), exists=False)
    repo.init("t", "t@example.com")
    co = repo.checkout(write=True)
    sample = 64 << 10
    col = co.add_ndarray_column("x", shape=(sample,), dtype=np.uint8)
    rng = np.random.default_rng(0)
    pool = [rng.integers(0, 255, sample, dtype=np.uint8) for _ in range(64)]
    count = (96 << 20) // sample
    tracemalloc.start()
    try:
        with col:
            for i in range(count):
                x = pool[i % 64].copy()
                x[:8] = np.frombuffer(i.to_bytes(8, "little"), np.uint8)  # all distinct
                col[i] = x
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 48 << 20, f"peak {peak / 2**20:.0f} MiB for a 96 MiB block"
    co.commit("big")
    co.close()
    r = repo.checkout()["x"]
    assert int.from_bytes(r[count - 1][:8].tobytes(), "little") == count - 1
    assert np.array_equal(r[5][8:], pool[5][8:])


def test_pages_started_early_then_changed_in_the_block_keep_the_last_values(
    new_repo: Callable[[], Repository], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages start packing on the helper as they fill; keys of theirs written again,
    deleted or written through the general path later in the block are what the block
    leaves, in the index, the journal (a fresh writer) and the commit."""
    import hangar.packing as packing_module

    monkeypatch.setattr(rows_module, "SPILL_BYTES", 1 << 30)  # nothing spills
    started: list[int] = []
    real = packing_module.RowPacker.start_background

    def counting(self: Any, number: int, keys: Any, data: Any) -> None:
        started.append(number)
        real(self, number, keys, data)

    monkeypatch.setattr(packing_module.RowPacker, "start_background", counting)
    repo = new_repo()
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("x", prototype=v(0))
    model = {i: i for i in range(9)}
    with col:
        for i in range(9):
            col[i] = v(i)  # pages 0 and 1 fill: started on the helper
        assert started == [0, 1]  # page 2 is full, and known to be at the next write
        col[1] = v(50)  # written again
        del col[4]  # deleted
        col[2] = v(70).view(_Sub)  # written through the general path
        col[7] = v(3)  # a repeat of an earlier row, in the page not started
        model.update({1: 50, 2: 70, 7: 3})
        del model[4]
        assert values(col) == model
    assert started == [0, 1, 2]  # page 2, at that write; and none after the first change
    assert values(col) == model
    co.close()
    co = repo.checkout(write=True)  # the journal replays the same
    assert values(co["x"]) == model
    co.commit("changed")
    co.close()
    assert values(repo.checkout()["x"]) == model
