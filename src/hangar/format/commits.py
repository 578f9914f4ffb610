"""Commit records: immutable JSON named by the digest of their canonical bytes.

A commit id has Hangar's form, ``a=`` and 40 hex digits: the BLAKE2b-160 of
the record's canonical JSON. Reading a commit checks that its bytes hash to
its id, so a damaged record is reported, never used.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from hangar.exceptions import CorruptionError, InvalidKeyError, ObjectNotFoundError
from hangar.format.manifest import SegmentRef
from hangar.format.names import commit_key, validate_digest
from hangar.format.records import canonical_json, load_json
from hangar.format.schema import ColumnSchema
from hangar.store import Store

__all__ = [
    "COMMIT_RECORD_VERSION",
    "ColumnRecord",
    "CommitRecord",
    "commit_id",
    "read_commit",
    "write_commit",
]

#: the layout of commit records: unchanged from format version 1 to 2, so commits
#: written into a version 1 repository stay readable by the builds that wrote it
COMMIT_RECORD_VERSION = 1


def commit_id(data: bytes) -> str:
    """The id of a commit record's canonical bytes."""
    return "a=" + hashlib.blake2b(data, digest_size=20).hexdigest()


@dataclass(frozen=True, slots=True)
class ColumnRecord:
    """A column in a commit: its schema, its manifest segments, its sample count."""

    schema: ColumnSchema
    segments: tuple[SegmentRef, ...]
    samples: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema.to_dict(),
            "segments": [s.to_dict() for s in self.segments],
            "samples": self.samples,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ColumnRecord:
        return cls(
            ColumnSchema.from_dict(d["schema"]),
            tuple(SegmentRef.from_dict(s) for s in d["segments"]),
            int(d["samples"]),
        )


@dataclass(frozen=True, slots=True)
class CommitRecord:
    """One commit: parents, author, time, message and every column's state."""

    parents: tuple[str, ...]
    user_name: str
    user_email: str
    time: str  # UTC, ISO 8601
    message: str
    columns: dict[str, ColumnRecord] = field(default_factory=dict)
    format_version: int = COMMIT_RECORD_VERSION

    def __post_init__(self) -> None:
        if len(self.parents) > 2:
            raise InvalidKeyError("a commit has at most two parents")
        for p in self.parents:
            validate_digest(p, "parent commit id")
        if not isinstance(self.message, str) or not self.message:
            raise InvalidKeyError("a commit needs a non-empty message")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "parents": list(self.parents),
            "user_name": self.user_name,
            "user_email": self.user_email,
            "time": self.time,
            "message": self.message,
            "columns": {name: c.to_dict() for name, c in sorted(self.columns.items())},
        }

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CommitRecord:
        return cls(
            parents=tuple(d["parents"]),
            user_name=d["user_name"],
            user_email=d["user_email"],
            time=d["time"],
            message=d["message"],
            columns={k: ColumnRecord.from_dict(v) for k, v in d["columns"].items()},
            format_version=int(d["format_version"]),
        )


def write_commit(store: Store, record: CommitRecord) -> str:
    """Store a commit record (idempotent: same record, same id) and return its id."""
    data = record.to_bytes()
    cid = commit_id(data)
    store.put(commit_key(cid), data)
    return cid


def read_commit(store: Store, cid: str) -> CommitRecord:
    """Read and verify a commit record.

    Raises
    ------
    ObjectNotFoundError
        No commit with this id (a ``KeyError``-like ``FileNotFoundError``).
    CorruptionError
        The stored bytes do not hash to ``cid``.
    """
    try:
        data = store.get(commit_key(cid))
    except ObjectNotFoundError as exc:
        raise ObjectNotFoundError(commit_key(cid), f"no commit {cid}") from exc
    if commit_id(data) != cid:
        raise CorruptionError(f"commit {cid} does not match its digest")
    return CommitRecord.from_dict(load_json(data, f"commit {cid}"))
