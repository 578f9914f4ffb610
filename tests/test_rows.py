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
