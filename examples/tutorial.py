"""Hangar tutorial, part 1, on hangar-cloud: the main job.

The flow of the original Hangar tutorial ("Creating a repository and working
with data") on a local repository, with 60,000 MNIST-sized images (28x28
uint8) made from the 1,797 digit images that scikit-learn ships (upscaled,
shifted a pixel or two and repeated: no download), printing what the
tutorial prints, with timings.

Run it with ``pip install nox && nox -s tutorial`` or
``python examples/tutorial.py [PATH [N]]`` (default: a new temporary folder, 60,000 images).
"""

from __future__ import annotations

import sys
import tempfile
import time

import numpy as np

from hangar import Repository
from hangar.testing.datasets import mnist_like


def main(path: str, n: int = 60_000) -> None:
    t = time.perf_counter()
    trimgs, trlabels = mnist_like(n)
    print(f"made {len(trimgs)} MNIST-like images in {time.perf_counter() - t:.2f} s\n")

    repo = Repository(path=path, exists=False)
    repo.init(user_name="Rick Izzo", user_email="rick@tensorwerk.com", remove_old=True)

    co = repo.checkout(write=True)
    print(repr(co))
    print(repr(co.columns))

    train_col = co.add_ndarray_column(name="mnist_training_images", prototype=trimgs[0])
    print(repr(train_col))
    label_col = co.add_ndarray_column(
        name="mnist_training_labels", prototype=np.array([trlabels[0]])
    )

    # dict-style writes, one by one (each is in the staging area when the call returns)
    train_col["0"] = trimgs[0]
    train_col[51] = trimgs[51]
    co["mnist_training_images", 60] = trimgs[60]
    print("len(train_col) =", len(train_col))
    print("'hi' in train_col =", "hi" in train_col)
    print("'0' in train_col =", "0" in train_col)
    print("60 in train_col =", 60 in train_col)
    print("train_col['0'] matches:", np.array_equal(train_col["0"], trimgs[0]), "\n")

    # the fast path: a `with` block around the loop, then one commit
    t = time.perf_counter()
    with train_col, label_col:
        for idx, (img, label) in enumerate(zip(trimgs, trlabels, strict=True)):
            train_col[idx] = img
            label_col[idx] = np.array([label])
    digest = co.commit("first commit adding training images and labels")
    took = time.perf_counter() - t
    print(f"wrote and committed {len(trimgs)} images and labels in {took:.2f} s "
          f"({len(trimgs) / took:,.0f} samples/s)")  # fmt: skip
    print("commit:", digest, "\n")
    print(repr(co.columns))
    co.close()

    repo.log()
    print()
    repo.summary()
    print()

    co = repo.checkout()
    print(repr(co))
    col = co.columns["mnist_training_images"]
    t = time.perf_counter()
    with col:
        n = sum(1 for _ in col.items())
    took = time.perf_counter() - t
    print(f"read all {n} images with items() in {took:.2f} s ({n / took:,.0f} samples/s)")
    rng = np.random.default_rng(1)
    keys = rng.integers(0, len(trimgs), 5000).tolist()
    t = time.perf_counter()
    for k in keys:
        col[k]
    took = time.perf_counter() - t
    print(f"read 5000 random single samples in {took:.2f} s ({5000 / took:,.0f} samples/s)")
    assert all(np.array_equal(col[k], trimgs[k]) for k in keys[:100])
    print(f"repository size: {repo.size_human}")
    co.close()


if __name__ == "__main__":
    where = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="hangar-tutorial-")
    main(where, int(sys.argv[2]) if len(sys.argv) > 2 else 60_000)
