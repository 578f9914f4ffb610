"""S3 GETs, HEADs and plain PUTs through obstore: when it is used, and that it reads and
writes what s3fs does."""

from __future__ import annotations

import multiprocessing as mp
import pickle
import threading
from typing import Any

import pytest

from hangar.exceptions import ObjectNotFoundError
from hangar.store import Store, open_store
from hangar.store._obstore import obstore_client

CREDS = {"key": "k", "secret": "s"}


@pytest.mark.parametrize(
    ("options", "used"),
    [
        ({"endpoint_url": "http://127.0.0.1:9000", **CREDS}, True),
        ({"endpoint_url": "http://h:1", **CREDS, "client_kwargs": {"region_name": "eu"}}, True),
        ({"endpoint_url": "http://h:1", "anon": True}, True),
        ({"endpoint_url": "http://h:1", **CREDS, "use_obstore": False}, False),
        ({**CREDS}, False),  # AWS's own endpoint: s3fs knows its redirects and regions
        ({"endpoint_url": "http://h:1"}, False),  # a credential chain: s3fs's to resolve
        ({"endpoint_url": "http://h:1", **CREDS, "profile": "p"}, False),
        ({"endpoint_url": "http://h:1", **CREDS, "client_kwargs": {"verify": False}}, False),
    ],
)
def test_obstore_is_used_only_where_it_reaches_the_same_objects(
    options: dict[str, Any], used: bool
) -> None:
    assert (obstore_client("b", {"use_listings_cache": False, **options}) is not None) is used


def _stores(seaweedfs: Any) -> tuple[Store, Store]:
    url = f"s3://{seaweedfs.create_bucket()}/p"
    fast = open_store(url, **seaweedfs.storage_options())
    slow = open_store(url, use_obstore=False, **seaweedfs.storage_options())
    assert fast._obstore is not None  # type: ignore[attr-defined]
    assert slow._obstore is None  # type: ignore[attr-defined]
    return fast, slow


def test_both_clients_read_the_same_bytes_and_versions(seaweedfs: Any) -> None:
    fast, slow = _stores(seaweedfs)
    data = bytes(range(256)) * 100
    fast.put("a/obj", data)
    assert fast.get("a/obj") == slow.get("a/obj") == data
    for start, end in [(0, 1), (100, 5_000), (25_000, 30_000), (25_600, 25_700), (9, 9)]:
        assert fast.get_range("a/obj", start, end) == slow.get_range("a/obj", start, end)
    fast_v, slow_v = fast.get_versioned("a/obj")[1], slow.get_versioned("a/obj")[1]
    assert fast_v == slow_v
    # a version read through obstore is a valid compare-and-swap token for s3fs's writes
    fast.replace_if_version("a/obj", b"new", fast_v)
    assert slow.get("a/obj") == b"new"
    for store in (fast, slow):
        with pytest.raises(ObjectNotFoundError):
            store.get("a/missing")
        # existence (chunks are checked before they are written) agrees too
        assert store.exists("a/obj")
        assert not store.exists("a/missing")
        assert not store.exists("a")  # a folder of objects is not an object
        with pytest.raises(ObjectNotFoundError):
            store.get_range("a/missing", 0, 4)
    # the option survives pickling, as the other storage options do
    again = pickle.loads(pickle.dumps(slow))
    assert again._obstore is None


def _remote_store(request: pytest.FixtureRequest, server: str, **options: Any) -> Store:
    """A store on a new bucket of the ``seaweedfs`` or ``fake_gcs`` server."""
    srv = request.getfixturevalue(server)
    scheme = "s3" if server == "seaweedfs" else "gs"
    return open_store(f"{scheme}://{srv.create_bucket()}/p", **options, **srv.storage_options())


def _run_forked(target: Any, store: Store) -> None:
    """Run ``target(store, out)`` in a forked child, which must put ``b"2345"`` in ``out``."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=target, args=(store, out))
    child.start()
    try:
        assert out.get(timeout=60) == b"2345"
    finally:
        child.join(timeout=30)
    assert child.exitcode == 0


def _use_in_child(store: Store, out: Any) -> None:
    store.put("a/from-child", b"child")
    out.put(store.get_range("a/obj", 2, 6))


@pytest.mark.parametrize("server", ["seaweedfs", "fake_gcs"])
def test_a_store_used_before_a_fork_works_in_the_child(
    server: str, request: pytest.FixtureRequest
) -> None:
    """fsspec's event loop and obstore's runtime do not survive a fork: the child reconnects
    (and reads S3 through s3fs)."""
    store = _remote_store(request, server)
    store.put("a/obj", b"0123456789")
    assert store.get_range("a/obj", 0, 2) == b"01"  # the parent's clients exist now
    _run_forked(_use_in_child, store)
    assert store.get("a/from-child") == b"child"
    assert store.get_range("a/obj", 8, 10) == b"89"


def _close_inherited_connections(store: Store, out: Any) -> None:
    import gc

    import aiohttp

    # what aiohttp does when the parent's file system is garbage-collected in the child
    # (BaseConnector.__del__): close every pooled connection it inherited
    for obj in gc.get_objects():
        if isinstance(obj, aiohttp.BaseConnector):
            obj._close()
    store.put("a/from-child", b"child")  # the child's own connections
    out.put(store.get_range("a/obj", 2, 6))


@pytest.mark.parametrize("server", ["seaweedfs", "fake_gcs"])
def test_a_forked_child_closing_what_it_inherited_leaves_the_parent_working(
    server: str, request: pytest.FixtureRequest
) -> None:
    """A fork shares the event loop's epoll instance: without hangar.store._fork, the
    child's closing of inherited connections left the parent's next request on a pooled
    connection waiting forever."""
    store = _remote_store(request, server, use_obstore=False)
    store.put("a/obj", b"0123456789")  # a pooled connection in the parent
    _run_forked(_close_inherited_connections, store)
    done: list[bytes] = []

    def parent_requests() -> None:
        for i in range(3):
            store.put(f"a/after-{i}", bytes(1 << 20))
        done.append(store.get("a/from-child"))

    worker = threading.Thread(target=parent_requests, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert done == [b"child"], "the parent's requests after the fork did not finish"


@pytest.mark.parametrize("single_put", [None, 5 << 20], ids=["one-put", "multipart"])
def test_plain_writes_through_obstore_are_read_the_same_by_both_clients(
    seaweedfs: Any, monkeypatch: pytest.MonkeyPatch, single_put: int | None
) -> None:
    import hangar.store._obstore as obstore_module

    if single_put is not None:  # past the single-PUT size: parts of 5 MiB (S3's least)
        monkeypatch.setattr(obstore_module, "_SINGLE_PUT", single_put)
    fast, slow = _stores(seaweedfs)
    data = bytes(range(256)) * (12 * 4096)  # 12 MiB
    fast.put("w/obj", memoryview(data))
    slow.put("w/other", data)
    assert slow.get("w/obj") == fast.get("w/obj") == data
    assert fast.get("w/other") == data
    fast.put("w/obj", b"replaced")  # a plain put overwrites
    assert slow.get("w/obj") == b"replaced"
    fast.put("w/empty", b"")
    assert slow.get("w/empty") == b""
