"""The helper thread (hangar._helper): one per process, none on one CPU, remade after fork."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from hangar._helper import SharedWork, helper_thread


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


def where(i: int) -> tuple[int, str]:
    time.sleep(0.001)  # long enough for both threads to take items
    return i, threading.current_thread().name


def test_shared_work_keeps_order_and_both_threads_take_items() -> None:
    with ThreadPoolExecutor(1, thread_name_prefix="helper") as helper:
        out = SharedWork(where, list(range(40)), helper).result()
    assert [i for i, _ in out] == list(range(40))
    names = {name for _, name in out}
    assert names == {"MainThread", "helper_0"}


def test_shared_work_goes_on_while_the_caller_does_something_else() -> None:
    with ThreadPoolExecutor(1, thread_name_prefix="helper") as helper:
        work = SharedWork(where, list(range(10)), helper)
        time.sleep(0.2)  # the caller is busy elsewhere: the helper does them all
        out = work.result()
    assert out == [(i, "helper_0") for i in range(10)]


def test_shared_work_without_a_helper_is_done_by_the_caller() -> None:
    out = SharedWork(where, list(range(5)), None).result()
    assert out == [(i, "MainThread") for i in range(5)]


def test_shared_work_raises_the_helpers_error_and_stops_on_the_callers() -> None:
    def fail_on_helper(i: int) -> int:
        time.sleep(0.001)
        if threading.current_thread().name != "MainThread":
            raise MemoryError("helper")
        return i

    with ThreadPoolExecutor(1, thread_name_prefix="helper") as helper:
        with pytest.raises(MemoryError, match="helper"):
            SharedWork(fail_on_helper, list(range(20)), helper).result()

        calls: list[str] = []

        def fail_on_caller(i: int) -> int:
            calls.append(threading.current_thread().name)
            time.sleep(0.002)
            if threading.current_thread().name == "MainThread":
                raise MemoryError("caller")
            return i

        with pytest.raises(MemoryError, match="caller"):
            SharedWork(fail_on_caller, list(range(200)), helper).result()
        done = len(calls)
        time.sleep(0.05)
        assert len(calls) == done < 200  # the helper stopped taking items, and was waited for


def test_abandoned_shared_work_takes_no_more_items() -> None:
    calls: list[int] = []

    def slow(i: int) -> int:
        calls.append(i)
        time.sleep(0.002)
        return i

    with ThreadPoolExecutor(1, thread_name_prefix="helper") as helper:
        work = SharedWork(slow, list(range(500)), helper)
        time.sleep(0.01)
        work.abandon()
        done = len(calls)
        time.sleep(0.05)
    assert 1 <= len(calls) == done < 500
