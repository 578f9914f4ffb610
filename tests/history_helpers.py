"""Helpers the history tests share: a repository anywhere, one int64[2] column ``x``."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from hangar import Repository


def new_repo(where: Any = None) -> Repository:
    """A fresh repository: at a ``(url, storage_options)`` pair, a store, or in memory."""
    if isinstance(where, tuple):
        repo = Repository(where[0], exists=False, storage_options=where[1])
    else:
        repo = Repository(where or f"memory://hist-{uuid.uuid4().hex}", exists=False)
    repo.init("Tester", "t@example.com", remove_old=True)
    return repo


def v(n: int) -> np.ndarray:
    """The sample standing for ``n``."""
    return np.full(2, n, np.int64)


def change(repo: Repository, branch: str, sets: dict[Any, int], dels: tuple[Any, ...] = (),
           msg: str = "c") -> str:  # fmt: skip
    """Commit ``x[k] = v(n)`` for ``sets`` and ``del x[k]`` for ``dels`` on ``branch``."""
    co = repo.checkout(write=True, branch=branch)
    try:
        col = co.columns.get("x") or co.add_ndarray_column("x", prototype=v(0))
        for k, n in sets.items():
            col[k] = v(n)
        for k in dels:
            del col[k]
        return co.commit(msg)
    finally:
        co.close()


def contents(repo: Repository, branch: str = "master", column: str = "x") -> dict[Any, int]:
    """``{key: n}`` of a flat column at a branch head."""
    co = repo.checkout(branch=branch)
    try:
        return {k: int(a[0]) for k, a in co[column].items()}
    finally:
        co.close()
