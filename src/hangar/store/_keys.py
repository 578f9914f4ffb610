"""Validation of store keys: the one function every key passes before it is a path."""

from __future__ import annotations

import re

from hangar.exceptions import InvalidKeyError

MAX_KEY_BYTES = 1024
#: A reserved first segment: local disk keeps its temporary files there.
RESERVED_SEGMENT = ".hangar-tmp"
RESERVED_PREFIX = RESERVED_SEGMENT + "/"
# control characters, DEL, the backslash, and lone surrogates (not encodable as UTF-8)
_BAD_CHARS = re.compile("[\x00-\x1f\x7f\\\\\ud800-\udfff]")


def validate_key(key: object) -> str:
    """Return ``key`` if it is a valid store key, otherwise raise.

    A key is a relative, ``/``-separated string. It is rejected when it is not a
    ``str``, is empty, starts with ``/``, has an empty segment (``a//b``, a
    trailing ``/``), has a ``.`` or ``..`` segment, contains a backslash or a
    control character (U+0000-U+001F, U+007F), is longer than 1024 bytes in
    UTF-8, or starts with the reserved segment ``.hangar-tmp``. Nothing that
    passes can name a path outside the store's root.

    Raises
    ------
    InvalidKeyError
        (a ``ValueError``) naming the key and the rule it broke.
    """
    if type(key) is not str:
        if not isinstance(key, str):
            raise InvalidKeyError(f"a store key must be a str, not {type(key).__name__}: {key!r}")
        key = str(key)
    # fast path: one regex search and a few substring tests (keys are validated on every call)
    if (
        key
        and len(key) <= MAX_KEY_BYTES // 4
        and _BAD_CHARS.search(key) is None
        and key[0] != "/"
        and key[-1] != "/"
        and "//" not in key
        and "/./" not in f"/{key}/"
        and "/../" not in f"/{key}/"
        and not key.startswith(RESERVED_PREFIX)
        and key != RESERVED_SEGMENT
    ):
        return key
    return _explain(key)


def _explain(key: str) -> str:
    """The slow path: find the rule ``key`` breaks and raise, or accept a long valid key."""
    if not key:
        raise InvalidKeyError("a store key may not be empty")
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidKeyError(f"store key {key!r} is not valid unicode text") from exc
    if len(encoded) > MAX_KEY_BYTES:
        raise InvalidKeyError(
            f"store key of {len(encoded)} bytes is longer than {MAX_KEY_BYTES} bytes"
        )
    if key.startswith("/"):
        raise InvalidKeyError(f"store key {key!r} may not start with '/': keys are relative")
    if "\\" in key:
        raise InvalidKeyError(f"store key {key!r} may not contain a backslash")
    if _BAD_CHARS.search(key):
        raise InvalidKeyError(f"store key {key!r} may not contain control characters")
    segments = key.split("/")
    for seg in segments:
        if seg == "":
            raise InvalidKeyError(f"store key {key!r} has an empty segment")
        if seg in (".", ".."):
            raise InvalidKeyError(f"store key {key!r} may not have a {seg!r} segment")
    if segments[0] == RESERVED_SEGMENT:
        raise InvalidKeyError(f"store key {key!r} uses the reserved prefix {RESERVED_SEGMENT!r}")
    return key


def validate_prefix(prefix: object) -> str:
    """Return a listing prefix without its trailing ``/`` (``""`` lists everything).

    A non-empty prefix must be a valid key once a trailing ``/`` is removed.
    """
    if not isinstance(prefix, str):
        raise InvalidKeyError(f"a prefix must be a str, not {type(prefix).__name__}")
    stripped = prefix[:-1] if prefix.endswith("/") else prefix
    if stripped == "":
        return ""
    return validate_key(stripped)
