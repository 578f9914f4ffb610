"""Merges: fast-forward or three-way, reading manifests only, moving the branch by compare-and-swap.

A three-way merge diffs the common ancestor against each side (only the
manifest segments that differ are read, DESIGN.md invariant 6), applies the
dev side's changes onto master's columns (rewriting only the segments whose
keys change, invariant 5), and writes a commit with both heads as parents.
Samples are never read or copied: the merged manifest points at the chunks
dev's samples already live in.

A merge takes no writer lease: it reads master's head, builds the merge
commit and swaps the ref against the version it read, so any number of
merges into one branch run at once; one that lost the race is built again
on the new head. A writer checkout holding master keeps its staged changes:
its next commit is rebuilt on the merged head (see :mod:`hangar.staging`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, NamedTuple

from hangar.ancestry import common_ancestor
from hangar.columns._engine import ColumnEngine
from hangar.columns._index import bucket_from_rows
from hangar.diff import (
    Entries,
    RawConflicts,
    RawDiff,
    Segments,
    diff_records,
    find_conflicts,
    schema_after,
    to_conflicts,
)
from hangar.exceptions import (
    EmptyHistoryError,
    InvalidKeyError,
    LeaseLostError,
    MergeConflictError,
    ObjectNotFoundError,
    RefNotFoundError,
    VersionConflictError,
)
from hangar.format.chunks import BlockCache
from hangar.format.commits import ColumnRecord, CommitRecord, write_commit
from hangar.format.lease import Lease
from hangar.format.manifest import Key
from hangar.format.names import branch_ref, validate_name
from hangar.format.records import BranchRef
from hangar.refs import branch_head
from hangar.store import Store

__all__ = [
    "MERGE_TEXT",
    "MergeOutcome",
    "check_strategy",
    "merge_branch",
    "merge_columns",
    "now_iso",
]

STRATEGIES = ("ours", "theirs")
_RETRIES = 50

ReadCommit = Callable[[str], CommitRecord]
_Change = tuple[Key, "Key | None", str, Any]  # key, subkey, "set"/"del", entry


def now_iso() -> str:
    """The time a commit records: UTC, ISO 8601, microseconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def check_strategy(strategy: str | None) -> None:
    """Raise ``ValueError`` unless ``strategy`` is None, ``'ours'`` or ``'theirs'``."""
    if strategy is not None and strategy not in STRATEGIES:
        raise InvalidKeyError(
            f"strategy={strategy!r}: use None (conflicts are an error), 'ours' (keep master's "
            "side of each conflict) or 'theirs' (take dev's side)"
        )


# ------------------------------------------------------------- three-way
def merge_columns(
    store: Store,
    cache: BlockCache,
    anc: CommitRecord | None,
    ours: CommitRecord | None,
    theirs: CommitRecord,
    *,
    strategy: str | None = None,
    describe: Callable[[RawConflicts], str] | None = None,
) -> dict[str, ColumnRecord]:
    """The columns of ``ours`` with the changes ``theirs`` made since ``anc``.

    Conflicts (:func:`hangar.diff.find_conflicts`) raise
    :class:`MergeConflictError` before anything is written, unless
    ``strategy`` picks a side: ``'ours'`` keeps ours' value of each
    conflicting key (and ours' version of each conflicting column),
    ``'theirs'`` takes theirs'. Manifest segments are written for the
    columns that change; nothing else is.
    """
    entries: Entries = {}
    segments: Segments = {}
    m = diff_records(store, anc, ours, cache=segments, full=True)
    d = diff_records(store, anc, theirs, entries=entries, cache=segments, full=True)
    conflicts = find_conflicts(m, d)
    if conflicts.any and strategy is None:
        text = (describe or conflict_message)(conflicts)
        raise MergeConflictError(text, to_conflicts(conflicts))
    skip = conflicts.keys() if strategy == "ours" else set()
    out = dict(ours.columns) if ours else {}
    changes = _changes_by_column(d, entries, skip)
    names = set(out) | set(theirs.columns) | set(anc.columns if anc else ())
    for name in sorted(names):
        if name in conflicts.schemas:
            take_theirs = strategy == "theirs"
        else:
            take_theirs = schema_after(d, name)[0] and not schema_after(m, name)[0]
        if take_theirs:
            rec = theirs.columns.get(name)
            if rec is None:
                out.pop(name, None)
            else:
                out[name] = rec
        elif name in out and name in changes and name not in conflicts.schemas:
            out[name] = _apply(store, cache, name, out[name], changes[name], segments)
    return out


