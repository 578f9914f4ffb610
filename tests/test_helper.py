"""The helper thread (hangar._helper): one per process, none on one CPU, remade after fork."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hangar._helper import helper_thread


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity (Linux)")
def test_no_helper_when_the_process_may_use_one_cpu() -> None:
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))});"
        "from hangar._helper import helper_thread; print(helper_thread())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs two CPUs (Linux)",
)
def test_a_forked_child_gets_a_helper_that_runs() -> None:
    parent = helper_thread()
    assert parent is not None
    assert parent.submit(os.getpid).result() == os.getpid()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's executor has no thread here
        try:
            child = helper_thread()
            ok = (
                child is not None
                and child is not parent
                and child.submit(int, "7").result(timeout=10) == 7
            )
            os.write(w, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    assert os.read(r, 1) == b"1"
    assert os.waitstatus_to_exitcode(status) == 0
    assert helper_thread() is parent
