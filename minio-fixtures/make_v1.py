"""Make the golden repository of on-store format version 1 (``minio-fixtures/v1/store``).

Run once, by hand, with the hangar version that introduced format 1; the
result is committed and never regenerated. ``tests/test_golden.py`` uploads
it into a real bucket and checks that this hangar reads exactly
:func:`expected` back from it.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
STORE = HERE / "v1" / "store"
MESSAGES = ["first: four columns", "second: changes in every column"]


def expected() -> dict[str, dict[Any, Any]]:
    """The repository's content at the head of master, column -> key -> value."""
    rng = np.random.default_rng(20261125)
    images = {i: rng.integers(0, 255, (4, 4), dtype=np.uint8) for i in range(30)}
    images["str-key"] = np.full((4, 4), 7, np.uint8)
    images[3] = np.zeros((4, 4), np.uint8)  # changed in the second commit
    del images[5]  # deleted in the second commit
    nested = {
        f"s{i}": {j: rng.standard_normal((j + 1, 2)).astype(np.float32) for j in range(3)}
        for i in range(5)
    }
    words = {i: f"word {i} ünïcode" for i in range(10)}
    blobs = {"a": {0: b"\x00\x01", "x": bytes(range(50))}, 1: {1: b"raw"}}
    return {"images": images, "nested_var": nested, "words": words, "blobs": blobs}


def main() -> None:
    sys.path.insert(0, str(HERE.parent / "src"))
    from hangar import Repository
    from hangar.store import open_store

    shutil.rmtree(STORE, ignore_errors=True)
    repo = Repository(open_store(STORE), exists=False)
    repo.init("Golden Fixture", "golden@example.com")
    want = expected()
    co = repo.checkout(write=True)
    img = co.add_ndarray_column("images", shape=(4, 4), dtype=np.uint8)
    nv = co.add_ndarray_column("nested_var", shape=(3, 2), dtype=np.float32,
                               variable_shape=True, contains_subsamples=True)  # fmt: skip
    w = co.add_str_column("words")
    b = co.add_bytes_column("blobs", contains_subsamples=True)
    rng = np.random.default_rng(20261125)
    first_images = {i: rng.integers(0, 255, (4, 4), dtype=np.uint8) for i in range(30)}
    with img, nv, w, b:
        for k, v in first_images.items():
            img[k] = v
        for k, subs in want["nested_var"].items():
            nv[k] = subs
        for k, v in want["words"].items():
            w[k] = v
    b["a"] = {0: b"\x00\x01"}
    co.commit(MESSAGES[0])
    img[3] = want["images"][3]
    img["str-key"] = want["images"]["str-key"]
    del img[5]
    b["a"]["x"] = want["blobs"]["a"]["x"]
    b[1] = want["blobs"][1]
    co.commit(MESSAGES[1])
    co.close()
    print(f"wrote {STORE}")


if __name__ == "__main__":
    main()
