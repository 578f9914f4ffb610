"""The repository across processes and on a real S3 server: leases, crashes, reopening."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hangar import Repository
from hangar.exceptions import LockHeldError

SRC = str(Path(__file__).resolve().parents[1] / "src")


def run_py(code: str, *, wait: bool = True) -> Any:
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-W", "ignore", "-c", textwrap.dedent(code)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    if not wait:
        return proc
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    return out.decode()


def make_repo(path: Any, **kw: Any) -> Repository:
    repo = Repository(path, exists=False, **kw)
    repo.init(user_name="Ann", user_email="ann@example.com", remove_old=True)
    return repo


def writer_after_expiry(repo: Repository, within: float = 15) -> Any:
    """The writer checkout of master, once a dead writer's lease has expired."""
    deadline = time.monotonic() + within
    while True:
        try:
            return repo.checkout(write=True)
        except LockHeldError:
            assert time.monotonic() < deadline, "the dead writer's lease never expired"
            time.sleep(0.5)


def test_reopen_from_a_fresh_process(tmp_path: Path) -> None:
    repo = make_repo(str(tmp_path))
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("x", shape=(5,), dtype=np.float32)
    with col:
        for i in range(300):
            col[i] = np.full(5, i, np.float32)
    digest = co.commit("three hundred")
    co.close()
    out = run_py(f"""
        import json, numpy as np
        from hangar import Repository
        repo = Repository({str(tmp_path)!r})
        r = repo.checkout()
        col = r["x"]
        ok = all(np.array_equal(col[i], np.full(5, i, np.float32)) for i in range(300))
        print(json.dumps([r.commit_hash, len(col), ok]))
    """)
    assert json.loads(out) == [digest, 300, True]


def test_lease_is_held_across_processes_and_heals_after_kill(tmp_path: Path) -> None:
    repo = make_repo(str(tmp_path))
    proc = run_py(f"""
        import numpy as np, sys, time
        from hangar import Repository
        repo = Repository({str(tmp_path)!r})
        co = repo.checkout(write=True, lease_seconds=3)
        col = co.add_str_column("s")
        col["staged-before-crash"] = "survives"
        print("holding", flush=True)
        time.sleep(600)
    """, wait=False)  # fmt: skip
    assert proc.stdout.readline().strip() == b"holding"
    with pytest.raises(LockHeldError, match="Ann"):
        repo.checkout(write=True)
    proc.send_signal(signal.SIGKILL)  # no close, no atexit
    proc.communicate(timeout=30)
    co = writer_after_expiry(repo)
    # the write staged outside a with-block before the crash is there
    assert co["s", "staged-before-crash"] == "survives"
    co.commit("after the crash")
    co.close()
    assert repo.checkout()["s", "staged-before-crash"] == "survives"


def test_force_release_across_processes(tmp_path: Path) -> None:
    repo = make_repo(str(tmp_path))
    proc = run_py(f"""
        import sys
        from hangar import Repository
        repo = Repository({str(tmp_path)!r})
        co = repo.checkout(write=True, lease_seconds=600)
        col = co.add_str_column("s")
        print("holding", flush=True)
        import time
        time.sleep(2)
        try:
            col["late"] = "x"
            print("WROTE", flush=True)
        except PermissionError as exc:
            print("FENCED", type(exc).__name__, flush=True)
        try:
            co.commit("stale")
            print("COMMITTED", flush=True)
        except PermissionError:
            print("COMMIT-FENCED", flush=True)
    """, wait=False)  # fmt: skip
    assert proc.stdout.readline().strip() == b"holding"
    assert repo.force_release_writer_lock() is True
    co = repo.checkout(write=True)
    out, _ = proc.communicate(timeout=60)
    assert b"FENCED LeaseLostError" in out
    assert b"COMMIT-FENCED" in out
    assert b"COMMITTED" not in out
    co.close()


