"""Version history at scale: the cost of a change, not of the dataset (issue 5).

A column of 1,000,000 uint8[16] samples, on local disk and on a SeaweedFS S3
server, measured through an instrumented store (requests and bytes) and a
clock:

- a commit that changes 10 samples: bytes and objects written, seconds
  (zarr side by side: the same 10 samples written into a 1M x 16 array with
  1,000-sample chunks);
- resolving the branch head and opening a checkout (and reading one
  sample) with 1, 100 and 10,000 commits of history: requests and seconds;
- diff and merge of two branches that each changed 100 keys: manifest
  segments read against segments that differ and segments in all;
- dedup: the same 1M samples written again: chunk bytes stored.

The long histories are written as commit records directly (what a commit
writes, minus the staging steps), so that setting up 10,000 commits does not
dominate the run; opening a checkout cannot tell them apart.

Run with ``nox -s bench`` or ``python bench/bench_history.py [--n N] [--no-s3]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import numpy as np
import zarr

from hangar import Repository
from hangar.format.commits import commit_id
from hangar.format.names import branch_ref, commit_key
from hangar.format.records import BranchRef
from hangar.store import open_store
from hangar.testing.counting import CountingStore
from hangar.testing.servers import SeaweedFSServer

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

WRITES = ("put", "put_if_absent", "replace_if_version")


@contextmanager
def measured(store: CountingStore) -> Iterator[dict[str, float]]:
    """Requests, bytes and seconds of the block, filled in on exit."""
    out: dict[str, float] = {}
    store.reset()
    t = time.perf_counter()
    yield out
    out["seconds"] = time.perf_counter() - t
    out["objects"] = sum(store.calls[op] for op in WRITES)
    out["requests"] = sum(store.calls.values())
    out["written"] = store.bytes_written
    out["read"] = store.bytes_read
    out["manifest_gets"] = len(store.keys_of("get", prefix="manifests/"))
    out["chunk_puts"] = len(store.keys_of("put", prefix="chunks/"))
    out["chunk_bytes"] = getattr(store, "chunk_bytes_written", 0)


class ChunkBytes(CountingStore):
    """A CountingStore that also adds up the bytes of chunk writes."""

    chunk_bytes_written = 0

    def reset(self) -> None:
        super().reset()
        self.chunk_bytes_written = 0

    def put(self, key: str, data: Any) -> Any:
        if key.startswith("chunks/"):
            self.chunk_bytes_written += len(data)
        return super().put(key, data)


def write_column(repo: Repository, data: np.ndarray, keys: Any, msg: str,
                 branch: str = "master") -> str:  # fmt: skip
    co = repo.checkout(write=True, branch=branch)
    col = co.columns.get("d") or co.add_ndarray_column("d", prototype=data[0])
    with col:
        for i, k in enumerate(keys):
            col[k] = data[i]
    cid = co.commit(msg)
    co.close()
    return cid


def grow_history(store: CountingStore, repo: Repository, total: int) -> None:
    """Extend master to ``total`` commits with commit records written directly."""
    head = repo._branch_head("master")
    assert head is not None
    rec = repo._read_commit(head)
    count = len(repo.log(return_contents=True)["order"])
    records: list[tuple[str, bytes]] = []
    for i in range(count, total):
        rec = replace(rec, parents=(head,), message=f"history {i}")
        data = rec.to_bytes()
        head = commit_id(data)
        records.append((head, data))
    inner = store.inner
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda r: inner.put(commit_key(r[0]), r[1]), records))
    data, version = inner.get_versioned(branch_ref("master"))
    ref = BranchRef.from_bytes(data)
    inner.replace_if_version(branch_ref("master"), BranchRef(head, ref.epoch).to_bytes(), version)


def zarr_ten(store: Any, data: np.ndarray, idx: np.ndarray) -> tuple[float, int]:
    """Seconds and bytes for zarr to write the same 10 samples into the full array."""
    arr = zarr.create_array(store, name="d", shape=data.shape, chunks=(1000, 16),
                            dtype="uint8", overwrite=True)  # fmt: skip
    arr[:] = data
    before = _files(store)
    t = time.perf_counter()
    for i in idx:
        arr[int(i)] = data[int(i)] ^ 0xFF
    seconds = time.perf_counter() - t
    after = _files(store)
    rewritten = sum(size for path, (mtime, size) in after.items()
                    if before.get(path, (None, 0))[0] != mtime)  # fmt: skip
    return seconds, rewritten if after else -1


def _files(store: Any) -> dict[str, tuple[int, int]]:
    """path -> (mtime, size) of a local zarr store's files (empty for remote stores)."""
    root = getattr(store, "root", None)
    if root is None:
        return {}
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            st = os.stat(os.path.join(d, f))
            out[os.path.join(d, f)] = (st.st_mtime_ns, st.st_size)
    return out


