"""Store benchmark: hangar's store against plain fsspec calls, same server, same run.

For each backend (local disk, memory, SeaweedFS S3, moto S3, fake-gcs-server)
and object size (1 KB, 1 MB) it times get, get_range, put, put_if_absent and
replace_if_version through ``hangar.store`` and the nearest plain fsspec call
on the same objects, interleaving the two, and prints median latency, ops/s
and the overhead of hangar over fsspec. Run it with ``nox -s bench``.

Plain fsspec has no compare-and-swap on local disk, memory or GCS, and its
``mode="create"`` on local disk and memory is check-then-write; the table says
``n/a`` where fsspec has no equivalent.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import fsspec

from hangar.store import Store, open_store
from hangar.testing.servers import FakeGCSServer, MotoServer, SeaweedFSServer

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

SIZES = {"1KB": 1024, "1MB": 1024 * 1024}


@dataclass
class Row:
    backend: str
    op: str
    size: str
    hangar: list[float]
    raw: list[float] | None

    def fmt(self) -> str:
        h = statistics.median(self.hangar)
        nbytes = SIZES[self.size] if self.op != "get_range" else 100
        hs = f"{h * 1e6:10.0f} {1 / h:9.0f} {nbytes / h / 2**20:9.1f}"
        if not self.raw:
            return f"{self.backend:10} {self.op:19} {self.size:4} {hs} {'n/a':>10} {'n/a':>9}"
        r = statistics.median(self.raw)
        over = (h / r - 1) * 100
        return f"{self.backend:10} {self.op:19} {self.size:4} {hs} {r * 1e6:10.0f} {over:+8.1f}%"


def interleave(a: Callable[[int], Any], b: Callable[[int], Any] | None, n: int, reps: int = 3
               ) -> tuple[list[float], list[float] | None]:  # fmt: skip
    """Time ``a`` and ``b`` alternately, swapping which goes first each time, so that
    drift and any first-of-a-pair effect hit both alike."""
    ta: list[float] = []
    tb: list[float] | None = [] if b is not None else None
    for i in range(n * reps):
        pair = [(a, ta), (b, tb)] if i % 2 == 0 else [(b, tb), (a, ta)]
        for fn, out in pair:
            if fn is None or out is None:
                continue
            t = time.perf_counter()
            fn(i)
            out.append(time.perf_counter() - t)
    return ta, tb


def bench_backend(name: str, store: Store, fs: Any, root: str, n_small: int, n_big: int,
                  raw_cas: Callable[[str, bytes, Any], Any] | None,
                  raw_version: Callable[[str], Any] | None) -> Iterator[Row]:  # fmt: skip
    for size_name, size in SIZES.items():
        n = n_small if size < 2**20 else n_big
        yield from bench_size(name, store, fs, root, size_name, n, raw_cas, raw_version)


def bench_size(name: str, store: Store, fs: Any, root: str, size_name: str, n: int,
               raw_cas: Callable[[str, bytes, Any], Any] | None,
               raw_version: Callable[[str], Any] | None) -> Iterator[Row]:  # fmt: skip
    run = f"{uuid.uuid4().hex[:8]}-{size_name}"
    data = os.urandom(SIZES[size_name])
    store.put(f"{run}/obj", data)

    def raw_path(k: str) -> str:
        return f"{root}/{run}/{k}"

    def pair(op: str, ours: Callable[[int], Any], raw: Callable[[int], Any] | None) -> Row:
        return Row(name, op, size_name, *interleave(ours, raw, n))

    yield pair("get", lambda i: store.get(f"{run}/obj"), lambda i: fs.cat_file(raw_path("obj")))
    yield pair(
        "get_range",
        lambda i: store.get_range(f"{run}/obj", 500, 600),
        lambda i: fs.cat_file(raw_path("obj"), start=500, end=600),
    )
    yield pair(
        "put",
        lambda i: store.put(f"{run}/put/{i}", data),
        lambda i: fs.pipe_file(raw_path(f"rawput/{i}"), data),
    )
    yield pair(
        "put_if_absent",
        lambda i: store.put_if_absent(f"{run}/pia/{i}", data),
        lambda i: fs.pipe_file(raw_path(f"rawpia/{i}"), data, mode="create"),
    )
    state: dict[str, Any] = {"v": store.put_if_absent(f"{run}/cas", data)}

    def ours(i: int) -> None:
        body = data[:-8] + i.to_bytes(8)
        state["v"] = store.replace_if_version(f"{run}/cas", body, state["v"])

    raw_fn = None
    if raw_cas is not None and raw_version is not None:
        fs.pipe_file(raw_path("rawcas"), data)
        state["raw"] = raw_version(raw_path("rawcas"))

        def raw_fn(i: int) -> None:
            state["raw"] = raw_cas(raw_path("rawcas"), data[:-8] + i.to_bytes(8), state["raw"])

    yield pair("replace_if_version", ours, raw_fn)


@contextlib.contextmanager
def backends(which: set[str]) -> Iterator[list[tuple[str, Store, Any, str, Any, Any]]]:
    out: list[tuple[str, Store, Any, str, Any, Any]] = []
    with contextlib.ExitStack() as stack:
        if "local" in which:
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            local_fs = fsspec.filesystem("file", auto_mkdir=True)
            out.append(("local", open_store(tmp), local_fs, tmp, None, None))
        if "memory" in which:
            out.append(("memory", open_store("memory://bench"), fsspec.filesystem("memory"),
                        "/bench", None, None))  # fmt: skip
        for label, cls in (("seaweedfs", SeaweedFSServer), ("moto", MotoServer)):
            if label not in which:
                continue
            server = stack.enter_context(cls())
            bucket = server.create_bucket()
            opts = server.storage_options()
            raw = fsspec.filesystem("s3", skip_instance_cache=True, **opts)

            def s3_cas(path: str, data: bytes, etag: str, raw: Any = raw) -> str:
                return str(raw.pipe_file(path, data, IfMatch=etag)["ETag"])

            def s3_version(path: str, raw: Any = raw) -> str:
                return str(raw.info(path)["ETag"])

            out.append((label, open_store(f"s3://{bucket}/h", **opts), raw, f"{bucket}/h",
                        s3_cas, s3_version))  # fmt: skip
        if "gcs" in which:
            server = stack.enter_context(FakeGCSServer())
            bucket = server.create_bucket()
            opts = server.storage_options()
            raw = fsspec.filesystem("gcs", skip_instance_cache=True, **opts)
            out.append(("gcs", open_store(f"gs://{bucket}/h", **opts), raw, f"{bucket}/h",
                        None, None))  # fmt: skip
        yield out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="local,memory,seaweedfs,moto,gcs")
    ap.add_argument("-n", type=int, default=60, help="samples per batch for 1 KB objects")
    ap.add_argument("--n-big", type=int, default=30, help="samples per batch for 1 MB objects")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, fsspec {fsspec.__version__}, {os.cpu_count()} cores")
    head = (f"{'backend':10} {'op':19} {'size':4} {'hangar_us':>10} {'ops/s':>9} {'MiB/s':>9} "
            f"{'fsspec_us':>10} {'overhead':>9}")  # fmt: skip
    with backends(set(args.backends.split(","))) as found:
        print(head)
        print("-" * len(head))
        for name, store, fs, root, cas, ver in found:
            for row in bench_backend(name, store, fs, root, args.n, args.n_big, cas, ver):
                print(row.fmt(), flush=True)


if __name__ == "__main__":
    main()
