"""Read-ahead of single-sample reads on object stores (``Repository(read_ahead_bytes=)``).

The first read that misses in a chunk fetches its block alone; the second,
in another block of that chunk, fetches the chunk's start in its one ranged
GET, and later reads in that chunk, and scans of it, need no request.
Against the real S3 and GCS servers, with request counts (never timings).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hangar import Repository
from hangar.format.chunks import READ_AHEAD_BYTES
from hangar.format.manifest import decode_segment
from hangar.format.names import manifest_key
from hangar.format.schema import BLOCK_BYTES, REMOTE_BLOCK_BYTES
from hangar.store import open_store
from hangar.testing.counting import CountingStore

N = 6000  # random (incompressible) images: two chunks, 16 + 3 blocks


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(11).integers(0, 255, (N, 784), dtype=np.uint8)


def remote(request: pytest.FixtureRequest, kind: str) -> tuple[str, dict[str, Any]]:
    server = request.getfixturevalue("seaweedfs" if kind == "s3" else "fake_gcs")
    scheme = "s3" if kind == "s3" else "gs"
    return f"{scheme}://{server.create_bucket()}/r", server.storage_options()


def written(url: str, opts: dict[str, Any], images: np.ndarray) -> CountingStore:
    counting = CountingStore(open_store(url, **opts))
    repo = Repository(counting, exists=False)
    repo.init("Ann", "ann@example.com")
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("images", prototype=images[0])
    with col:
        for i in range(len(images)):
            col[i] = images[i]
    co.commit("images")
    co.close()
    return counting


def chunks_of(repo: Repository) -> dict[str, list[tuple[int, int]]]:
    """(key, block offset) of every sample of the images column, by chunk."""
    rec = repo._read_commit(repo._branch_head("master"))
    out: dict[str, list[tuple[int, int]]] = {}
    for seg in rec.columns["images"].segments:
        for key, _, entry in decode_segment(repo._store.get(manifest_key(seg.digest))):
            out.setdefault(entry.location.chunk, []).append((key, entry.location.block_offset))
    return out


@pytest.mark.parametrize("kind", ["s3", "gcs"])
def test_a_chunk_is_read_once_then_every_read_in_it_is_free(
    request: pytest.FixtureRequest, kind: str, images: np.ndarray
) -> None:
    counting = written(*remote(request, kind), images)
    repo = Repository(counting)
    chunks = chunks_of(repo)
    assert len(chunks) == 2
    assert len({(ch, off) for ch, places in chunks.items() for _, off in places}) > 10
    r = repo.checkout()
    c = r["images"]
    assert np.array_equal(c[0], images[0])  # loads the manifest
    counting.reset()
    by_block = {(ch, off): key for ch, places in chunks.items() for key, off in places}
    for ch in chunks:  # one read in each chunk: its block alone
        key = next(k for (c2, _), k in by_block.items() if c2 == ch and k != 0)
        assert np.array_equal(c[key], images[key])
    assert dict(counting.calls) == {"get_range": 1}  # chunk 0's block came with c[0]
    assert counting.bytes_read < REMOTE_BLOCK_BYTES
    counting.reset()
    order = np.random.default_rng(3).permutation(N)[:600].tolist()
    for k in order:
        before = sum(counting.calls.values())
        assert np.array_equal(c[k], images[k])
        assert sum(counting.calls.values()) - before <= 1  # at most one request a read
    # the second block needed in a chunk brings the whole chunk (cut at its end)
    assert dict(counting.calls) == {"get_range": 2}
    read = counting.bytes_read
    assert read == sum(len(counting.inner.get(f"chunks/{k[:2]}/{k}")) for k in chunks)
    counting.reset()
    assert sum(1 for _ in c.items()) == N  # a scan of chunks read ahead reads nothing
    assert counting.keys_of(prefix="chunks/") == []
    r.close()


def test_read_ahead_stops_when_its_budget_is_spent(seaweedfs: Any, images: np.ndarray) -> None:
    url, opts = f"s3://{seaweedfs.create_bucket()}/r", seaweedfs.storage_options()
    counting = written(url, opts, images)
    repo = Repository(counting, read_ahead_bytes=1)  # room for one chunk
    chunks = chunks_of(repo)
    small, big = sorted(chunks, key=lambda ch: len(chunks[ch]))
    c = repo.checkout()["images"]
    firsts = list({off: key for key, off in chunks[small]}.values())  # one per block
    counting.reset()
    for k in firsts[:2]:
        assert np.array_equal(c[k], images[k])
    assert counting.calls["get_range"] == 2
    assert counting.bytes_read > REMOTE_BLOCK_BYTES  # a block, then the whole chunk
    keys = list({off: key for key, off in chunks[big]}.values())  # one per block
    counting.reset()
    for k in keys:
        assert np.array_equal(c[k], images[k])
    assert dict(counting.calls) == {"get_range": len(keys)}  # a block each, no more
    assert counting.bytes_read < len(keys) * REMOTE_BLOCK_BYTES


def test_local_and_memory_stores_never_read_ahead(tmp_path: Path, images: np.ndarray) -> None:
    for url in (str(tmp_path / "repo"), "memory://read-ahead-test"):
        counting = written(url, {}, images[:2000])
        repo = Repository(counting, read_ahead_bytes=READ_AHEAD_BYTES)
        c = repo.checkout()["images"]
        c[0]
        counting.reset()
        per_block = BLOCK_BYTES // 784
        keys = list(range(per_block + 3, 2000, per_block))  # one per block
        for k in keys:
            assert np.array_equal(c[k], images[k])
        assert dict(counting.calls) == {"get_range": len(keys)}
        assert counting.bytes_read < len(keys) * BLOCK_BYTES


def test_read_ahead_bytes_must_not_be_negative(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="read_ahead_bytes"):
        Repository(str(tmp_path), exists=False, read_ahead_bytes=-1)


def _read_in_threads(col: Any, images: np.ndarray, threads: int) -> list[BaseException]:
    """``threads`` threads each read 300 random keys of ``col``; what they raised."""
    errors: list[BaseException] = []

    def reader(seed: int) -> None:
        try:
            for k in np.random.default_rng(seed).integers(0, N, 300).tolist():
                if not np.array_equal(col[k], images[k]):
                    raise AssertionError(f"key {k} read wrong")
        except BaseException as exc:
            errors.append(exc)

    running = [threading.Thread(target=reader, args=(s,)) for s in range(threads)]
    for t in running:
        t.start()
    for t in running:
        t.join()
    return errors


def test_threads_reading_one_checkout_while_it_reads_ahead(
    seaweedfs: Any, images: np.ndarray
) -> None:
    url, opts = f"s3://{seaweedfs.create_bucket()}/r", seaweedfs.storage_options()
    counting = written(url, opts, images)
    for _ in range(3):  # fresh checkouts: the threads race for the first misses
        col = Repository(counting).checkout()["images"]
        counting.reset()
        assert _read_in_threads(col, images, 4) == []
        # a block, then the chunk, per chunk and per thread that raced for it, at most
        assert 2 <= counting.calls["get_range"] <= 2 * 2 * 4