def run(url: str, opts: dict[str, Any], n: int, zstore: Any, where: str) -> list[str]:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    store = ChunkBytes(open_store(url, **opts))
    store.reset()
    repo = Repository(store, exists=False)
    repo.init("bench", "bench@example.com")
    lines: list[str] = []

    def add(name: str, value: str, note: str = "") -> None:
        lines.append(f"{where:6} {name:58} {value:>16}  {note}")

    with measured(store) as m:
        base = write_column(repo, data, range(n), "1M samples")
    add("write 1M uint8[16] (with-block + commit)", f"{n / m['seconds']:,.0f}/s",
        f"{m['seconds']:.2f} s, {m['objects']:.0f} objects")  # fmt: skip

    # ----------------------------------------------------- a 10-sample commit
    idx = rng.choice(n, 10, replace=False)
    store.reset()
    co = repo.checkout(write=True)
    around = sum(store.calls[op] for op in WRITES)
    with measured(store) as m:
        col = co["d"]
        with col:
            for i in idx:
                col[int(i)] = data[int(i)] ^ 0xFF
        co.commit("10 samples")
    store.reset()
    co.close()
    around += sum(store.calls[op] for op in WRITES)
    add("commit of 10 changed samples: seconds", f"{m['seconds']:.3f}",
        "target < 0.5 s (local); writes in a with-block, then commit")  # fmt: skip
    add("commit of 10 changed samples: bytes written", f"{m['written'] / 1e6:.3f} MB",
        "target < 2 MB")  # fmt: skip
    add("commit of 10 changed samples: objects written", f"{m['objects']:.0f}",
        f"target < 20; all requests {m['requests']:.0f}; opening and closing the writer "
        f"(lease, fence, staging state) adds {around}")  # fmt: skip
    with measured(store) as m:
        co = repo.checkout(write=True)
        for i in idx:
            co["d", int(i)] = data[int(i)]
        co.commit("10 samples, naked writes")
        co.close()
    add("same, 10 naked writes (each journaled at once) + commit", f"{m['objects']:.0f} obj",
        f"{m['written'] / 1e6:.3f} MB, {m['seconds']:.3f} s")  # fmt: skip
    z_s, z_b = zarr_ten(zstore, data, idx)
    add(
        "zarr: the same 10 samples into a 1M x 16 array",
        f"{z_s:.3f} s",
        f"{z_b / 1e6:.3f} MB rewritten" if z_b > 0 else "(bytes not measured on S3)",
    )

    # --------------------------------------------------- diff and merge cost
    repo.create_branch("dev")
    dev_keys = list(range(n // 5, n // 5 + 100))
    master_keys = list(range(7 * n // 10, 7 * n // 10 + 100))
    write_column(repo, data[:100] ^ 0x0F, dev_keys, "dev: 100 keys", branch="dev")
    write_column(repo, data[:100] ^ 0xF0, master_keys, "master: 100 keys")
    segs = len(repo._read_commit(repo._branch_head("master")).columns["d"].segments)
    r = repo.checkout()
    with measured(store) as m:
        out = r.diff.branch("dev")
    assert len(out.diff.mutated.samples) == 200
    add("diff of branches that changed 100 keys each", f"{m['manifest_gets']:.0f} segs",
        f"read of {segs} in the column, 4 differ; {m['seconds']:.3f} s")  # fmt: skip
    with measured(store) as m:
        repo.merge("merge dev", "master", "dev")
    add("three-way merge of those branches", f"{m['manifest_gets']:.0f} segs",
        f"read; {m['objects']:.0f} objects, {m['written'] / 1e6:.3f} MB written, "
        f"{m['seconds']:.3f} s, 0 chunk reads: {m['read'] < 2e6}")  # fmt: skip
    scattered = rng.choice(n, 100, replace=False)
    repo.create_branch("scatter", base_commit=base)
    write_column(repo, data[:100], [int(k) for k in scattered], "scattered", branch="scatter")
    with measured(store) as m:
        r.diff.branch("scatter")
    add("diff, 100 keys scattered over the whole key range", f"{m['manifest_gets']:.0f} segs",
        f"read, each once: the segments of master, the branch and their ancestor that "
        f"differ ({segs} per commit); {m['seconds']:.3f} s")  # fmt: skip

    # ------------------------------------------------------------------ dedup
    with measured(store) as m:
        write_column(repo, data, range(n), "the same 1M samples again")
    add(
        "dedup: the same 1M samples written again",
        f"{m['chunk_bytes']:.0f} B",
        f"chunk bytes stored ({m['chunk_puts']:.0f} chunk puts), {m['seconds']:.2f} s",
    )

    # ------------------------------------------------- open cost vs history
    for total in (1, 100, 10_000):
        hist = ChunkBytes(open_store(url.rstrip("/") + f"-h{total}", **opts))
        hrepo = Repository(hist, exists=False)
        hrepo.init("bench", "bench@example.com")
        write_column(hrepo, data[:1000], range(1000), "first")
        if total > 1:
            grow_history(hist, hrepo, total)
        with measured(hist) as m:
            fresh = Repository(hist)
            rc = fresh.checkout(branch="master")
            rc["d", 7]
        add(f"open repo + checkout + read 1 sample, {total:>6} commits",
            f"{m['requests']:.0f} req", f"{m['seconds'] * 1e3:.1f} ms")  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dir", default=None, help="where the local repositories go")
    parser.add_argument("--no-s3", action="store_true")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="hangar-hist-", dir=args.dir)
    lines: list[str] = []
    try:
        zlocal = zarr.storage.LocalStore(os.path.join(work, "zarr"))
        lines += run(os.path.join(work, "repo"), {}, args.n, zlocal, "local")
        if not args.no_s3:
            with SeaweedFSServer() as server:
                bucket = server.create_bucket()
                opts = server.storage_options()
                zs3 = zarr.storage.FsspecStore.from_url(f"s3://{bucket}/zarr",
                                                        storage_options=opts)  # fmt: skip
                lines += run(f"s3://{bucket}/repo", opts, args.n, zs3, "s3")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"history at scale: {args.n} uint8[16] samples, one column")
    head = f"{'where':6} {'measure':58} {'value':>16}  note"
    print(head)
    print("-" * len(head))
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
