"""Object names: the one module that knows where each kind of object lives in a store.

The layout (DESIGN.md, "Objects under the repository root")::

    hangar.json                   format version, repository id, hash algorithm
    refs/heads/<branch>.json      branch refs (compare-and-swap only)
    refs/tags/<tag>.json          tags (create-if-absent, never changed)
    commits/<id>.json             commit records
    manifests/<hash>.parquet      manifest segments
    chunks/<hash[:2]>/<hash>      packed, content-addressed chunks
    leases/heads/<branch>.json    writer leases
    staging/heads/<branch>/...    staged, uncommitted state of a branch

Every user-given name (branch, tag, column) passes :func:`validate_name` before
it becomes part of a key; digests pass :func:`validate_digest`.
"""

from __future__ import annotations

import re

from hangar.exceptions import InvalidKeyError

__all__ = [
    "BRANCHES",
    "HANGAR_JSON",
    "TAGS",
    "branch_ref",
    "chunk_key",
    "commit_key",
    "lease_key",
    "manifest_key",
    "ref_name",
    "staging_prefix",
    "tag_ref",
    "validate_digest",
    "validate_name",
]

HANGAR_JSON = "hangar.json"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HEX = re.compile(r"[0-9a-f]{16,128}")
_COMMIT = re.compile(r"a=[0-9a-f]{40}")


def validate_name(name: object, kind: str = "name") -> str:
    """Return ``name`` if it may name a branch, tag or column, else raise.

    Allowed: 1 to 64 ASCII letters, digits, ``.``, ``_`` and ``-``, starting with
    a letter or digit (Hangar's rule for user names), and not ending in ``.json``
    or ``.lock``.

    Raises
    ------
    InvalidKeyError
        (a ``ValueError``) naming the kind of name and the rule.
    """
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise InvalidKeyError(
            f"invalid {kind} {name!r}: use 1-64 ASCII letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if name.endswith((".json", ".lock")):
        raise InvalidKeyError(f"invalid {kind} {name!r}: may not end in '.json' or '.lock'")
    return name


def validate_digest(digest: object, kind: str = "digest") -> str:
    """Return ``digest`` if it is lowercase hex (16-128 digits) or a commit id ``a=<40 hex>``."""
    if isinstance(digest, str) and (_HEX.fullmatch(digest) or _COMMIT.fullmatch(digest)):
        return digest
    raise InvalidKeyError(f"invalid {kind} {digest!r}")


def branch_ref(branch: str) -> str:
    """Key of a branch ref."""
    return f"refs/heads/{validate_name(branch, 'branch name')}.json"


#: folders of branch refs and of tags
BRANCHES = "refs/heads"
TAGS = "refs/tags"


def ref_name(key: str) -> str:
    """The branch or tag name of a ref key (``refs/heads/dev.json`` -> ``dev``)."""
    return key.rsplit("/", 1)[-1].removesuffix(".json")


def tag_ref(tag: str) -> str:
    """Key of a tag."""
    return f"refs/tags/{validate_name(tag, 'tag name')}.json"


def commit_key(commit: str) -> str:
    """Key of a commit record."""
    return f"commits/{validate_digest(commit, 'commit id')}.json"


def manifest_key(digest: str) -> str:
    """Key of a manifest segment."""
    return f"manifests/{validate_digest(digest, 'manifest digest')}.parquet"


def chunk_key(digest: str) -> str:
    """Key of a packed chunk (fanned out by its first two hex digits)."""
    digest = validate_digest(digest, "chunk digest")
    return f"chunks/{digest[:2]}/{digest}"


def lease_key(branch: str) -> str:
    """Key of the writer lease of a branch."""
    return f"leases/heads/{validate_name(branch, 'branch name')}.json"


def staging_prefix(branch: str) -> str:
    """Folder of a branch's staged, uncommitted state."""
    return f"staging/heads/{validate_name(branch, 'branch name')}"
