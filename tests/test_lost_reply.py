"""A conditional write whose reply is lost is neither a false conflict nor a false success.

The proxy forwards the write to the real server in full and then drops the
server's reply, as a broken connection would. The client library retries (or
gives up); hangar must recognise its own write by the write id stored with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from faultproxy import LostReplyProxy
from hangar.exceptions import AlreadyExistsError, VersionConflictError
from hangar.store import Store, open_store

# botocore and gcsfs retry a dropped connection after a back-off: keep it short
_S3_FAST_RETRY = {"config_kwargs": {"retries": {"max_attempts": 3, "mode": "standard"}}}


@pytest.fixture(params=["seaweedfs", "moto_server", "fake_gcs"])
def proxied(request: pytest.FixtureRequest) -> Iterator[tuple[Store, LostReplyProxy, str]]:
    server: Any = request.getfixturevalue(request.param)
    bucket = server.create_bucket()
    with LostReplyProxy(server.port) as proxy:
        options = dict(server.storage_options())
        options["endpoint_url"] = proxy.endpoint
        if request.param == "fake_gcs":
            store = open_store(f"gs://{bucket}/lost", skip_instance_cache=True, **options)
            method = "POST"
        else:
            options.update(_S3_FAST_RETRY)
            store = open_store(f"s3://{bucket}/lost", skip_instance_cache=True, **options)
            method = "PUT"
        yield store, proxy, method


def test_create_with_lost_reply_is_a_success(proxied: tuple[Store, LostReplyProxy, str]) -> None:
    store, proxy, method = proxied
    proxy.arm(method)
    version = store.put_if_absent("refs/heads/master.json", b"mine")
    assert proxy.dropped == 1, "the reply was not dropped: the test proved nothing"
    assert store.get_versioned("refs/heads/master.json") == (b"mine", version)
    # and a real conflict is still a conflict
    with pytest.raises(AlreadyExistsError):
        store.put_if_absent("refs/heads/master.json", b"someone else")


def test_swap_with_lost_reply_is_a_success(proxied: tuple[Store, LostReplyProxy, str]) -> None:
    store, proxy, method = proxied
    v1 = store.put_if_absent("ref.json", b"one")
    proxy.arm(method)
    v2 = store.replace_if_version("ref.json", b"two", v1)
    assert proxy.dropped == 1
    assert store.get_versioned("ref.json") == (b"two", v2)
    with pytest.raises(VersionConflictError):
        store.replace_if_version("ref.json", b"three", v1)
    assert store.get("ref.json") == b"two"


def test_lost_create_that_lost_the_race_is_a_conflict(
    proxied: tuple[Store, LostReplyProxy, str],
) -> None:
    store, proxy, method = proxied
    store.put_if_absent("taken.json", b"first")
    proxy.arm(method)
    with pytest.raises(AlreadyExistsError):
        store.put_if_absent("taken.json", b"second")
    assert store.get("taken.json") == b"first"


def test_plain_put_with_lost_reply_keeps_the_data(
    proxied: tuple[Store, LostReplyProxy, str],
) -> None:
    """A retried unconditional put must not replace the object with a broken body."""
    store, proxy, method = proxied
    data = bytes(range(256)) * 64
    proxy.arm(method)
    store.put("chunks/ab/abcdef", data)
    assert proxy.dropped == 1
    assert store.get("chunks/ab/abcdef") == data
