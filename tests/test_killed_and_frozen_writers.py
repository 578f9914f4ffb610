"""Writers killed (SIGKILL) or frozen (SIGSTOP) at a random moment of their work.

Whatever instant the kill lands on (inside a block's end, a journal append, a
commit's segment uploads, its ref swap or the journal cleanup after it), the
next writer must find every write and every commit that returned to the dead
one, and a repository that verifies and takes the next commit. A writer frozen
inside its commit until its lease expires, then resumed after another writer
took the branch over, either had its commit land before it froze or is fenced
by the epoch in the ref: it never replaces the new writer's commit. Run on
local disk, the SeaweedFS S3 server and the fake-gcs-server GCS emulator.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hangar import Repository
from test_repository_processes import make_repo, run_py, writer_after_expiry

BLOCK = 400  # samples per with-block


def sample(key: int) -> np.ndarray[Any, Any]:
    return ((np.arange(64, dtype=np.int64) * (key + 7)) % 251).astype(np.uint8)


CHILD = """
    import numpy as np
    from hangar import Repository
    repo = Repository({url!r}, storage_options={opts!r})
    co = repo.checkout(write=True, lease_seconds=60)
    img = co.add_ndarray_column("img", shape=(64,), dtype=np.uint8)
    lab = co.add_str_column("lab")
    print("ready", flush=True)
    r = 0
    while True:
        with img, lab:
            for k in range(r * {block}, (r + 1) * {block}):
                img[k] = ((np.arange(64, dtype=np.int64) * (k + 7)) % 251).astype(np.uint8)
                lab[k] = str(k % 10)
        print("block", r, flush=True)
        lab["naked-" + str(r)] = "n" + str(r)
        print("naked", r, flush=True)
        if r % 2 == 1:
            print("committing", r, flush=True)
            print("commit", co.commit("round " + str(r)), r, flush=True)
        r += 1
"""


def acknowledged(lines: list[str]) -> tuple[int, int, list[tuple[str, int]]]:
    """(blocks that returned, naked writes that returned, commits (digest, round))."""
    blocks = naked = 0
    commits: list[tuple[str, int]] = []
    for line in lines:
        word, *rest = line.split()
        if word == "block":
            blocks = int(rest[0]) + 1
        elif word == "naked":
            naked = int(rest[0]) + 1
        elif word == "commit":
            commits.append((rest[0], int(rest[1])))
    return blocks, naked, commits


def check_round_data(columns: Any, rounds: int, naked: int) -> None:
    img, lab = columns["img"], columns["lab"]
    for r in range(rounds):
        for k in (r * BLOCK, r * BLOCK + BLOCK // 2, (r + 1) * BLOCK - 1):
            assert np.array_equal(img[k], sample(k)), k
            assert lab[k] == str(k % 10), k
    for r in range(naked):
        assert lab["naked-" + str(r)] == "n" + str(r)


def kill_somewhere(url: str, opts: dict[str, Any], seed: int) -> list[str]:
    """Start the writer, let it run past a random point, kill it; every line it printed."""
    rng = random.Random(seed)
    proc = run_py(CHILD.format(url=url, opts=opts, block=BLOCK), wait=False)
    lines = []
    try:
        assert proc.stdout.readline().decode().strip() == "ready"
        target = rng.randint(2, 12)  # lines to wait for
        while len(lines) < target:
            line = proc.stdout.readline().decode()
            assert line, proc.stderr.read().decode()
            lines.append(line)
        # then a random instant of what follows: often a commit under way
        time.sleep(rng.uniform(0, 0.06 if lines[-1].startswith("committing") else 0.2))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    lines += proc.stdout.read().decode().splitlines(keepends=True)  # acknowledged before the kill
    proc.stdout.close()
    proc.stderr.close()
    # a line the kill cut short ("block" without its round) is not counted: one
    # acknowledgement fewer to check, never one that did not happen
    return [line for line in lines if line.endswith("\n") and line.strip()]


def check_after_kill(repo: Repository, lines: list[str]) -> None:
    blocks, naked, commits = acknowledged(lines)
    assert repo.force_release_writer_lock() is True  # the writer is dead
    assert repo.verify_repo_integrity() is True
    history = repo.log(return_contents=True)["order"]
    for digest, _ in commits:
        assert digest in history  # no commit that returned is lost
    if commits:  # the last commit that returned holds everything acknowledged before it
        last_digest, last_round = commits[-1]
        reader = repo.checkout(commit=last_digest)
        check_round_data(reader.columns, last_round + 1, last_round + 1)
        reader.close()
    co = repo.checkout(write=True)  # staged: every write that returned, committed or not
    check_round_data(co.columns, blocks, naked)
    n = len(co["img"])
    # whole blocks, never part of one: the block under way may have landed
    assert n in (blocks * BLOCK, (blocks + 1) * BLOCK)
    co["lab", "after"] = "the kill"  # so there is something to commit in any case
    co.commit("after the kill")
    co.close()
    assert repo.verify_repo_integrity() is True
    reader = repo.checkout()
    check_round_data(reader.columns, blocks, naked)
    assert len(reader["img"]) == n
    reader.close()


@pytest.fixture(params=["s3", "gcs"])
def remote(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """A new bucket on the SeaweedFS S3 server or the GCS emulator: (url, storage options)."""
    scheme, server = ("s3", "seaweedfs") if request.param == "s3" else ("gs", "fake_gcs")
    found = request.getfixturevalue(server)
    return f"{scheme}://{found.create_bucket()}/repo", found.storage_options()


@pytest.mark.parametrize("seed", range(4))
def test_writer_killed_anywhere_in_its_loop_on_local_disk(tmp_path: Path, seed: int) -> None:
    repo = make_repo(str(tmp_path))
    check_after_kill(repo, kill_somewhere(str(tmp_path), {}, seed))


@pytest.mark.parametrize("seed", range(3))
def test_writer_killed_anywhere_in_its_loop_on_object_stores(
    remote: tuple[str, dict[str, Any]], seed: int
) -> None:
    url, opts = remote
    repo = make_repo(url, storage_options=opts)
    check_after_kill(repo, kill_somewhere(url, opts, seed))


FROZEN_CHILD = """
    import numpy as np
    from hangar import Repository
    repo = Repository({url!r}, storage_options={opts!r})
    co = repo.checkout(write=True, lease_seconds=1.5)
    img = co.add_ndarray_column("img", shape=(64,), dtype=np.uint8)
    with img:
        for k in range({block}):
            img[k] = ((np.arange(64, dtype=np.int64) * (k + 7)) % 251).astype(np.uint8)
    print("committing", flush=True)
    try:
        print("commit", co.commit("frozen writer"), flush=True)
    except PermissionError as exc:
        print("fenced", type(exc).__name__, flush=True)
