"""A with-block whose end fails, and column objects held across resets.

A with-block's writes reach the store when the block ends. If that fails
(the store refuses a chunk or the journal entry), the error reaches the
caller and the writer goes back to what the journal holds: everything staged
before the block, nothing of it. Column objects the user holds stay usable
through that, and through resets, merges and rebuilt commits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hangar import Repository
from hangar.exceptions import SampleKeyError, StagingBrokenError


def v(i: int) -> np.ndarray:
    return np.full(160, i % 251, np.uint8)


def make_repo(location: tuple[str, dict[str, Any]]) -> Repository:
    url, opts = location
    repo = Repository(url, exists=False, storage_options=opts)
    repo.init("t", "t@example.com", remove_old=True)
    return repo


class Refuse:
    """Make the writer's store refuse puts (or appends) of keys with a prefix, once armed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, store: Any, method: str, prefix: str):
        self.real = getattr(store, method)
        self.prefix = prefix
        self.armed = True
        monkeypatch.setattr(store, method, self)

    def __call__(self, key: str, data: Any) -> Any:
        if self.armed and key.startswith(self.prefix):
            raise OSError(28, "No space left on device (injected)")
        return self.real(key, data)


def values(col: Any) -> dict[Any, int]:
    return {k: int(a[0]) for k, a in col.items()}


