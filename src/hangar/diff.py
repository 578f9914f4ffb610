"""Diffs between commits, branches and the staging area, with Hangar 0.5's result types.

A diff compares content digests in the manifests and never reads a chunk
(DESIGN.md, invariant 6). Manifest segments whose digest appears on both
sides hold the same rows on both sides and are not even read: a diff reads
only the segments that differ.

As in Hangar: when the compared commit descends from this checkout's commit
(a fast-forward), ``diff`` holds what it changed; otherwise ``diff`` holds
the changes from the compared commit to this one and ``conflict`` what a
merge of the two would find against their common ancestor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from hangar.ancestry import common_ancestor
from hangar.exceptions import (
    CorruptionError,
    InvalidKeyError,
    ObjectNotFoundError,
    RefNotFoundError,
)
from hangar.format.commits import ColumnRecord, CommitRecord
from hangar.format.manifest import (
    Entry,
    Key,
    SegmentRef,
    decode_digests,
    decode_segment,
    key_order,
)
from hangar.format.names import manifest_key
from hangar.store import Store

if TYPE_CHECKING:
    from hangar.staging import StagingArea

__all__ = [
    "Changes",
    "ColumnSchemaKey",
    "Conflicts",
    "DiffAndConflicts",
    "DiffOut",
    "FlatColumnDataKey",
    "NestedColumnDataKey",
    "ReaderUserDiff",
    "WriterUserDiff",
    "column_states",
    "diff_records",
    "diff_schemas",
    "diff_states",
]


class FlatColumnDataKey(NamedTuple):
    """A sample of a flat column."""

    column: str
    sample: Key


class NestedColumnDataKey(NamedTuple):
    """A subsample of a nested column."""

    column: str
    sample: Key
    subsample: Key


class ColumnSchemaKey(NamedTuple):
    """A column's schema."""

    column: str
    layout: str


class Changes(NamedTuple):
    """Schemas (``ColumnSchemaKey -> schema dict``) and sample keys of one kind of change."""

    schema: dict[ColumnSchemaKey, dict[str, Any]]
    samples: tuple[FlatColumnDataKey | NestedColumnDataKey, ...]


class DiffOut(NamedTuple):
    """What was added, deleted and mutated."""

    added: Changes
    deleted: Changes
    mutated: Changes


class Conflicts(NamedTuple):
    """The four kinds of merge conflict (Hangar's names).

    Attributes
    ----------
    t1
        Added in master and in dev with different content.
    t21
        Removed in master, mutated in dev.
    t22
        Removed in dev, mutated in master.
    t3
        Mutated in both to different content (and, under ``schema``, columns
        whose schemas changed differently).
    conflict
        True if any of them is not empty.
    """

    t1: Changes
    t21: Changes
    t22: Changes
    t3: Changes
    conflict: bool


class DiffAndConflicts(NamedTuple):
    """A diff and the conflicts a merge would meet."""

    diff: DiffOut
    conflict: Conflicts


# (column, key, subkey) -> content digest; subkey is None in flat columns
State = dict[tuple[str, Key, Key | None], bytes]
# (column, key, subkey) -> manifest entry
Entries = dict[tuple[str, Key, Key | None], Entry]
# segment digest -> its decoded rows (whole, or keys and digests only)
Segments = dict[str, list[Any]]
Schemas = dict[str, dict[str, Any]]


class RawDiff(NamedTuple):
    """A two-way diff, keyed by (column, key, subkey), with the new digests."""

    added: State
    deleted: State
    mutated: State
    schemas_added: Schemas
    schemas_deleted: Schemas
    schemas_mutated: Schemas


def _segment_rows(store: Store, seg: SegmentRef, cache: Segments | None, full: bool) -> list[Any]:
    """Decoded rows of a segment: whole entries if ``full``, else only keys and digests."""
    if cache is not None and seg.digest in cache:
        return cache[seg.digest]
    try:
        data = store.get(manifest_key(seg.digest))
    except ObjectNotFoundError as exc:
        raise CorruptionError(f"manifest segment {seg.digest} is missing from the store") from exc
    rows: list[Any]
    rows = list(decode_segment(data, seg.digest)) if full else decode_digests(data, seg.digest)
    if cache is not None:
        cache[seg.digest] = rows
    return rows


def column_states(
    store: Store,
    name: str,
    base: ColumnRecord | None,
    head: ColumnRecord | None,
    *,
    entries: Entries | None = None,
    cache: Segments | None = None,
    full: bool = False,
) -> tuple[State, State]:
    """Rows of one column on both sides, leaving out segments both sides share.

    ``entries``, if given, receives the full manifest entry of every head-side
    row read (what a merge needs to take a sample over without reading it).
    Segments are decoded whole if ``full`` (or ``entries`` is given), else
    only their keys and digests. ``cache`` keeps decoded segments by digest,
    so none is read twice; one cache holds one kind of rows.
    """
    full = full or entries is not None
    base_segs = base.segments if base else ()
    head_segs = head.segments if head else ()
    shared = {s.digest for s in base_segs} & {s.digest for s in head_segs}
    sides: list[State] = []
    for side, segs in enumerate((base_segs, head_segs)):
        state: State = {}
        keep = entries if side == 1 else None
        for seg in segs:
            if seg.digest in shared:
                continue
            rows = _segment_rows(store, seg, cache, full)
            if not full:
                state.update(((name, k, sk), d) for k, sk, d in rows)
                continue
            for key, subkey, entry in rows:
                state[name, key, subkey] = entry.digest
                if keep is not None:
                    keep[name, key, subkey] = entry
        sides.append(state)
    return sides[0], sides[1]


