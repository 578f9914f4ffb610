"""Object writes in flight: started as data is packed, waited for before anything names them.

Packing a with-block (or a commit's manifest segments) alternates CPU work
(compressing, encoding) with writes to the store. On an object store each
write is a round trip of milliseconds, so writes go to a few threads and the
packing goes on; whoever is about to make them reachable (a journal entry, a
commit record, an index that reads may follow) calls :meth:`Uploads.wait`
first. A failed write raises there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any

from hangar._helper import submit_or_none

__all__ = ["Uploads"]

_THREADS = 4  # writes in flight at once (network waits, not CPU)

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _shared_pool() -> ThreadPoolExecutor:
    """One pool per process, made when first needed."""
    global _pool  # noqa: PLW0603 - one pool for the process, made lazily
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_THREADS, thread_name_prefix="hangar-upload")
        return _pool


class Uploads:
    """The writes one writer has started and not yet waited for.

    ``in_flight=False`` (a local store, where a write costs less than handing
    it to a thread) runs each write at once, in the caller's thread.
    """

    def __init__(self, in_flight: bool = True) -> None:
        self._in_flight = in_flight
        self._pending: list[Future[Any]] = []

    def start(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the upload threads (or now, without ``in_flight``)."""
        if not self._in_flight:
            fn(*args)
            return
        future = submit_or_none(_shared_pool(), fn, *args)
        if future is None:  # the interpreter is shutting down (a writer closed at exit)
            fn(*args)
            return
        self._pending.append(future)

    def wait(self) -> None:
        """Return when every write started has finished; raise the first that failed.

        After a failure the other writes are still waited for, so nothing
        is left running behind the caller's back.
        """
        pending, self._pending = self._pending, []
        if not pending:
            return
        done, _ = wait(pending, return_when=FIRST_EXCEPTION)
        failed = next((f for f in done if f.exception() is not None), None)
        if failed is None:
            return
        wait(pending)
        raise failed.exception()  # type: ignore[misc]

    def drain(self) -> None:
        """Wait for every write started, ignoring failures (the caller is failing already)."""
        pending, self._pending = self._pending, []
        wait(pending)
