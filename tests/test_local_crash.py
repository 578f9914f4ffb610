"""Local disk under crashes: a killed writer never leaves a partial object or a held lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from hangar.store import LocalStore, open_store

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _spawn(code: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env,
                            stdout=subprocess.PIPE)  # fmt: skip


def test_lock_of_a_killed_writer_is_released(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    assert isinstance(store, LocalStore)
    v = store.put_if_absent("refs/heads/master.json", b"base")
    # a writer takes the folder lock of the ref and dies holding it (kill -9)
    proc = _spawn(f"""
        import sys, time
        from hangar.store import open_store
        s = open_store({str(tmp_path)!r})
        with s._locked(s._path("refs/heads")):
            print("locked", flush=True)
            time.sleep(600)
    """)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"locked"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    start = time.monotonic()
    v2 = store.replace_if_version("refs/heads/master.json", b"next", v)
    assert time.monotonic() - start < 5
    assert store.get_versioned("refs/heads/master.json") == (b"next", v2)


def test_writer_killed_mid_write_leaves_no_partial_object(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    # the child writes 200 MB objects in a loop; we kill it somewhere in the middle
    proc = _spawn(f"""
        from hangar.store import open_store
        s = open_store({str(tmp_path)!r})
        data = b"x" * (200 * 2**20)
        print("go", flush=True)
        i = 0
        while True:
            s.put_if_absent(f"chunks/{{i}}", data)
            i += 1
    """)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"go"
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    keys = list(store.list("chunks"))
    for key in keys:  # every visible object is whole
        assert len(store.get(key)) == 200 * 2**20
    # the next writer is not blocked by anything the dead one left
    store.put_if_absent(f"chunks/{len(keys)}", b"after")
