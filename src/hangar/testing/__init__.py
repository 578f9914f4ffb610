"""Test helpers that ship with hangar: the store conformance suite and real test servers.

Importing this package needs pytest (``pip install hangar-cloud[test]``).
"""

from __future__ import annotations

from ._race import RaceResult, payload_for, run_race
from .store_tests import BAD_KEYS, StoreTests

__all__ = ["BAD_KEYS", "RaceResult", "StoreTests", "payload_for", "run_race"]
