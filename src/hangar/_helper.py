"""One helper thread per process, for CPU work that releases the GIL.

Compressing and hashing a block of samples, and writing a Parquet segment,
release the GIL, so a second core can share a page's blocks (or a commit's
segments) with the calling thread (:class:`SharedWork`): the helper starts at
once, and the caller joins in when it asks for the results, after doing
other work meanwhile if it has some. One thread is enough for the two cores
this targets; more would only queue.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from typing import Any, Generic, TypeVar

__all__ = ["SharedWork", "helper_thread", "submit_or_none"]

T = TypeVar("T")
R = TypeVar("R")

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


def submit_or_none(executor: Executor, fn: Callable[..., R], *args: Any) -> Future[R] | None:
    """``executor.submit(fn, *args)``, or None if the executor takes no more work.

    At interpreter exit concurrent.futures stops its threads before atexit
    handlers run (a writer closed then still has a with-block to pack): the
    caller then does the work itself.
    """
    try:
        return executor.submit(fn, *args)
    except RuntimeError:
        return None


class SharedWork(Generic[T, R]):
    """``fn`` of each item, shared out as it goes: the helper starts on the items at once,
    and the caller takes whatever is left when it asks for the results (:meth:`result`).

    The caller can do other work meanwhile (a with-block's end digests the next page
    while the helper compresses this one), then join in, so neither core waits for the
    other more than one item's worth.
    """

    __slots__ = ("_fn", "_future", "_items", "_next", "_out", "_stopped")

    def __init__(self, fn: Callable[[T], R], items: Sequence[T], helper: Executor | None) -> None:
        self._fn = fn
        self._items = items
        self._out: list[Any] = [None] * len(items)
        self._next = itertools.count()  # the next item to take: next() is atomic
        self._stopped = False
        self._future: Future[None] | None = None
        if helper is not None and len(items) >= 2:
            self._future = submit_or_none(helper, self._work)

    def _work(self) -> None:
        items, out, fn = self._items, self._out, self._fn
        n = len(items)
        for i in self._next:
            if i >= n or self._stopped:
                return
            out[i] = fn(items[i])

    def result(self) -> list[R]:
        """Every item's result, in order; the caller does what the helper has not taken.

        If either side fails, the other is finished or stopped before the error is raised.
        """
        try:
            self._work()
        except BaseException:
            self.abandon()
            raise
        future = self._future
        if future is not None and not future.cancel():
            future.result()  # the helper's last item; raises what it raised
        return self._out

    def abandon(self) -> None:
        """Take no more items and wait for the helper's current one (on an error path)."""
        self._stopped = True
        if self._future is not None and not self._future.cancel():
            wait([self._future])