@pytest.mark.parametrize("fail_on", ["chunks/", "staging/"])
def test_a_failed_block_end_leaves_what_was_stored_before_it(
    repo_location: tuple[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch, fail_on: str
) -> None:
    repo = make_repo(repo_location)
    co = repo.checkout(write=True)
    images = co.add_ndarray_column("images", prototype=v(0))
    labels = co.add_ndarray_column("labels", prototype=np.zeros(1, np.int64))
    for i in range(5):
        images[i] = v(i)
    co.commit("five")
    images[1] = v(100)  # staged before the block: kept
    labels[0] = np.array([7])
    store = co._staging.store
    method = "append" if fail_on == "staging/" and store.capabilities.append else "put"
    refuse = Refuse(monkeypatch, store, method, fail_on)

    def block() -> None:
        with images, labels:
            for i in range(50):
                images[i] = v(200 + i)
                labels[i] = np.array([i])
            assert int(images[3][0]) == 203  # inside the block: the block's value
            del images[4]

    with pytest.raises(OSError, match="injected") as info:
        block()
    assert any("were not stored" in note for note in info.value.__notes__)
    refuse.armed = False
    want_images = {0: 0, 1: 100, 2: 2, 3: 3, 4: 4}
    assert values(images) == want_images  # the objects held before the block
    assert values(labels) == {0: 7}
    assert values(co["images"]) == want_images
    with images:  # the writer works on
        images[9] = v(9)
    co.commit("after")
    co.close()
    r = repo.checkout()
    assert values(r["images"]) == {**want_images, 9: 9}
    assert values(r["labels"]) == {0: 7}
    r.close()


def test_a_failed_append_leaves_no_torn_frame_before_later_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed append may write part of a frame; what is journaled after it must not
    sit behind that frame in the same log (readers stop there)."""
    repo = make_repo((str(tmp_path / "repo"), {}))
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("x", prototype=v(0))
    col[0] = v(1)
    store = co._staging.store
    real_append = store.append

    def torn_append(key: str, data: Any) -> None:
        real_append(key, bytes(data)[: len(data) // 2])
        raise OSError(28, "No space left on device (injected)")

    monkeypatch.setattr(store, "append", torn_append)
    with pytest.raises(OSError, match="injected"):
        col[1] = v(2)
    monkeypatch.setattr(store, "append", real_append)
    assert 1 not in col
    col[2] = v(3)  # returned: must survive a reopen
    co.close()
    co = repo.checkout(write=True)
    assert values(co["x"]) == {0: 1, 2: 3}
    co.close()


def test_when_the_journal_cannot_be_read_back_the_writer_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = make_repo(("memory://broken", {}))
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("x", prototype=v(0))
    col[0] = v(1)
    co.commit("one")
    col[1] = v(2)  # staged, in the journal
    store = co._staging.store
    refuse = Refuse(monkeypatch, store, "put", "chunks/")
    real_list = store.list

    def no_list(prefix: str) -> Any:
        raise OSError("store unreachable (injected)")

    monkeypatch.setattr(store, "list", no_list)

    def block() -> None:
        with col:
            col[5] = v(5)

    with pytest.raises(OSError, match="injected") as info:
        block()
    assert any("reading the staging journal back failed" in n for n in info.value.__notes__)
    monkeypatch.setattr(store, "list", real_list)
    refuse.armed = False
    assert values(col) == {0: 1}  # the base commit, not a half state
    with pytest.raises(StagingBrokenError, match="open a new writer checkout"):
        col[7] = v(7)
    with pytest.raises(StagingBrokenError):
        co.commit("no")
    with pytest.raises(StagingBrokenError), col:
        pass
    co.close()
    co = repo.checkout(write=True)  # the staged write comes back from the journal
    assert values(co["x"]) == {0: 1, 1: 2}
    co.reset_staging_area()
    co["x"][3] = v(3)
    co.commit("reset, then three")
    co.close()
    assert values(repo.checkout()["x"]) == {0: 1, 3: 3}


def test_column_objects_held_across_a_reset_stay_current() -> None:
    repo = make_repo(("memory://held", {}))
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("x", prototype=v(0))
    col[0] = v(1)
    co.commit("one")
    col[1] = v(2)
    co.reset_staging_area()
    assert 1 not in col
    assert len(col) == 1
    col[2] = v(3)  # lands in the live staging area
    assert co.diff.status() == "DIRTY"
    co.commit("two")
    co.close()
    assert values(repo.checkout()["x"]) == {0: 1, 2: 3}


def test_a_column_that_is_gone_says_so_and_comes_back_when_added_again() -> None:
    repo = make_repo(("memory://gone", {}))
    co = repo.checkout(write=True)
    kept = co.add_ndarray_column("kept", prototype=v(0))
    kept[0] = v(0)
    co.commit("one")
    new = co.add_ndarray_column("new", prototype=v(0))
    new[0] = v(1)
    co.reset_staging_area()  # "new" was never committed
    with pytest.raises(SampleKeyError, match="no longer in this checkout"):
        new[0]
    with pytest.raises(SampleKeyError, match="no longer in this checkout"):
        new[1] = v(1)
    again = co.add_ndarray_column("new", prototype=v(0))
    new[2] = v(2)  # the same column again: the held object works
    assert values(again) == {2: 2}
    co.columns.delete("kept")
    with pytest.raises(SampleKeyError, match="no longer in this checkout"):
        kept[0]
    with pytest.raises(SampleKeyError, match="no longer in this checkout"):
        kept.get(0)  # not the default: the column is gone, not the key
    co.commit("two")
    back = co.add_ndarray_column("kept", prototype=v(0))
    assert len(kept) == 0  # dropped and added again: a new, empty column
    kept[5] = v(5)
    assert values(back) == {5: 5}
    co.commit("three")
    co.close()
    r = repo.checkout()
    assert sorted(r.columns) == ["kept", "new"]
    assert values(r["new"]) == {2: 2}
    assert values(r["kept"]) == {5: 5}
    r.close()


def test_a_commit_whose_journal_cleanup_fails_still_lands_and_warns(
    repo_location: tuple[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleting the committed journal entries is cleanup: the new staging state already
    says they are dead. A failed delete warns, and the next commit or reset removes them."""
    repo = make_repo(repo_location)
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("x", prototype=v(0))
    for i in range(3):
        col[i] = v(i)
    store = co._staging.store
    real_delete = store.delete

    def refuse(key: str) -> None:
        raise OSError("store unreachable (injected)")

    monkeypatch.setattr(store, "delete", refuse)
    with pytest.warns(RuntimeWarning, match="removing dead staging journal entries failed"):
        first = co.commit("three")
    assert first.startswith("a=")
    assert repo.log(return_contents=True)["head"] == first
    left = list(store.list("staging/heads/master/journal"))
    assert left  # the dead entries are still there...
    co.close()
    co = repo.checkout(write=True)  # ...and ignored: nothing is staged
    assert co.diff.status() == "CLEAN"
    assert {k: int(a[0]) for k, a in co["x"].items()} == {0: 0, 1: 1, 2: 2}
    monkeypatch.setattr(store, "delete", real_delete)
    co["x"][3] = v(3)
    co.commit("four")  # the next reset removes them all
    assert not set(left) & set(store.list("staging/heads/master/journal"))
    co.close()


@pytest.mark.parametrize("failing", ["digest", "store"])
def test_a_page_failing_while_another_is_encoded_stops_the_encoding(
    monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """Pages that fill during a block are started on the helper thread
    (hangar.packing.RowPacker.start_background), and stored at the block's end while the
    helper may still encode a later one: if a digest or a store fails, the encoding under
    way is waited for, and the block fails as any other, with that error."""
    import threading
    import time

    import hangar.format.chunks as chunks_module
    import hangar.staging as staging_module
    from hangar.format.sample_digest import SampleDigest

    for module in (staging_module, chunks_module):  # pages of 40 rows, blocks of 4
        monkeypatch.setattr(module, "uniform_layout", lambda *a: (4, 40))
    repo = make_repo((f"memory://pages-{__import__('uuid').uuid4().hex}", {}))
    co = repo.checkout(write=True)
    images = co.add_ndarray_column("images", prototype=v(0))
    images[0] = v(0)
    co.commit("one")
    encoded: list[str] = []
    real_encode, real_rows = chunks_module._encode_rows, SampleDigest.rows

    def slow_encode(encode: Any, rows: Any) -> Any:
        encoded.append(threading.current_thread().name)
        time.sleep(0.002)
        return real_encode(encode, rows)

    pages = []

    def rows(self: Any, data: Any) -> bytes:
        pages.append(len(data))
        if len(pages) == 3:
            raise MemoryError("injected")
        return real_rows(self, data)

    monkeypatch.setattr(chunks_module, "_encode_rows", slow_encode)
    if failing == "digest":  # the third page's digest, while the second is encoded
        monkeypatch.setattr(SampleDigest, "rows", rows)
    else:  # the second page's chunk, while the third is encoded
        store = co._staging.store
        real_put, chunks = store.put, []

        def put(key: str, data: Any) -> None:
            if key.startswith("chunks/"):
                chunks.append(key)
                if len(chunks) == 2:
                    raise MemoryError("injected")
            real_put(key, data)

        monkeypatch.setattr(store, "put", put)
    with pytest.raises(MemoryError, match="injected"), images:  # noqa: PT012
        for i in range(200):  # five pages
            images[i] = v(1000 + i)
    done = len(encoded)
    time.sleep(0.05)
    assert len(encoded) == done  # nothing is still encoding behind the caller
    assert "hangar-helper_0" in encoded  # the helper was encoding a page
    monkeypatch.undo()
    assert values(images) == {0: 0}
    with images:
        images[5] = v(5)
    co.commit("two")
    co.close()
    assert values(repo.checkout()["images"]) == {0: 0, 5: 5}


def test_closing_a_writer_whose_open_block_cannot_be_stored_still_lets_the_branch_go(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """close() raises the block's error, and the checkout is closed and its lease released
    all the same: the next writer does not wait for the lease to expire."""
    repo = make_repo((f"memory://close-{__import__('uuid').uuid4().hex}", {}))
    co = repo.checkout(write=True)
    images = co.add_ndarray_column("images", prototype=v(0))
    images[0] = v(0)
    co.commit("one")
    Refuse(monkeypatch, co._staging.store, "put", "chunks/")
    images.__enter__()  # a block the caller never leaves
    for i in range(1, 50):
        images[i] = v(i)
    with pytest.raises(OSError, match="injected"):
        co.close()
    monkeypatch.undo()
    again = repo.checkout(write=True)  # at once: the lease was released
    assert values(again["images"]) == {0: 0}  # the block was not stored, the rest was
    again.close()