def _changes_by_column(
    d: RawDiff, entries: Entries, skip: set[tuple[str, Key, Key | None]]
) -> dict[str, list[_Change]]:
    by_col: dict[str, list[_Change]] = {}
    for part in (d.added, d.mutated):
        for k in part:
            if k not in skip:
                by_col.setdefault(k[0], []).append((k[1], k[2], "set", entries[k]))
    for k in d.deleted:
        if k not in skip:
            by_col.setdefault(k[0], []).append((k[1], k[2], "del", None))
    return by_col


def _apply(  # noqa: PLR0917
    store: Store,
    cache: BlockCache,
    name: str,
    rec: ColumnRecord,
    changes: list[_Change],
    segments: Segments,
) -> ColumnRecord:
    """``rec`` with ``changes`` applied; only the segments holding changed keys are rewritten.

    Segments the diffs already decoded are not read again.
    """
    nested = rec.schema.column_layout == "nested"
    loaded = {
        s.digest: bucket_from_rows(segments[s.digest], nested)
        for s in rec.segments
        if s.digest in segments
    }
    engine = ColumnEngine(name, rec.schema, store, rec, cache, loaded=loaded)
    index = engine.index
    for key, subkey, op, entry in changes:
        current = index.get(key)
        if engine.nested and current is not None:
            current = current.get(subkey)
        if op == "set":
            if current is None or current.digest != entry.digest:
                engine.set_slot(key, subkey, entry)
        elif current is not None:
            engine.del_slot(key, subkey)
    return engine.build_record()


def _key_text(k: tuple[str, Key, Key | None]) -> str:
    return f"{k[0]}[{k[1]!r}]" if k[2] is None else f"{k[0]}[{k[1]!r}][{k[2]!r}]"


def _list(keys: set[tuple[str, Key, Key | None]]) -> str:
    out = [_key_text(k) for k in keys]
    out.sort()
    return ", ".join(out)


def conflict_lines(conflicts: RawConflicts, ours: str, theirs: str) -> list[str]:
    """One line per kind of conflict, naming every key and column."""
    lines = []
    kinds = (
        (conflicts.t1, f"added in both {ours} and {theirs} with different content (t1)"),
        (conflicts.t21, f"removed in {ours}, mutated in {theirs} (t21)"),
        (conflicts.t22, f"removed in {theirs}, mutated in {ours} (t22)"),
        (conflicts.t3, "mutated in both to different content (t3)"),
    )
    for keys, what in kinds:
        if keys:
            lines.append(f"  {what}, {len(keys)} key(s): {_list(keys)}")
    if conflicts.schemas:
        names = ", ".join(sorted(conflicts.schemas))
        lines.append(
            f"  columns changed in {ours} and {theirs} in ways that do not combine "
            f"(schema, or removed on one side while changed on the other): {names}"
        )
    return lines


def conflict_message(conflicts: RawConflicts, ours: str = "master", theirs: str = "dev") -> str:
    """The text of a merge's :class:`MergeConflictError`."""
    return "\n".join(
        [
            (
                "HANGAR VALUE ERROR:: Merge ABORTED with conflict; nothing was changed "
                f"({ours} <- {theirs}):"
            ),
            *conflict_lines(conflicts, ours, theirs),
            (
                "Resolve them on one branch and merge again, or merge with strategy='ours' "
                f"(keep {ours}'s side of each conflict) or strategy='theirs' (take "
                f"{theirs}'s side)."
            ),
        ]
    )


# ---------------------------------------------------------- the branch
class MergeOutcome(NamedTuple):
    """What a merge did: ``kind`` is ``'fast-forward'``, ``'three-way'`` or ``'up-to-date'``."""

    commit: str
    kind: str
    ref: BranchRef
    version: Any


