"""The staging area of a branch: a journal of changes that survives the writer.

Under ``staging/heads/<branch>/``:

- ``journal/<epoch>-<seq>``: one entry per flush (a write outside a ``with``
  block, the end of a ``with`` block, a column added or removed). An entry is
  a small binary object: 8 bytes of header length, a JSON header with the
  operations, then the raw bytes of samples carried inline (writes outside a
  ``with`` block); samples flushed from a ``with`` block are already packed
  into chunks and referenced by location.
- ``journal/<epoch>-<seq>.log``: on stores that can append (local disk,
  memory), the entries of a writer from one point on, appended one after the
  other, each framed (magic, length, CRC-32): a write then costs one append
  instead of one new file. A torn last frame (a writer killed in the middle
  of an append) is no entry. A writer that adopts another's log records in
  the state how many bytes it adopted (``<name>@<length>``), so what the old
  writer appends later is fenced out like its later entries are.
- ``state.json``: which entries are live. A writer that takes the lease reads
  the state, adopts the live entries of earlier writers, and writes a new
  state naming its epoch (compare-and-swap). Entries an older writer wrote
  after that are never read: they are fenced out.

A commit packs the inline samples into chunks, writes manifests and the commit
record, names that commit in the state (``committing``), swaps the ref, then
resets the state to an empty journal. A writer that finds ``committing``
already in its branch's history drops the live entries: they landed.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hangar.exceptions import CorruptionError, InvalidKeyError, ObjectNotFoundError
from hangar.format.names import staging_prefix
from hangar.format.records import canonical_json, load_json
from hangar.store import Store, Version

__all__ = ["JournalEntry", "StagingState", "read_state", "write_state"]

_HEADER = struct.Struct("<Q")
_FRAME = struct.Struct("<4sQI")  # magic, payload length, CRC-32 of the payload
_FRAME_MAGIC = b"HJL1"
LOG_SUFFIX = ".log"


@dataclass(frozen=True, slots=True)
class StagingState:
    """``state.json``: the live journal of a branch."""

    epoch: int
    base_commit: str | None
    adopted: tuple[str, ...] = ()  # journal entry names adopted from earlier writers
    own_from: int = 0  # this epoch's entries with seq >= own_from are live
    # the commit of the live entries, written just before the ref is swapped to it: if
    # the writer dies before it clears the journal, the next one sees it landed
    committing: str | None = None

    def to_bytes(self) -> bytes:
        d: dict[str, Any] = {
            "epoch": self.epoch,
            "base_commit": self.base_commit,
            "adopted": list(self.adopted),
            "own_from": self.own_from,
        }
        if self.committing is not None:
            d["committing"] = self.committing
        return canonical_json(d)

    @classmethod
    def from_bytes(cls, data: bytes) -> StagingState:
        d = load_json(data, "staging state")
        return cls(
            int(d["epoch"]),
            d["base_commit"],
            tuple(d["adopted"]),
            int(d["own_from"]),
            d.get("committing"),
        )

    def live(self, names: list[str]) -> list[str]:
        """The live entries among ``names`` (all entries found), in journal order."""
        own = [n for n in names if entry_epoch(n) == self.epoch and entry_seq(n) >= self.own_from]
        return [*self.adopted, *sorted(own)]


def entry_name(epoch: int, seq: int) -> str:
    return f"{epoch:012d}-{seq:012d}"


def log_name(epoch: int, seq: int) -> str:
    return entry_name(epoch, seq) + LOG_SUFFIX


def pinned(name: str, length: int) -> str:
    """How the state names the first ``length`` bytes of log ``name`` (what was adopted)."""
    return f"{name}@{length}"


def _parts(name: str) -> tuple[str, int | None]:
    """An entry name as (object name, adopted length of a log or None)."""
    base, at, length = name.partition("@")
    valid = "/" not in base and "-" in base
    if at:  # only a log is pinned, at a decimal length
        valid = valid and base.endswith(LOG_SUFFIX) and length.isascii() and length.isdigit()
    if not valid:
        raise InvalidKeyError(f"invalid journal entry name {name!r}")
    return base, int(length) if at else None


def entry_epoch(name: str) -> int:
    return int(_parts(name)[0].split("-", 1)[0])


def entry_seq(name: str) -> int:
    return int(_parts(name)[0].split("-", 1)[1].removesuffix(LOG_SUFFIX))


def state_key(branch: str) -> str:
    return f"{staging_prefix(branch)}/state.json"


def journal_prefix(branch: str) -> str:
    return f"{staging_prefix(branch)}/journal"


def read_state(store: Store, branch: str) -> tuple[StagingState, Version] | None:
    try:
        data, version = store.get_versioned(state_key(branch))
    except ObjectNotFoundError:
        return None
    return StagingState.from_bytes(data), version


def write_state(store: Store, branch: str, state: StagingState, version: Version | None) -> Version:
    """Create or compare-and-swap the staging state (VersionConflictError if it moved)."""
    if version is None:
        return store.put_if_absent(state_key(branch), state.to_bytes())
    return store.replace_if_version(state_key(branch), state.to_bytes(), version)


def list_entries(store: Store, branch: str) -> list[str]:
    prefix = journal_prefix(branch)
    return sorted(k.rsplit("/", 1)[1] for k in store.list(prefix))


@dataclass
class JournalEntry:
    """Operations of one flush, and the raw bytes of inline samples."""

    ops: list[Any] = field(default_factory=list)
    blob: bytearray = field(default_factory=bytearray)

    def add_inline(self, raw: bytes | memoryview) -> list[int]:
        """Append raw sample bytes; return [offset, nbytes] for the op."""
        start = len(self.blob)
        self.blob += raw
        return [start, len(raw)]

    def to_bytes(self) -> bytes:
        header = json.dumps({"ops": self.ops}, separators=(",", ":")).encode()
        return _HEADER.pack(len(header)) + header + bytes(self.blob)

    @classmethod
    def from_bytes(cls, data: bytes, name: str) -> JournalEntry:
        try:
            (n,) = _HEADER.unpack_from(data, 0)
            header = json.loads(data[_HEADER.size : _HEADER.size + n])
        except (struct.error, ValueError) as exc:
            raise CorruptionError(f"staging journal entry {name} is damaged") from exc
        if not isinstance(header, dict) or not isinstance(header.get("ops"), list):
            raise CorruptionError(f"staging journal entry {name} has no operations")
        return cls(header["ops"], bytearray(data[_HEADER.size + n :]))


def write_entry(store: Store, branch: str, epoch: int, seq: int, entry: JournalEntry) -> str:
    name = entry_name(epoch, seq)
    store.put(f"{journal_prefix(branch)}/{name}", entry.to_bytes())
    return name


def append_entry(store: Store, branch: str, name: str, entry: JournalEntry) -> None:
    """Append ``entry`` to log ``name`` as one frame (one ``Store.append``)."""
    payload = entry.to_bytes()
    frame = _FRAME.pack(_FRAME_MAGIC, len(payload), zlib.crc32(payload)) + payload
    store.append(f"{journal_prefix(branch)}/{name}", frame)


def read_entries(store: Store, branch: str, name: str) -> tuple[list[JournalEntry], str]:
    """The entries of journal entry or log ``name``, and the name that pins what was read.

    A log named without a length is read up to its last whole frame (a torn
    frame at its end is no entry), and the returned name pins that length; a
    pinned log is read up to its pinned length, which must be whole frames.
    """
    base, pin = _parts(name)
    data = store.get(f"{journal_prefix(branch)}/{base}")
    if not base.endswith(LOG_SUFFIX):
        return [JournalEntry.from_bytes(data, name)], name
    entries, end = _frames(data, base, pin)
    return entries, pinned(base, end)


def _frames(data: bytes, name: str, pin: int | None) -> tuple[list[JournalEntry], int]:
    """The entries framed in a log's bytes, up to ``pin`` (or the last whole frame)."""
    if pin is not None and len(data) < pin:
        raise CorruptionError(f"staging journal log {name} is shorter than what was adopted")
    limit = len(data) if pin is None else pin
    view = memoryview(data)
    entries = []
    pos = 0
    while pos + _FRAME.size <= limit:
        magic, size, crc = _FRAME.unpack_from(data, pos)
        start, end = pos + _FRAME.size, pos + _FRAME.size + size
        if magic != _FRAME_MAGIC or size == 0 or end > limit or zlib.crc32(view[start:end]) != crc:
            break  # a torn end: the writer died during this append
        entries.append(JournalEntry.from_bytes(data[start:end], name))
        pos = end
    if pin is not None and pos != pin:
        raise CorruptionError(f"staging journal log {name} is damaged before byte {pin}")
    return entries, pos


def delete_entries(
    store: Store,
    branch: str,
    names: list[str],
    start: Callable[..., None] | None = None,
) -> None:
    """Delete journal entries (or logs); ``start(fn, *args)`` may run the deletes at once
    (on an object store each is a round trip: see :mod:`hangar._uploads`)."""
    for name in names:
        key = f"{journal_prefix(branch)}/{name}"
        if start is None:
            store.delete(key)
        else:
            start(store.delete, key)
