"""Make the golden repository of on-store format version 2 (``minio-fixtures/v2/store``).

Format 2 digests samples with XXH3-64 (``hangar.json`` names it:
``"sample_digest": "xxh3-64"``) instead of BLAKE2b-64, and its with-blocks
store repeated samples once (several manifest rows share one location).
The repository holds format 1's content and history (``make_v1.py``, same
steps) plus a third commit: a column written in one with-block where each
sample repeats one of three images.

Run once, by hand, with the hangar version that introduced format 2; the
result is committed and never regenerated. ``tests/test_golden.py`` uploads
it into a real bucket and checks that this hangar reads exactly
:func:`expected` back from it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
STORE = HERE / "v2" / "store"


def _v1() -> Any:
    spec = importlib.util.spec_from_file_location("make_v1", HERE / "make_v1.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MESSAGES = [*_v1().MESSAGES, "third: repeated images, stored once"]


def _patterns() -> np.ndarray:
    return np.random.default_rng(2).integers(0, 255, (3, 16, 16), dtype=np.uint8)


def expected() -> dict[str, dict[Any, Any]]:
    """The repository's content at the head of master, column -> key -> value."""
    want: dict[str, dict[Any, Any]] = _v1().expected()
    patterns = _patterns()
    want["repeats"] = {i: patterns[i % 3] for i in range(40)}
    return want


def main() -> None:
    v1 = _v1()
    v1.STORE = STORE  # format 1's two commits, written by this (format 2) hangar
    v1.main()
    sys.path.insert(0, str(HERE.parent / "src"))
    from hangar import Repository
    from hangar.store import open_store

    repo = Repository(open_store(STORE))
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("repeats", shape=(16, 16), dtype=np.uint8)
    with col:
        for k, v in expected()["repeats"].items():
            col[k] = v
    co.commit(MESSAGES[2])
    co.close()
    print(f"wrote {STORE}")


if __name__ == "__main__":
    main()