def diff_records(
    store: Store,
    base: CommitRecord | None,
    head: CommitRecord | None,
    *,
    entries: Entries | None = None,
    cache: Segments | None = None,
    full: bool = False,
) -> RawDiff:
    """Two-way diff of two commits (None: the empty repository).

    ``entries``, ``cache`` and ``full`` as in :func:`column_states`.
    """
    bcols = base.columns if base else {}
    hcols = head.columns if head else {}
    out = RawDiff({}, {}, {}, {}, {}, {})
    for name in sorted(set(bcols) | set(hcols)):
        b, h = bcols.get(name), hcols.get(name)
        diff_schemas(out, name, b.schema.to_dict() if b else None,
                      h.schema.to_dict() if h else None)  # fmt: skip
        before, after = column_states(store, name, b, h, entries=entries, cache=cache, full=full)
        diff_states(out, before, after)
    return out


def diff_schemas(
    out: RawDiff, name: str, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> None:
    if before is None and after is not None:
        out.schemas_added[name] = after
    elif after is None and before is not None:
        out.schemas_deleted[name] = before
    elif before != after and after is not None:
        out.schemas_mutated[name] = after


def diff_states(out: RawDiff, before: State, after: State) -> None:
    for k, d in after.items():
        old = before.get(k)
        if old is None:
            out.added[k] = d
        elif old != d:
            out.mutated[k] = d
    for k, d in before.items():
        if k not in after:
            out.deleted[k] = d


def _keys(state: Iterable[tuple[str, Key, Key | None]]) -> tuple[Any, ...]:
    def order(k: tuple[str, Key, Key | None]) -> tuple[Any, ...]:
        return (k[0], key_order(k[1]), key_order(k[2]) if k[2] is not None else (0, 0))

    keys = sorted(state, key=order)
    return tuple(
        FlatColumnDataKey(c, k) if s is None else NestedColumnDataKey(c, k, s) for c, k, s in keys
    )


def _schema_keys(schemas: Schemas) -> dict[ColumnSchemaKey, dict[str, Any]]:
    return {ColumnSchemaKey(n, s["column_layout"]): s for n, s in sorted(schemas.items())}


def to_diff_out(raw: RawDiff) -> DiffOut:
    """Hangar's user-facing form of a raw diff."""
    return DiffOut(
        Changes(_schema_keys(raw.schemas_added), _keys(raw.added)),
        Changes(_schema_keys(raw.schemas_deleted), _keys(raw.deleted)),
        Changes(_schema_keys(raw.schemas_mutated), _keys(raw.mutated)),
    )


class RawConflicts(NamedTuple):
    """Conflicting keys by kind, and columns whose schemas conflict."""

    t1: set[tuple[str, Key, Key | None]]
    t21: set[tuple[str, Key, Key | None]]
    t22: set[tuple[str, Key, Key | None]]
    t3: set[tuple[str, Key, Key | None]]
    schemas: Schemas

    @property
    def any(self) -> bool:
        """Whether there is any conflict."""
        return bool(self.t1 or self.t21 or self.t22 or self.t3 or self.schemas)

    def keys(self) -> set[tuple[str, Key, Key | None]]:
        """Every conflicting (column, key, subkey)."""
        return self.t1 | self.t21 | self.t22 | self.t3


def schema_after(raw: RawDiff, name: str) -> tuple[bool, dict[str, Any] | None]:
    """Whether a diff changed column ``name``'s schema, and the schema after (None: no column)."""
    if name in raw.schemas_deleted:
        return True, None
    for changed in (raw.schemas_added, raw.schemas_mutated):
        if name in changed:
            return True, changed[name]
    return False, None


def sample_columns(raw: RawDiff) -> set[str]:
    """Columns in which a diff added, deleted or changed a sample."""
    return {k[0] for part in (raw.added, raw.deleted, raw.mutated) for k in part}


def changed_columns(raw: RawDiff) -> set[str]:
    """Columns whose schema a diff changed (added, deleted, re-created)."""
    return set(raw.schemas_added) | set(raw.schemas_deleted) | set(raw.schemas_mutated)


def find_conflicts(master: RawDiff, dev: RawDiff) -> RawConflicts:
    """Conflicts between two diffs from a common ancestor (Hangar's four kinds).

    Samples: t1 added on both sides with different content, t21 removed in
    master and mutated in dev, t22 the reverse, t3 mutated on both sides to
    different content. Columns (under ``schemas``, with the schema the
    changing side gives them, dev's if both did, or the last schema of a
    column removed): changed differently on both sides, or changed on one
    side (added, removed, re-created) while the other side changed its
    samples. The same change made on both sides is no conflict.
    """
    t1 = {k for k, d in dev.added.items() if k in master.added and master.added[k] != d}
    t21 = {k for k in dev.mutated if k in master.deleted}
    t22 = {k for k in master.mutated if k in dev.deleted}
    t3 = {k for k, d in dev.mutated.items() if k in master.mutated and master.mutated[k] != d}
    schemas: Schemas = {}
    m_samples, d_samples = sample_columns(master), sample_columns(dev)
    for name in sorted(changed_columns(master) | changed_columns(dev)):
        m_changed, m_after = schema_after(master, name)
        d_changed, d_after = schema_after(dev, name)
        if m_changed and d_changed:
            clash = m_after != d_after
        else:
            clash = (m_changed and name in d_samples) or (d_changed and name in m_samples)
        if clash:
            side, after = (dev, d_after) if d_changed else (master, m_after)
            schemas[name] = after if after is not None else side.schemas_deleted[name]
    return RawConflicts(t1, t21, t22, t3, schemas)


def to_conflicts(raw: RawConflicts | None) -> Conflicts:
    """Hangar's user-facing form of raw conflicts."""
    if raw is None:
        empty = Changes({}, ())
        return Conflicts(empty, empty, empty, empty, False)
    return Conflicts(
        Changes({}, _keys(raw.t1)),
        Changes({}, _keys(raw.t21)),
        Changes({}, _keys(raw.t22)),
        Changes(_schema_keys(raw.schemas), _keys(raw.t3)),
        raw.any,
    )


class ReaderUserDiff:
    """``co.diff``: compare this checkout's commit with a branch or a commit."""

    def __init__(
        self,
        store: Store,
        read_commit: Callable[[str], CommitRecord],
        resolve: Callable[[str], str],
        branch_head: Callable[[str], str | None],
        commit: Callable[[], str | None],
    ) -> None:
        self._store = store
        self._read = read_commit
        self._resolve = resolve
        self._branch_head = branch_head
        self._commit = commit

    def _record(self, cid: str | None) -> CommitRecord | None:
        if cid is None:
            return None
        try:
            return self._read(cid)
        except ObjectNotFoundError:
            raise RefNotFoundError(f"no commit {cid!r} in this repository") from None

    def commit(self, dev_commit_hash: str) -> DiffAndConflicts:
        """Diff this checkout's commit against ``dev_commit_hash`` (or a tag name)."""
        if not isinstance(dev_commit_hash, str):
            raise InvalidKeyError(f"not a commit: {dev_commit_hash!r}")
        dev = self._resolve(dev_commit_hash)
        dev_rec = self._record(dev)
        master = self._commit()
        if master is None:  # a branch with no commit yet: everything in dev is new
            return DiffAndConflicts(to_diff_out(diff_records(self._store, None, dev_rec)),
                                    to_conflicts(None))  # fmt: skip
        master_rec = self._record(master)
        anc = common_ancestor(master, dev, self._read)
        if anc == master:  # fast-forward: what dev added on top of this commit
            raw = diff_records(self._store, master_rec, dev_rec)
            return DiffAndConflicts(to_diff_out(raw), to_conflicts(None))
        anc_rec = self._record(anc)
        seen: Segments = {}  # three diffs over three commits: read each segment once
        m = diff_records(self._store, anc_rec, master_rec, cache=seen)
        d = diff_records(self._store, anc_rec, dev_rec, cache=seen)
        raw = diff_records(self._store, dev_rec, master_rec, cache=seen)
        return DiffAndConflicts(to_diff_out(raw), to_conflicts(find_conflicts(m, d)))

    def branch(self, dev_branch: str) -> DiffAndConflicts:
        """Diff this checkout's commit against the head of branch ``dev_branch``."""
        head = self._branch_head(dev_branch)
        if head is None:
            raise RefNotFoundError(f"branch {dev_branch!r} has no commit yet: nothing to diff")
        return self.commit(head)


class WriterUserDiff(ReaderUserDiff):
    """``co.diff`` of a writer checkout: also the staged changes."""

    def __init__(self, staging: Callable[[], StagingArea], *args: Any) -> None:
        super().__init__(*args)
        self._staging = staging

    def staged(self) -> DiffAndConflicts:
        """What is staged and not committed, relative to the branch head."""
        staging = self._staging()
        raw = staging.staged_diff()
        return DiffAndConflicts(to_diff_out(raw), to_conflicts(None))

    def status(self) -> str:
        """``'DIRTY'`` if anything is staged, else ``'CLEAN'`` (as Hangar)."""
        return "DIRTY" if self._staging().has_changes else "CLEAN"
