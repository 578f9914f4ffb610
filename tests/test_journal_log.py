"""The staging journal as an append-only log on stores that can append (local disk, memory)."""

from __future__ import annotations

import signal
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hangar import Repository
from hangar.exceptions import CorruptionError
from hangar.format.staging import journal_prefix, read_state
from hangar.store import open_store
from hangar.testing.counting import CountingStore
from test_repository_processes import make_repo, run_py, writer_after_expiry


def journal(store: Any) -> list[str]:
    return list(store.list(journal_prefix("master")))


def test_writes_outside_a_with_block_append_to_one_log() -> None:
    counting = CountingStore(open_store(f"memory://log-{uuid.uuid4().hex}"))
    repo = make_repo(counting)
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("x", shape=(3,), dtype=np.int16)
    counting.reset()
    for i in range(50):
        col[i] = np.full(3, i, np.int16)
    assert counting.calls["append"] == 50
    assert counting.calls["put"] == 0  # no object per write
    (log,) = journal(counting)
    assert log.endswith(".log")
    co.commit("50 samples")
    assert journal(counting) == []  # the committed log is gone
    col[50] = np.zeros(3, np.int16)
    (second,) = journal(counting)
    assert second != log  # a new log after each commit
    co.close()
    co = repo.checkout(write=True)
    assert len(co["x"]) == 51
    assert co["x", 50].tolist() == [0, 0, 0]
    co.close()


def test_a_torn_end_is_no_entry_and_the_adopter_pins_what_it_read(tmp_path: Path) -> None:
    repo = make_repo(str(tmp_path))
    store = repo._store
    co = repo.checkout(write=True)
    col = co.add_str_column("s")
    for i in range(5):
        col[f"k{i}"] = f"v{i}"
    co.close()  # staged, not committed
    (log,) = journal(store)
    whole = store.get(log)
    # a writer killed in the middle of its next append: a frame cut short
    store.append(log, whole[:20])
    co = repo.checkout(write=True)
    assert dict(co["s"].items()) == {f"k{i}": f"v{i}" for i in range(5)}
    state, _ = read_state(store, "master")  # type: ignore[misc]
    assert state.adopted == (f"{log.rsplit('/', 1)[1]}@{len(whole)}",)
    co["s", "after"] = "x"
    co.commit("adopted")
    co.close()
    assert len(repo.checkout()["s"]) == 6


def test_what_a_stale_writer_appends_after_its_log_was_adopted_is_fenced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = make_repo(f"memory://log-{uuid.uuid4().hex}")
    store = repo._store
    stale = repo.checkout(write=True)
    col = stale.add_str_column("s")
    col["before"] = "kept"
    assert repo.force_release_writer_lock() is True
    taker = repo.checkout(write=True)  # adopts the stale writer's log, pinned
    # the stale writer writes in the window before it learns it lost the lease
    monkeypatch.setattr(stale._staging.lease, "verify", lambda: None)
    col["late"] = "fenced"
    assert "late" not in taker["s"]
    taker.close()  # closes without committing; the next writer adopts the pinned log
    co = repo.checkout(write=True)
    assert dict(co["s"].items()) == {"before": "kept"}
    (pin,) = read_state(store, "master")[0].adopted  # type: ignore[index]
    log = f"{journal_prefix('master')}/{pin.split('@')[0]}"
    assert len(store.get(log)) > int(pin.split("@")[1])  # the late bytes are there, unread
    # a log damaged inside what was adopted is an error, not a silent loss
    data = bytearray(store.get(log))
    data[30] ^= 0xFF
    store.put(log, bytes(data))
    co.close()
    with pytest.raises(CorruptionError, match="damaged"):
        repo.checkout(write=True)


def test_every_write_that_returned_survives_kill_9(tmp_path: Path) -> None:
    repo = make_repo(str(tmp_path))
    proc = run_py(f"""
        import numpy as np
        from hangar import Repository
        repo = Repository({str(tmp_path)!r})
        co = repo.checkout(write=True, lease_seconds=2)
        col = co.add_ndarray_column("x", shape=(64,), dtype=np.int32)
        i = 0
        while True:
            col[i] = np.full(64, i, np.int32)
            print(i, flush=True)
            i += 1
    """, wait=False)  # fmt: skip
    returned = -1
    while returned < 300:
        returned = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)  # somewhere in the middle of a write
    proc.wait(timeout=30)
    rest = proc.stdout.read()  # through the reader: it may hold lines read ahead already
    proc.stdout.close()
    proc.stderr.close()
    returned = max([returned, *(int(x) for x in rest.split())])
    co = writer_after_expiry(repo)
    col = co["x"]
    assert len(col) in (returned + 1, returned + 2)  # the write under way may have landed
    for i in range(returned + 1):
        assert col[i].tolist() == [i] * 64, i
    co.commit("after kill -9")
    co.close()


