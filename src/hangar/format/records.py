"""Records stored as JSON: repository info, branch refs, tags, writer leases.

Frozen dataclasses, validated on construction, with ``to_dict`` /
``from_dict`` and a canonical byte form (sorted keys, no spaces, UTF-8), so
the same record always has the same bytes. No pickle anywhere.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Self

from hangar.exceptions import InvalidKeyError
from hangar.format.names import validate_digest, validate_name
from hangar.format.sample_digest import LEGACY_SCHEME, sample_digest_scheme

__all__ = [
    "FORMAT_VERSION",
    "BranchRef",
    "LeaseRecord",
    "RepositoryInfo",
    "TagRef",
    "canonical_json",
    "load_json",
]

#: the on-store format version this library writes (2: samples digested with XXH3,
#: see hangar.format.sample_digest; 1: BLAKE2b-64)
FORMAT_VERSION = 2


def canonical_json(obj: Any) -> bytes:
    """The canonical bytes of a JSON value: sorted keys, compact, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def load_json(data: bytes, what: str) -> dict[str, Any]:
    """Parse a stored JSON object, naming ``what`` in the error if it is not one."""
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidKeyError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise InvalidKeyError(f"{what} is not a JSON object")
    return obj


class _Record:
    """Shared JSON plumbing of the records below."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload, no-any-return]

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        fields = cls.__dataclass_fields__  # type: ignore[attr-defined]
        unknown = set(d) - set(fields)
        if unknown:
            raise InvalidKeyError(f"{cls.__name__} has no fields {sorted(unknown)}")
        return cls(**d)

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        return cls.from_dict(load_json(data, cls.__name__))


@dataclass(frozen=True, slots=True)
class RepositoryInfo(_Record):
    """``hangar.json``: created once per repository, with create-if-absent."""

    repository_id: str
    created: str
    user_name: str
    user_email: str
    format_version: int = FORMAT_VERSION
    hash_algorithm: str = "blake2b-160"
    product: str = "hangar-cloud"
    # absent from format version 1's hangar.json, whose samples are digested with BLAKE2b
    sample_digest: str = LEGACY_SCHEME

    def __post_init__(self) -> None:
        if not isinstance(self.format_version, int) or self.format_version < 1:
            raise InvalidKeyError(f"invalid format version {self.format_version!r}")
        sample_digest_scheme(self.sample_digest)  # raises for a scheme this hangar lacks
        if not self.user_name or not self.user_email:
            raise InvalidKeyError("a repository needs a user name and email")


@dataclass(frozen=True, slots=True)
class BranchRef(_Record):
    """``refs/heads/<branch>.json``: the branch head and the writer epoch that last moved it.

    ``commit`` is ``None`` for a branch with no commit yet. ``epoch`` is the
    epoch of the lease under which the ref was last written: a writer takes a
    lease, then writes its epoch here by compare-and-swap, which fences out
    every writer of an older epoch (DESIGN.md, invariant 3).
    """

    commit: str | None
    epoch: int = 0

    def __post_init__(self) -> None:
        if self.commit is not None:
            validate_digest(self.commit, "commit id")
        if not isinstance(self.epoch, int) or self.epoch < 0:
            raise InvalidKeyError(f"invalid epoch {self.epoch!r}")


@dataclass(frozen=True, slots=True)
class TagRef(_Record):
    """``refs/tags/<tag>.json``: an immutable name for a commit."""

    commit: str

    def __post_init__(self) -> None:
        validate_digest(self.commit, "commit id")


@dataclass(frozen=True, slots=True)
class LeaseRecord(_Record):
    """``leases/heads/<branch>.json``: who may write a branch, and until when.

    ``expires`` (UTC, ISO 8601) is advice for humans and other machines;
    contenders also watch the lease's version stay unchanged for
    ``duration_s`` on their own monotonic clock before taking it over.
    """

    branch: str
    holder: str  # a random id of the writer checkout
    epoch: int
    user_name: str
    host: str
    pid: int
    acquired: str
    expires: str
    duration_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_name(self.branch, "branch name")
        if not isinstance(self.epoch, int) or self.epoch < 1:
            raise InvalidKeyError(f"invalid lease epoch {self.epoch!r}")
        if not self.duration_s > 0:
            raise InvalidKeyError(f"invalid lease duration {self.duration_s!r}")
