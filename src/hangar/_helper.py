"""One helper thread per process, for CPU work that releases the GIL.

Compressing and hashing a block of samples, and writing a Parquet segment,
release the GIL, so a second core can take half of a chunk's blocks (or of
a commit's segments) while the calling thread does the other half
(:func:`in_halves`). One thread is enough for the two cores this targets;
more would only queue.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor, wait
from typing import TypeVar

__all__ = ["helper_thread", "in_halves"]

T = TypeVar("T")
R = TypeVar("R")

#: items a call needs before half of them go to the helper (a hand-over costs about
#: what encoding one 64 KiB block does)
HELPED_ITEMS = 4

_pool: tuple[int, ThreadPoolExecutor] | None = None
_lock = threading.Lock()


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity, where the OS tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def helper_thread() -> ThreadPoolExecutor | None:
    """The process's helper thread, made on first use; None if the process may use one
    CPU only (its affinity).

    A forked child gets its own (it has the parent's executor, not its thread).
    """
    global _pool  # noqa: PLW0603 - one helper per process, made lazily
    if _usable_cpus() < 2:
        return None
    with _lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="hangar-helper"))
        return _pool[1]


def in_halves(
    fn: Callable[[Sequence[T]], list[R]], items: Sequence[T], helper: Executor | None
) -> list[R]:
    """``fn(items)``, the second half of the items done on ``helper`` meanwhile.

    ``fn`` maps a list of items to a list of results, one each, in order.
    Without a helper, or with fewer than :data:`HELPED_ITEMS` items, the
    caller does it all. If the caller's half fails, the helper's half is
    waited for before the error is raised: nothing keeps running behind it.
    """
    if helper is None or len(items) < HELPED_ITEMS:
        return fn(items)
    half = len(items) // 2
    later = helper.submit(fn, items[half:])
    try:
        first = fn(items[:half])
    except BaseException:
        wait([later])
        raise
    return first + later.result()
