"""RowBuffer: the with-block buffer of fixed-shape rows (pages cut from slabs)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hangar.columns._rows import RowBuffer


@pytest.mark.parametrize("count", [0, 1, 63, 64, 65, 7 * 10, 40 * 10 + 3])
def test_rows_come_back_page_by_page_in_write_order(count: int) -> None:
    index: dict[Any, Any] = {}
    rows = RowBuffer(index, np.dtype(np.int32), (3,), page_rows=10)
    values = np.arange(3 * count, dtype=np.int32).reshape(count, 3)
    for i in range(count):
        rows.put(f"k{i}", values[i])
    pages = list(rows.live_pages())
    assert [k for keys, _ in pages for k in keys] == [f"k{i}" for i in range(count)]
    assert all(len(keys) <= 10 for keys, _ in pages)
    got = np.concatenate([data for _, data in pages]) if pages else values[:0]
    np.testing.assert_array_equal(got, values)
    assert index == {}  # writes do not touch the index until it is synced
    rows.sync()
    assert index == {f"k{i}": i for i in range(count)}
    rows.put("late", values[0] if count else np.zeros(3, np.int32))
    rows.sync()
    assert index["late"] == count
    for i in range(0, count, 7):
        np.testing.assert_array_equal(rows.row(i), values[i])


def test_pages_of_one_slab_do_not_share_rows() -> None:
    rows = RowBuffer({}, np.dtype(np.uint8), (4,), page_rows=5)
    for i in range(5 * 20):  # slabs of 1, 2, 4, 8, 16 pages
        rows.put(i, np.full(4, i, np.uint8))
    for keys, data in rows.live_pages():
        np.testing.assert_array_equal(data[:, 0], np.array(keys, np.uint8))


def test_a_key_written_again_keeps_its_last_row_only() -> None:
    index: dict[Any, Any] = {}
    rows = RowBuffer(index, np.dtype(np.int64), (1,), page_rows=4)
    for i in range(10):
        rows.put(i % 3, np.array([i]))
    rows.dirty = True
    pages = list(rows.live_pages())
    live = [(k, int(v[0])) for keys, data in pages for k, v in zip(keys, data, strict=True)]
    assert sorted(live) == [(0, 9), (1, 7), (2, 8)]


def test_full_pages_are_handed_on_while_every_key_is_new() -> None:
    """on_full hears of each page as it fills, with its rows (final: a key written again
    gets a new row), until a key repeats or the buffer is marked dirty."""
    index: dict[Any, Any] = {}
    told: list[tuple[int, list[Any], np.ndarray]] = []
    rows = RowBuffer(index, np.dtype(np.int64), (2,), page_rows=4,
                     on_full=lambda n, keys, data: told.append((n, keys, data)))  # fmt: skip
    for i in range(13):
        rows.put(i, np.array([i, -i]))
    assert [n for n, _, _ in told] == [0, 1, 2]  # the fourth page is not full
    for n, keys, data in told:
        assert keys == list(range(4 * n, 4 * n + 4))
        np.testing.assert_array_equal(data[:, 0], keys)
    for i in range(13, 16):
        rows.put(i - 13, np.array([0, 0]))  # keys 0-2 again: the fourth page is not clean
    rows.put(99, np.array([0, 0]))
    assert len(told) == 3
    for i in range(100, 108):
        rows.put(i, np.array([i, 0]))
    assert len(told) == 3  # and nothing after it


def test_a_dirty_buffer_hands_on_no_more_pages() -> None:
    told: list[int] = []
    rows = RowBuffer({}, np.dtype(np.uint8), (1,), page_rows=2,
                     on_full=lambda n, keys, data: told.append(n))  # fmt: skip
    for i in range(5):
        rows.put(i, np.array([i], np.uint8))
    rows.dirty = True  # a delete, or a write through the general path
    for i in range(5, 9):
        rows.put(i, np.array([i], np.uint8))
    assert told == [0, 1]


def test_pages_say_which_rows_are_live() -> None:
    index: dict[Any, Any] = {}
    rows = RowBuffer(index, np.dtype(np.int64), (1,), page_rows=3)
    for k in ["a", "b", "c", "a", "d", "b"]:
        rows.put(k, np.array([ord(k)]))
    del index  # the buffer syncs its own index
    pages = list(rows.pages())
    assert [(n, keys, live) for n, keys, _, live in pages] == [
        (0, ["a", "b", "c"], [2]),  # a and b were written again on page 1
        (1, ["a", "d", "b"], None),
    ]
