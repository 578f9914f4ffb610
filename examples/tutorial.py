"""The main job, until the Hangar tutorial lands: objects through the store.

Writes and reads objects on a local repository folder the way the rest of
hangar will: content-addressed chunks with ``put``, a branch ref created with
``put_if_absent`` and moved with ``replace_if_version``, a stale writer refused.

Run it with ``pip install nox && nox -s tutorial`` (or ``python examples/tutorial.py [PATH]``).
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import time

from hangar.exceptions import VersionConflictError
from hangar.store import open_store


def main(path: str) -> None:
    store = open_store(path)
    print(f"store: {store!r}")

    # 1. immutable, content-addressed chunks: 64 objects of 256 KiB
    t0 = time.perf_counter()
    digests = []
    for i in range(64):
        data = bytes([i]) * (256 * 1024)
        digest = hashlib.blake2b(data, digest_size=20).hexdigest()
        store.put(f"chunks/{digest[:2]}/{digest}", data)
        digests.append(digest)
    took = time.perf_counter() - t0
    print(f"wrote 64 chunks (16 MiB) in {took:.3f} s ({16 / took:.0f} MiB/s)")

    # 2. a branch ref, created once, moved by compare-and-swap
    ref = "refs/heads/master.json"
    if store.exists(ref):
        store.delete(ref)
    version = store.put_if_absent(ref, json.dumps({"commit": digests[0]}).encode())
    print(f"created {ref} at version {version}")
    moved = json.dumps({"commit": digests[1]}).encode()
    new_version = store.replace_if_version(ref, moved, version)
    print(f"moved {ref} to version {new_version}")

    # 3. a writer that read the old version loses, and is told so
    try:
        store.replace_if_version(ref, b'{"commit": "stale"}', version)
    except VersionConflictError as exc:
        print(f"stale writer refused: {exc}")

    # 4. reads: whole object, one byte range, listing
    t0 = time.perf_counter()
    for digest in digests:
        assert store.get(f"chunks/{digest[:2]}/{digest}")[:1] == bytes([digests.index(digest)])
    took = time.perf_counter() - t0
    print(f"read 64 chunks back in {took:.3f} s; ranged read: {store.get_range(ref, 0, 11)!r}")
    print(f"{sum(1 for _ in store.list('chunks'))} chunk objects, refs: {list(store.list('refs'))}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="hangar-demo-"))