def test_a_reset_drops_the_log_and_later_writes_start_a_new_one() -> None:
    repo = make_repo(f"memory://log-{uuid.uuid4().hex}")
    co = repo.checkout(write=True)
    col = co.add_str_column("s")
    co.commit("column")
    col["dropped"] = "x"
    co.reset_staging_area()
    assert journal(repo._store) == []
    co["s", "kept"] = "y"
    co.close()
    co = repo.checkout(write=True)
    assert dict(co["s"].items()) == {"kept": "y"}
    co.close()


writer_ops = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.sampled_from("abcd"), st.integers(0, 9)),
        st.tuples(st.just("stale"), st.sampled_from("abcd"), st.integers(0, 9)),
        st.tuples(
            st.sampled_from(["takeover", "crash", "reopen", "commit"]), st.just(""), st.just(0)
        ),
    ),
    max_size=20,
)


@settings(max_examples=60, deadline=None)
@given(ops=writer_ops)
def test_writers_taking_over_logs_keep_exactly_what_was_acknowledged(
    ops: list[tuple[str, str, int]],
) -> None:
    """Writers take the branch over (force release, or a crash that tore an append), stale
    writers keep writing in their window, commits come and go: the next writer stages
    exactly the writes that returned to a writer holding the lease."""
    run_writers(make_repo(f"memory://log-{uuid.uuid4().hex}"), ops)


@settings(max_examples=15, deadline=None)
@given(ops=writer_ops)
def test_writers_taking_over_logs_on_local_disk(ops: list[tuple[str, str, int]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        run_writers(make_repo(folder), ops)


def run_writers(repo: Repository, ops: list[tuple[str, str, int]]) -> None:
    co = repo.checkout(write=True)
    co.add_str_column("s")
    co.commit("column")
    committed: dict[str, str] = {}
    staged: dict[str, str] = {}
    stale: list[Any] = []
    for kind, key, value in ops:
        if kind == "write":
            co["s", key] = str(value)
            staged[key] = str(value)
        elif kind == "stale" and stale:
            stale[-1]["s", key] = "stale"  # in its window: the lease check passes
        elif kind in ("takeover", "crash"):
            if kind == "crash" and co._staging._log is not None:
                log = f"{journal_prefix('master')}/{co._staging._log}"
                # it died in the middle of an append: a whole frame header, part of its entry
                repo._store.append(log, b"HJL1" + (64).to_bytes(8, "little") + bytes(4) + b"{")
            assert repo.force_release_writer_lock() is True
            old = co
            co = repo.checkout(write=True)
            if kind == "takeover":
                old._staging.lease.verify = lambda: None
                stale.append(old)
        elif kind == "reopen":
            co.close()
            co = repo.checkout(write=True)
        elif kind == "commit" and staged != committed:
            co.commit("step")
            committed = dict(staged)
        assert dict(co["s"].items()) == staged
    co.close()
    after = repo.checkout(write=True)  # (`with co:` would be a with-block, not a close)
    assert dict(after["s"].items()) == staged
    after.close()
    assert dict(repo.checkout()["s"].items()) == committed


def test_on_s3_each_write_is_an_entry_and_a_reopen_replays_them_in_order(seaweedfs: Any) -> None:
    repo = make_repo(f"s3://{seaweedfs.create_bucket()}/r",
                     storage_options=seaweedfs.storage_options())  # fmt: skip
    assert not repo._store.capabilities.append
    co = repo.checkout(write=True)
    col = co.add_str_column("s")
    for i in range(30):  # the same keys over and over: only the order tells the last value
        col[f"k{i % 3}"] = f"v{i}"
    del col["k0"]
    names = journal(repo._store)
    assert len(names) == 32  # the column, 30 writes, the delete: one object each
    assert not any(n.endswith(".log") for n in names)
    co.close()
    co = repo.checkout(write=True)
    assert dict(co["s"].items()) == {"k1": "v28", "k2": "v29"}
    co.close()
