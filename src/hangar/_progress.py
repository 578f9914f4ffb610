"""Progress bars for long work (commits and merges that write many manifest segments).

A bar goes to stderr only once its work has run for :data:`DELAY` seconds, so
the common, short commit prints nothing. By default it is shown only when
stderr is a terminal (tqdm's rule); ``HANGAR_PROGRESS=0`` turns bars off
everywhere and ``HANGAR_PROGRESS=1`` shows them on any stderr (a log file, a
notebook). :meth:`hangar.Repository.verify` has its own ``progress``
argument.
"""

from __future__ import annotations

import os
from typing import Any

from tqdm.auto import tqdm

__all__ = ["DELAY", "progress"]

#: seconds of work before a bar appears
DELAY = 2.0


def _disable() -> bool | None:
    setting = os.environ.get("HANGAR_PROGRESS", "").strip().lower()
    if setting in ("0", "false", "no", "off"):
        return True
    if setting in ("1", "true", "yes", "on"):
        return False
    return None  # tqdm's default: a bar only on a terminal


def progress(desc: str, unit: str) -> Any:
    """A bar counting ``unit``s of work (no total known up front), removed when done."""
    return tqdm(desc=desc, unit=unit, delay=DELAY, leave=False, disable=_disable())
