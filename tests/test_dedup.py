"""Identical samples of one with-block are stored once, and read back as themselves."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hangar import Repository
from hangar.columns._dedup import RowDedup
from hangar.columns._engine import ColumnEngine
from hangar.exceptions import HangarError
from hangar.format.sample_digest import SampleDigest
from hangar.format.staging import JournalEntry
from hangar.replay import replay_entry
from history_helpers import new_repo

N_DISTINCT = 300
N = 12_000  # 784-byte samples: more than two pages (chunks) of a with-block


def distinct(n: int = N_DISTINCT) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (n, 784), dtype=np.uint8)


def chunk_bytes(repo: Repository) -> int:
    store = repo._store
    return sum(len(store.get(k)) for k in store.list("chunks"))


def test_repeats_are_stored_once_and_read_back(repo_location: tuple[str, dict[str, Any]]) -> None:
    repo = new_repo(repo_location)
    base = distinct()
    pick = np.random.default_rng(2).integers(0, N_DISTINCT, N)
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("img", prototype=base[0])
    with col:
        for i, p in enumerate(pick):
            col[i] = base[p]

    def check(c: Any) -> None:
        assert len(c) == N
        for i in (0, 1, 5_000, 6_000, N - 1):
            assert np.array_equal(c[i], base[pick[i]]), i
        got = dict(c.items())
        assert all(np.array_equal(got[i], base[p]) for i, p in enumerate(pick))
        # a value from a scan is the caller's own array, even where samples share bytes
        twin = int(np.flatnonzero(pick == pick[0])[1])
        got[0][:] = 0
        assert np.array_equal(got[twin], base[pick[0]])

    check(col)
    # incompressible samples: every distinct one is stored once, no repeat is
    stored = chunk_bytes(repo)
    assert stored < 1.1 * N_DISTINCT * 784, stored
    co.close()
    co = repo.checkout(write=True)  # the journal's repeats are replayed
    check(co["img"])
    co.commit("repeats")
    co.close()
    check(repo.checkout()["img"])
    assert repo.verify().ok


def test_same_digest_different_bytes_are_both_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """A digest collision (forced here) never makes two different samples share bytes."""
    repo = new_repo()
    scheme = repo._sample_digest
    collide = SampleDigest(scheme.name, scheme._new, lambda rows: bytes(8 * len(rows)))
    monkeypatch.setattr(Repository, "_sample_digest", property(lambda self: collide))
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("f", shape=(64,), dtype=np.float32)
    zero, minus_zero = np.zeros(64, np.float32), np.full(64, -0.0, np.float32)
    with col:
        col[0] = zero
        col[1] = minus_zero  # equal values, different bytes
        col[2] = zero  # a true repeat
        col[3] = np.ones(64, np.float32)
    co.commit("c")
    co.close()
    r = repo.checkout()["f"]
    assert np.signbit(r[1]).all()
    assert not np.signbit(r[0]).any()
    assert not np.signbit(r[2]).any()
    assert r[3].tolist() == [1.0] * 64


def _d(name: str) -> bytes:
    return name.encode().ljust(8, b"_")


def test_row_dedup_pairs_point_at_packed_rows_of_any_page() -> None:
    d = RowDedup()
    page1 = np.array([[1, 1], [2, 2], [1, 1]], np.uint8)
    fresh, same = d.split(b"".join([_d("a"), _d("b"), _d("a")]), page1)
    assert fresh is not None
    assert fresh.tolist() == [0, 1]
    assert same.tolist() == [[2, 0]]
    page2 = np.array([[3, 3], [2, 2], [9, 9]], np.uint8)
    # row 5: digest of row 0, other bytes
    fresh, same = d.split(b"".join([_d("c"), _d("b"), _d("a")]), page2)
    assert fresh is not None
    assert fresh.tolist() == [0, 2]
    assert same.tolist() == [[4, 1]]
    fresh, same = d.split(b"".join([_d("x")]), np.array([[7, 7]], np.uint8))
    assert fresh is None
    assert same.tolist() == []
    with pytest.raises(ValueError, match="8-byte"):
        d.split(b"".join([b"short"]), np.array([[7, 7]], np.uint8))


def _reference_split(pages: list[tuple[list[bytes], np.ndarray[Any, Any]]]) -> list[Any]:
    """What RowDedup must answer: a repeat is a row with an earlier row's digest and bytes,
    compared against the first row that had the digest."""
    first: dict[bytes, int] = {}
    all_rows: list[bytes] = []
    out = []
    for digests, rows in pages:
        start = len(all_rows)
        keep, pairs = [], []
        for j, (dig, row) in enumerate(zip(digests, rows, strict=True)):
            i = start + j
            all_rows.append(row.tobytes())
            f = first.setdefault(dig, i)
            if f != i and all_rows[f] == row.tobytes():
                pairs.append([i, f])
            else:
                keep.append(j)
        out.append((None if len(keep) == len(rows) else keep, pairs))
    return out


@pytest.mark.parametrize("width", [2, 16, 13], ids=["bytes", "words", "odd"])
@pytest.mark.parametrize("seed", range(20))
def test_row_dedup_matches_a_plain_dict_over_pages(seed: int, width: int) -> None:
    """Random pages with repeats across pages and forced digest collisions; rows whose
    bytes differ only in their first or last byte (compared 8 bytes at a time when the
    row size allows)."""
    rng = np.random.default_rng(seed)
    pages = []
    for _ in range(rng.integers(1, 6)):
        n = int(rng.integers(0, 40))
        rows = np.zeros((n, width), np.uint8)
        rows[:, 0], rows[:, -1] = rng.integers(0, 3, (2, n))  # 9 contents: many repeats
        # the digest of a row is its content, except contents 0 and 1 share one (a collision)
        digests = [_d(str(max(1, 3 * int(r[0]) + int(r[-1])))) for r in rows]
        pages.append((digests, rows))
    d = RowDedup()
    got = []
    for digests, rows in pages:
        fresh, same = d.split(b"".join(digests), rows)
        # every row kept (a candidate repeat that was not one): the same as None
        everything = fresh is None or fresh.tolist() == list(range(len(rows)))
        got.append((None if everything else fresh.tolist(), same.tolist()))
    assert got == _reference_split(pages)


def _engine_for_replay() -> tuple[dict[str, ColumnEngine], Any]:
    repo = new_repo()
    co = repo.checkout(write=True)
    co.add_ndarray_column("x", shape=(2,), dtype=np.int64)
    staging = co._staging
    return staging.columns, staging


@pytest.mark.parametrize(
    ("same", "ok"),
    [([[1, 0]], True), ([[1, 1]], False), ([[0, 1]], False), ([[5, 0]], False), ([["a"]], False)],
)
def test_journal_repeats_are_checked_on_replay(same: list[Any], ok: bool) -> None:
    columns, staging = _engine_for_replay()
    run = ["c" * 40, 0, 10, "0" * 16, 0, 1, 16]
    op = ["setruns", "x", [0, 1], None, "00" * 16, None, [run], same]
    entry = JournalEntry([op])
    if ok:
        replay_entry(entry, columns, staging._new_engine, "master")
        assert columns["x"].index[1].location == columns["x"].index[0].location
    else:
        with pytest.raises(HangarError, match="malformed"):
            replay_entry(entry, columns, staging._new_engine, "master")


def test_unknown_journal_operations_are_refused() -> None:
    columns, staging = _engine_for_replay()
    with pytest.raises(HangarError, match="unknown operation 'setlater'"):
        replay_entry(JournalEntry([["setlater", "x"]]), columns, staging._new_engine, "master")


def test_adjacent_repeats_from_a_scan_are_separate_arrays(
    repo_location: tuple[str, dict[str, Any]],
) -> None:
    """Keys next to each other whose samples are stored once (one row of one block) are
    handed out by a scan as two arrays, not one array twice."""
    repo = new_repo(repo_location)
    a, b = distinct(2)
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("img", prototype=a)
    with col:
        for i, value in enumerate([a, a, b, a, b, b]):
            col[i] = value
    for c in (col, co["img"]):  # staged (read_many) ...
        got = dict(c.items())
        got[0][:] = 0
        got[2][:] = 0
        assert np.array_equal(got[1], a)
        assert np.array_equal(got[3], a)
        assert np.array_equal(got[4], b)
        assert [got[i] is got[j] for i, j in ((0, 1), (4, 5))] == [False, False]
    co.commit("repeats")
    co.close()
    r = repo.checkout()  # ... and committed (a column-wise scan)
    got = dict(r["img"].items())
    got[0][:] = 0
    assert np.array_equal(got[1], a)
    r.close()
