"""Keep a forked child from breaking its parent's S3 and GCS connections.

fsspec runs its clients (s3fs, gcsfs) on one event loop in a thread. A fork
copies the loop object but not the thread, and the copy shares the parent's
epoll instance: an epoll file descriptor refers to one kernel object in both
processes. When the child lets go of a file system it inherited (a store
used before the fork, remade in the child; a data loader's worker), aiohttp
closes the pooled connections of that file system's session (its
connector's ``__del__``), and closing a connection unregisters its socket
from that shared epoll. The parent's loop still counts the socket as
registered, so its next request on that pooled connection waits forever for
a reply it is never told about.

:func:`install` registers fork hooks that give the inherited loop, in the
child only, a selector of its own: whatever the child closes then touches
nothing of the parent's. The child's own requests go through a new loop
(fsspec makes one after a fork), so they are unaffected.
"""

from __future__ import annotations

import os
import selectors
import sys
from typing import Any

__all__ = ["install"]

_installed = False
_at_fork: list[Any] = [None]  # fsspec's loop when the process forked


def _remember_loop() -> None:
    asyn = sys.modules.get("fsspec.asyn")
    _at_fork[0] = asyn.loop[0] if asyn is not None else None


def _detach_loop() -> None:
    loop, _at_fork[0] = _at_fork[0], None
    if loop is not None and hasattr(loop, "_selector"):
        # asyncio's selector loops keep theirs there; the parent's epoll stays the parent's
        loop._selector = selectors.DefaultSelector()


def _forget_loop() -> None:
    _at_fork[0] = None


def install() -> None:
    """Register the fork hooks (once per process; where ``os.register_at_fork`` exists)."""
    global _installed  # noqa: PLW0603 - one registration per process
    if _installed or not hasattr(os, "register_at_fork"):
        return
    os.register_at_fork(
        before=_remember_loop, after_in_child=_detach_loop, after_in_parent=_forget_loop
    )
    _installed = True
