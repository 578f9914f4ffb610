"""Test helpers that ship with hangar: the store conformance suite and real test servers.

``StoreTests`` and ``BAD_KEYS`` need pytest (``pip install hangar-cloud[test]``)
and are imported on first use; :mod:`hangar.testing.servers` and the race
helpers do not need it.
"""

from __future__ import annotations

from typing import Any

from hangar.testing._race import RaceResult, payload_for, run_race

__all__ = ["BAD_KEYS", "RaceResult", "StoreTests", "payload_for", "run_race"]


def __getattr__(name: str) -> Any:
    if name in ("StoreTests", "BAD_KEYS"):
        from hangar.testing import store_tests

        return getattr(store_tests, name)
    raise AttributeError(f"module 'hangar.testing' has no attribute {name!r}")