"""


def freeze_in_commit_and_take_over(url: str, opts: dict[str, Any], seed: int) -> None:
    """Freeze (SIGSTOP) a writer at a random instant of its commit, let its lease expire,
    take the branch over (committing or not), then let the frozen writer go on."""
    rng = random.Random(seed)
    repo = Repository(url, storage_options=opts)
    proc = run_py(FROZEN_CHILD.format(url=url, opts=opts, block=BLOCK), wait=False)
    try:
        assert proc.stdout.readline().decode().split() == ["committing"], proc.stderr.read()
        time.sleep(rng.uniform(0, 0.03))
        proc.send_signal(signal.SIGSTOP)
        co = writer_after_expiry(repo)  # the frozen writer's lease runs out
        took_over_commit = None
        if rng.random() < 0.5:
            co["img", "taker"] = sample(10**6)
            took_over_commit = co.commit("the writer that took over")
        co.close()
    finally:
        proc.send_signal(signal.SIGCONT)
    out, err = proc.communicate(timeout=60)
    word, *rest = out.decode().split("\n")[-2].split()
    assert word in ("commit", "fenced"), err.decode()
    history = repo.log(return_contents=True)
    if word == "fenced":  # it resumed before its ref swap, which the new epoch refused
        assert rest == ["LeaseLostError"]
    else:  # it was frozen after its ref swap: its commit landed, and is kept
        assert rest[0] in history["order"]
    if took_over_commit is not None:
        assert history["head"] == took_over_commit  # never replaced by the stale writer
    co = repo.checkout(write=True)  # the frozen writer's block: committed, or staged still
    img = co["img"]
    for k in (0, BLOCK // 2, BLOCK - 1):
        assert np.array_equal(img[k], sample(k)), k
    co.close()
    assert repo.verify_repo_integrity() is True


@pytest.mark.parametrize("seed", range(3))
def test_writer_frozen_in_its_commit_past_its_lease_is_fenced_on_local_disk(
    tmp_path: Path, seed: int
) -> None:
    make_repo(str(tmp_path))
    freeze_in_commit_and_take_over(str(tmp_path), {}, seed)


@pytest.mark.parametrize("seed", range(2))
def test_writer_frozen_in_its_commit_past_its_lease_is_fenced_on_object_stores(
    remote: tuple[str, dict[str, Any]], seed: int
) -> None:
    url, opts = remote
    make_repo(url, storage_options=opts)
    freeze_in_commit_and_take_over(url, opts, seed)
