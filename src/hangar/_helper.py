"""One helper thread per process, for CPU work that releases the GIL.

Compressing and hashing a block of samples release the GIL, so a second
core can take half of a chunk's blocks while the calling thread does the
other half (:func:`hangar.format.chunks.pack_uniform`). One thread is
enough for the two cores this targets; more would only queue.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["helper_thread"]

_pool: tuple[int, ThreadPoolExecutor] | None = None
_lock = threading.Lock()


def helper_thread() -> ThreadPoolExecutor | None:
    """The process's helper thread, made on first use; None on a single-core machine.

    A forked child gets its own (it has the parent's executor, not its thread).
    """
    global _pool  # noqa: PLW0603 - one helper per process, made lazily
    if (os.cpu_count() or 1) < 2:
        return None
    with _lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="hangar-helper"))
        return _pool[1]
