"""Small, download-free data sets for examples, tests and benchmarks."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["mnist_like"]


def mnist_like(n: int = 60_000, seed: int = 0) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """``n`` MNIST-sized images (uint8[784]) and int64 labels, from scikit-learn's digits.

    The 1,797 8x8 digit images that scikit-learn ships are upscaled to 28x28,
    picked at random and shifted by up to two pixels, so the images are
    distinct, MNIST-like and need no download. Needs ``scikit-learn``.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    up = np.kron(digits.images, np.ones((3, 3)))  # 8x8 -> 24x24
    up = np.pad(up, ((0, 0), (2, 2), (2, 2)))  # -> 28x28
    base = (up * (255 / 16)).astype(np.uint8)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(base), n)
    shifts = rng.integers(-2, 3, (n, 2))
    imgs = np.empty((n, 28, 28), np.uint8)
    for i in range(n):
        imgs[i] = np.roll(base[pick[i]], tuple(shifts[i]), axis=(0, 1))
    return imgs.reshape(n, 784), digits.target[pick].astype(np.int64)