def test_tutorial_on_seaweedfs(seaweedfs: Any) -> None:
    bucket = seaweedfs.create_bucket()
    opts = seaweedfs.storage_options()
    repo = make_repo(f"s3://{bucket}/mnist", storage_options=opts)
    rng = np.random.default_rng(3)
    imgs = rng.integers(0, 255, (500, 784), dtype=np.uint8)
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("mnist_training_images", prototype=imgs[0])
    lab = co.add_ndarray_column("mnist_training_labels", prototype=np.array([0]))
    col["0"] = imgs[0]
    with col, lab:
        for i in range(len(imgs)):
            col[i] = imgs[i]
            lab[i] = np.array([i % 10])
    digest = co.commit("on S3")
    co.close()
    again = Repository(f"s3://{bucket}/mnist", storage_options=opts)
    r = again.checkout()
    assert r.commit_hash == digest
    assert len(r["mnist_training_images"]) == 501
    for i in (0, 250, 499):
        assert np.array_equal(r["mnist_training_images", i], imgs[i])
    assert np.array_equal(r["mnist_training_images", "0"], imgs[0])
    assert "Num Data Pieces: 501" in again.summary(return_contents=True)


def test_single_sample_read_is_one_ranged_get_on_s3(seaweedfs: Any) -> None:
    from hangar.format.schema import REMOTE_BLOCK_BYTES
    from hangar.store import open_store
    from hangar.testing.counting import CountingStore

    bucket = seaweedfs.create_bucket()
    counting = CountingStore(open_store(f"s3://{bucket}/r", **seaweedfs.storage_options()))
    repo = make_repo(counting, read_ahead_bytes=0)  # tests/test_read_ahead.py: with it
    imgs = np.random.default_rng(5).integers(0, 255, (6000, 784), dtype=np.uint8)
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("images", prototype=imgs[0])
    assert col._engine.schema.block_bytes == REMOTE_BLOCK_BYTES  # an object store's blocks
    with col:
        for i in range(len(imgs)):
            col[i] = imgs[i]
    co.commit("6000 images")
    co.close()
    r = repo.checkout()
    c = r["images"]
    assert np.array_equal(c[0], imgs[0])  # loads the manifest once
    counting.reset()
    per_block = REMOTE_BLOCK_BYTES // 784
    keys = list(range(per_block + 7, 6000, per_block))  # each in a different block
    assert len(keys) >= 10
    for k in keys:
        assert np.array_equal(c[k], imgs[k])
    assert counting.calls == {"get_range": len(keys)}
    # a block each, never a whole chunk
    assert counting.bytes_read < len(keys) * REMOTE_BLOCK_BYTES


def test_a_writer_that_cannot_close_at_exit_says_so_in_one_warning(tmp_path: Path) -> None:
    make_repo(str(tmp_path))
    code = textwrap.dedent(f"""
        from hangar import Repository
        repo = Repository({str(tmp_path)!r})
        co = repo.checkout(write=True)
        co.add_str_column("s")["k"] = "v"

        def unreachable():
            raise ConnectionError("the server is gone")

        co._lease.release = unreachable  # as if the store could not be reached at exit
    """)
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "branch 'master' could not be closed at exit" in done.stderr
    assert "the server is gone" in done.stderr
    assert "Traceback" not in done.stderr
    assert "Exception ignored" not in done.stderr


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_with_block_still_open_at_exit_is_stored_and_the_lease_let_go(
    tmp_path: Path, where: str, request: pytest.FixtureRequest
) -> None:
    """At exit the helper and upload threads are already gone (concurrent.futures stops
    them before atexit runs): the block is packed in the closing thread, not lost, and
    the next writer opens at once."""
    if where == "local":
        url, options = str(tmp_path), {}
    else:
        server = request.getfixturevalue("seaweedfs")
        url, options = f"s3://{server.create_bucket()}/r", server.storage_options()
    repo = Repository(url, exists=False, storage_options=options)
    repo.init("t", "t@example.com")
    code = textwrap.dedent(f"""
        import numpy as np
        from hangar import Repository
        co = Repository({url!r}, storage_options={options!r}).checkout(write=True)
        col = co.add_ndarray_column("x", shape=(784,), dtype=np.uint8)
        col.__enter__()  # a block never left: pages fill and start packing on the helper
        for i in range(20_000):  # distinct rows: every page has blocks to compress
            x = np.full(784, i % 251, np.uint8)
            x[:4] = np.frombuffer(i.to_bytes(4, "little"), np.uint8)
            col[i] = x
    """)
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "could not be closed" not in done.stderr, done.stderr
    co = repo.checkout(write=True)  # the lease was let go: no wait for it to expire
    col = co["x"]
    assert len(col) == 20_000
    assert int.from_bytes(col[19_999][:4].tobytes(), "little") == 19_999
    assert int(col[12_345][700]) == 12_345 % 251
    co.close()