MERGE_TEXT = {
    "fast-forward": "Selected Fast-Forward Merge Strategy",
    "three-way": "Selected 3-Way Merge Strategy",
    "up-to-date": "Already up to date: nothing to merge",
}


class _Request(NamedTuple):
    store: Store
    read_commit: ReadCommit
    cache: BlockCache
    master: str
    dev: str
    dev_head: str
    message: str
    user: tuple[str, str]
    strategy: str | None


def merge_branch(  # noqa: PLR0917
    store: Store,
    read_commit: ReadCommit,
    cache: BlockCache,
    master_branch: str,
    dev_branch: str,
    message: str,
    user: tuple[str, str],
    *,
    strategy: str | None = None,
    lease: Lease | None = None,
) -> MergeOutcome:
    """Merge branch ``dev_branch`` into ``master_branch`` and move it, by compare-and-swap.

    Retries on a new head when the ref moved under it. With ``lease`` (a
    writer checkout of master merging), every swap is also fenced by the
    lease's epoch: a writer that lost its lease cannot move the ref.
    """
    if not isinstance(message, str) or not message:
        raise InvalidKeyError("a merge needs a non-empty message")
    check_strategy(strategy)
    master_branch = validate_name(master_branch, "branch name")
    dev_name = validate_name(dev_branch, "branch name")
    dev_head = branch_head(store, dev_name)
    if dev_head is None:
        raise EmptyHistoryError(f"branch {dev_name!r} has no commit: nothing to merge")
    req = _Request(store, read_commit, cache, master_branch, dev_name, dev_head, message, user,
                   strategy)  # fmt: skip
    key = branch_ref(master_branch)
    for _ in range(_RETRIES):
        try:
            data, version = store.get_versioned(key)
        except ObjectNotFoundError:
            raise RefNotFoundError(f"no branch named {master_branch!r}") from None
        ref = BranchRef.from_bytes(data)
        if lease is not None:
            lease.check()
            if ref.epoch != lease.epoch:
                lease.lose("another writer took the branch")
                raise LeaseLostError(
                    f"merge refused: branch {master_branch!r} was taken by another writer; "
                    "nothing was merged"
                )
        cid, kind = _merge_onto(req, ref.commit)
        if kind == "up-to-date":
            return MergeOutcome(cid, kind, ref, version)
        new_ref = BranchRef(cid, ref.epoch)
        try:
            new_version = store.replace_if_version(key, new_ref.to_bytes(), version)
        except VersionConflictError:
            continue  # master moved (a commit, another merge): merge onto its new head
        if lease is not None:
            lease.moved_ref(new_ref, new_version)
        return MergeOutcome(cid, kind, new_ref, new_version)
    raise VersionConflictError(
        key, None, f"branch {master_branch!r} kept moving: merge gave up after {_RETRIES} tries"
    )


def _merge_onto(req: _Request, m_head: str | None) -> tuple[str, str]:
    """The commit master's head ``m_head`` should move to, and the kind of merge."""
    dev_head, read = req.dev_head, req.read_commit
    if m_head == dev_head:
        return dev_head, "up-to-date"
    if m_head is None:
        return dev_head, "fast-forward"
    anc = common_ancestor(m_head, dev_head, read)
    if anc == dev_head:
        return m_head, "up-to-date"
    if anc == m_head:
        return dev_head, "fast-forward"
    if anc is None:
        raise EmptyHistoryError(
            f"{req.master!r} and {req.dev!r} share no history: there is no common ancestor "
            "to merge against"
        )

    def describe(c: RawConflicts) -> str:
        return conflict_message(c, req.master, req.dev)

    columns = merge_columns(req.store, req.cache, read(anc), read(m_head), read(dev_head),
                            strategy=req.strategy, describe=describe)  # fmt: skip
    record = CommitRecord((m_head, dev_head), req.user[0], req.user[1], now_iso(), req.message,
                          columns)  # fmt: skip
    return write_commit(req.store, record), "three-way"
