"""A writer checkout's staging area: journaled writes, with-block buffers, commits.

Writes outside a ``with`` block are in the store's staging journal when the
call returns (one object per write, the sample's bytes inline), so they
survive a crash of the writer process. Inside ``with col:`` blocks writes are
buffered; on leaving the outermost block their samples are packed into chunks
(:mod:`hangar.packing`) and one journal entry records them all. A commit packs what is still inline,
writes manifests, the commit record, and moves the branch ref by
compare-and-swap against the version this writer's lease fenced
(DESIGN.md, invariants 1 and 3).
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np

from hangar import _gcpause
from hangar._progress import progress
from hangar._uploads import Uploads
from hangar.columns._engine import ColumnEngine, Pending
from hangar.columns._index import SegmentIndex
from hangar.columns._rows import RowBuffer
from hangar.diff import RawConflicts, RawDiff, State, column_states, diff_schemas, diff_states
from hangar.exceptions import (
    HangarError,
    LeaseLostError,
    MergeConflictError,
    StagingBrokenError,
    VersionConflictError,
)
from hangar.format.chunks import (
    BlockCache,
    Run,
    runs_of,
    uniform_layout,
)
from hangar.format.commits import ColumnRecord, CommitRecord, read_commit, write_commit
from hangar.format.lease import Lease
from hangar.format.manifest import Key
from hangar.format.names import branch_ref, chunk_key
from hangar.format.records import BranchRef
from hangar.format.sample_digest import SampleDigest
from hangar.format.schema import ColumnSchema
from hangar.format.staging import (
    JournalEntry,
    StagingState,
    append_entry,
    delete_entries,
    entry_epoch,
    entry_seq,
    list_entries,
    log_name,
    read_entries,
    read_state,
    write_entry,
    write_state,
)
from hangar.merge import conflict_lines, merge_columns, now_iso
from hangar.packing import Buffered, RowPacker, is_live, pack_pending, pack_rows
from hangar.refs import is_ancestor
from hangar.replay import packed_op, replay_entry
from hangar.store import Store, Version

__all__ = ["StagingArea"]

_ENTRY_READERS = 8  # journal entries read at once when a writer adopts them

_RETRIES = 50


class StagingArea:
    """The staged state of one branch, owned by its writer checkout."""

    def __init__(
        self,
        store: Store,
        lease: Lease,
        base: CommitRecord | None,
        base_commit: str | None,
        cache: BlockCache,
        *,
        digest: SampleDigest,
    ) -> None:
        self.store = store
        self.digest = digest  # the repository's sample digest scheme
        self.lease = lease
        self.branch = lease.branch
        self.cache = cache
        self.base: CommitRecord | None
        self.base_commit: str | None
        self.columns: dict[str, ColumnEngine]
        self.schemas_changed: bool
        self._set_base(base, base_commit)
        self._seq = 0
        self._log: str | None = None  # the log this writer appends entries to (see _write)
        self._buffer_depth = 0
        self._buffer: JournalEntry | None = None
        self._buffered: list[Buffered] = []
        self._packers: dict[str, RowPacker] = {}  # per column, in an open with-block
        # chunk and segment writes in flight where each request is a round trip
        self._uploads = Uploads(in_flight=store.capabilities.round_trips)
        self._broken: str | None = None  # why recovering from a failed write failed
        self._adopt()

    def _set_base(self, base: CommitRecord | None, base_commit: str | None) -> None:
        """Make ``base_commit`` what the staging area starts from, with no change staged.

        Engines of columns the base has (same schema) are rebased in place, so
        column objects users hold see the new state. The others are parked:
        dropped until a journal replay or ``add_column`` brings the column back
        with the same schema.
        """
        self.base, self.base_commit = base, base_commit
        old: dict[str, ColumnEngine] = {**getattr(self, "_parked", {}),
                                        **getattr(self, "columns", {})}  # fmt: skip
        self.columns = {}
        for name, rec in (base.columns if base else {}).items():
            engine = old.pop(name, None)
            if engine is not None and engine.schema == rec.schema:
                engine.rebase(rec)
            else:
                if engine is not None:
                    engine.dropped = True
                engine = ColumnEngine(name, rec.schema, self.store, rec, self.cache,
                                      digest=self.digest)  # fmt: skip
            self.columns[name] = engine
        for engine in old.values():
            engine.rebase(None)
            engine.dropped = True
        self._parked = old
        self.schemas_changed = False

    # ------------------------------------------------------------ journal
    def _adopt(self) -> None:
        """Take over the staging journal: adopt live entries and replay them.

        Live entries are replayed on the commit they were staged on, which may
        be older than the branch head (a merge moved the branch, or a writer
        crashed between moving the ref and clearing its journal): the commit
        is then rebuilt on the head, see :meth:`commit`.
        """
        found = read_state(self.store, self.branch)
        names = list_entries(self.store, self.branch)
        if found is None:
            live: list[str] = []
            version = None
        else:
            state, version = found
            live = state.live(names)
            if live and self._landed(state.committing):
                live = []  # committed by a writer that died before clearing its journal
            elif live and state.base_commit != self.base_commit:
                base = read_commit(self.store, state.base_commit) if state.base_commit else None
                self._set_base(base, state.base_commit)
        # read before the state names them: an adopted log is pinned at the length read
        adopted = self._read_entries(live)
        pins = tuple(pin for _, pin in adopted)
        new_state = StagingState(self.lease.epoch, self.base_commit, pins, 0)
        try:
            self._state_version = write_state(self.store, self.branch, new_state, version)
        except VersionConflictError as exc:
            self.lease.lose("another writer changed the staging area")
            raise LeaseLostError(
                f"another writer took branch {self.branch!r} while this one was opening"
            ) from exc
        self._state = new_state
        own = [n for n in names if entry_epoch(n) == self.lease.epoch]
        self._seq = max((entry_seq(n) for n in own), default=-1) + 1
        self._log = None
        self._replay_all(adopted)

    def _read_entries(self, names: list[str]) -> list[tuple[list[JournalEntry], str]]:
        """The entries of journal entries or logs ``names``, in order, with their pins.

        On an object store each is a round trip: several are read at once.
        """
        with ThreadPoolExecutor(_ENTRY_READERS) as pool:
            return list(pool.map(lambda n: read_entries(self.store, self.branch, n), names))

    def _recover(self, exc: BaseException) -> None:
        """After a failed with-block exit: back to what the journal holds.

        Whatever the block changed in memory (rows indexed, samples packed for
        some columns, deletes) is dropped by rebuilding the staged state from
        the live journal entries; the block's own entry is in it only if its
        write went through. If the journal cannot be read either, the writer
        shows its base commit and refuses to stage or commit
        (:class:`StagingBrokenError`) until it is reopened or reset.
        """
        self._log = None  # a failed append may have left a torn frame: start a new log
        self._uploads.drain()
        self._buffer = None
        self._buffered = []
        self._packers = {}
        try:
            entries = self._read_entries(self._state.live(list_entries(self.store, self.branch)))
            self._set_base(self.base, self.base_commit)
            self._replay_all(entries)
        except Exception as again:  # noqa: BLE001 - any failure leaves the same state
            self._set_base(self.base, self.base_commit)
            self._broken = f"{type(again).__name__}: {again}"
            exc.add_note(
                "hangar: the with-block's writes were not stored, and reading the staging "
                f"journal back failed too ({self._broken}); this writer now shows its base "
                "commit. Open a new writer checkout to get the staged changes back."
            )
            return
        exc.add_note(
            "hangar: the with-block's writes were not stored; the staging area is back to "
            "what was stored before the block (nothing staged before it is lost)"
        )

    def check_usable(self) -> None:
        """Raise StagingBrokenError if a failed recovery left this writer without its state."""
        if self._broken is not None:
            raise StagingBrokenError(
                f"this writer checkout of branch {self.branch!r} could not rebuild its staged "
                f"changes after a failed write ({self._broken}). They are in the staging "
                "journal: open a new writer checkout to get them back, or call "
                "reset_staging_area() to drop them."
            )

    def _landed(self, committing: str | None) -> bool:
        """Whether commit ``committing`` is in the branch's history (its ref swap happened)."""
        if committing is None or self.base_commit is None:
            return False
        return is_ancestor(committing, [self.base_commit], self._read)

    def _read(self, cid: str) -> CommitRecord:
        return read_commit(self.store, cid)

    def _replay_all(self, read: list[tuple[list[JournalEntry], str]]) -> None:
        """Replay what :meth:`_read_entries` read, in order."""
        for entries, _ in read:
            for entry in entries:
                self._replay(entry)

    def _replay(self, entry: JournalEntry) -> None:
        if replay_entry(entry, self.columns, self._new_engine, self.branch):
            self.schemas_changed = True

    def _new_engine(self, name: str, schema: ColumnSchema) -> ColumnEngine:
        """The engine of a column added now: a parked one of that name and schema, or new."""
        engine = self._parked.pop(name, None)
        if engine is not None and engine.schema == schema:
            engine.dropped = False
            return engine
        return ColumnEngine(name, schema, self.store, None, self.cache, digest=self.digest)

    def _write(self, entry: JournalEntry) -> None:
        """Journal one entry: appended to this writer's log where the store can append
        (one write, no new file), else one object of its own."""
        self.check_usable()
        self.lease.verify()
        if self.store.capabilities.append:
            if self._log is None:
                self._log = log_name(self.lease.epoch, self._seq)
                self._seq += 1
            try:
                append_entry(self.store, self.branch, self._log, entry)
            except BaseException:
                # part of the frame may be there: readers stop at a torn frame, so
                # nothing may follow it in this log
                self._log = None
                raise
            return
        write_entry(self.store, self.branch, self.lease.epoch, self._seq, entry)
        self._seq += 1

    def _emit(self, op: list[Any], inline: np.ndarray[Any, Any] | None = None) -> None:
        """Record one operation: buffered inside a with-block, journaled at once outside."""
        if self._buffer is not None:
            self._buffer.ops.append(op)
            return
        entry = JournalEntry()
        if inline is not None:
            op[7] = entry.add_inline(
                inline.data.cast("B") if inline.data.c_contiguous else inline.tobytes()
            )
        entry.ops.append(op)
        self._write(entry)

    # ----------------------------------------------------- with-block buffer
    def enter(self) -> None:
        if self._buffer_depth == 0:
            self.check_usable()
            self.lease.check()
            self._buffer = JournalEntry()
            self._buffered = []
            self._packers = {}
            for engine in self.columns.values():
                self._start_rows(engine)
            _gcpause.pause()
        self._buffer_depth += 1

    def _start_rows(self, engine: ColumnEngine) -> None:
        if engine.takes_rows:
            schema = engine.schema
            _, per_chunk = uniform_layout(
                schema.sample_nbytes, schema.block_bytes, schema.chunk_bytes
            )
            engine.rows = RowBuffer(
                engine.index.fast_target(), schema.np_dtype, schema.shape or (), per_chunk,
                spill=lambda page: self._packer(engine).spill(page),
                on_full=lambda n, keys, rows: self._packer(engine).start_background(n, keys, rows),
            )  # fmt: skip

    def _packer(self, engine: ColumnEngine) -> RowPacker:
        """The packer of a column's rows in the open with-block (made when first needed)."""
        packer = self._packers.get(engine.name)
        if packer is None or packer.engine is not engine:
            packer = self._packers[engine.name] = RowPacker(
                engine, self.digest, self._start_chunk, self._uploads.wait
            )
        return packer

    def exit(self) -> None:
        self._buffer_depth -= 1
        if self._buffer_depth > 0:
            return
        try:
            self._flush_buffered()
            buffer, self._buffer = self._buffer, None
            assert buffer is not None
            if buffer.ops:
                self._write(buffer)
        except BaseException as exc:
            self._recover(exc)
            raise
        finally:
            self._buffer = None
            for packer in self._packers.values():  # a failed block: nothing left running
                packer.abandon_background()
            self._packers = {}
            for engine in self.columns.values():
                engine.rows = None
            _gcpause.resume()

    def close_blocks(self) -> None:
        """End any ``with`` blocks still open (the checkout is closing): flush them."""
        if self._buffer_depth > 0:
            self._buffer_depth = 1
            self.exit()

    def _flush_buffered(self) -> None:
        """Pack the samples buffered in this block and add them to the buffer, one op per column.

        Only samples that are still the value of their key are packed: a key
        written twice keeps its last value, a key deleted after it was written
        none. They go after the block's deletes in the journal, which is
        right since each is the last thing that happened to its key.
        """
        assert self._buffer is not None
        buffered, self._buffered = self._buffered, []
        live = [it for it in buffered if is_live(it)]
        for engine, group, locs in pack_pending(live, self._start_chunk):
            shapes = [None if it[3].shape is None else list(it[3].shape) for it in group]
            self._emit_set(
                engine,
                [it[1] for it in group],
                [it[2] for it in group] if engine.nested else None,
                [it[3].digest for it in group],
                None if all(sh is None for sh in shapes) else shapes,
                runs_of(locs),
            )
        for engine in self.columns.values():
            rows = engine.rows
            if rows is not None and len(rows):
                self._flush_rows(engine, rows)
        self._uploads.wait()  # the entry, and reads in the block, may name the chunks now

    def _flush_rows(self, engine: ColumnEngine, rows: RowBuffer) -> None:
        """Pack a column's buffered rows and journal them: one op for the whole column."""
        packer = self._packer(engine)
        packed = pack_rows(rows, packer)
        del self._packers[engine.name]
        if packed.keys:
            assert self._buffer is not None
            self._buffer.ops.append(packed_op(self._buffer, engine.name, packed))
            self._buffer.ops.extend(packer.fixups())

    def _emit_set(  # noqa: PLR0917
        self,
        engine: ColumnEngine,
        keys: list[Key],
        subkeys: list[Key | None] | None,
        digests: list[bytes],
        shapes: list[list[int] | None] | None,
        runs: list[Run],
        same: list[list[int]] | None = None,
    ) -> None:
        """Journal samples packed into chunks: one op for all of them.

        ``same``: pairs ``[i, j]``, key ``i`` is stored where key ``j`` is
        (a repeated sample); the runs cover the other keys, in order.
        """
        assert self._buffer is not None
        digest_hex = b"".join(digests).hex()
        op: list[Any] = ["setruns", engine.name, keys, subkeys, digest_hex, shapes]
        op.append([list(r) for r in runs])
        if same:
            op.append(same)
        self._buffer.ops.append(op)

    # --------------------------------------------------------------- writes
    def add_column(self, name: str, schema: ColumnSchema) -> ColumnEngine:
        if self._buffer is not None:
            self._flush_buffered()  # keep the journal in the order things happened
        self._emit(["add", name, schema.to_dict()])
        engine = self._new_engine(name, schema)
        self.columns[name] = engine
        if self._buffer is not None:
            self._start_rows(engine)
        self.schemas_changed = True
        return engine

    def drop_column(self, name: str) -> None:
        if self._buffer is not None:
            self._flush_buffered()
        self._emit(["drop", name])
        engine = self.columns.pop(name)
        engine.rebase(None)
        engine.dropped = True
        self._parked[name] = engine  # adding the column again revives held column objects
        self.schemas_changed = True

    def set(self, engine: ColumnEngine, key: Key, subkey: Key | None, pending: Pending) -> None:
        engine.check_current()
        if self._buffer is not None:
            # journaled in bulk when the block ends; ops for columns added or dropped
            # inside the block stay in order before these sets
            self._buffered.append((engine, key, subkey, pending))
            if engine.rows is not None:
                engine.rows.dirty = True
        else:
            shape = None if pending.shape is None else list(pending.shape)
            digest = pending.digest.hex()
            op: list[Any] = ["set", engine.name, key, subkey, digest, shape, None, None]
            self._emit(op, pending.array)
            engine.unpacked = True
        engine.set_slot(key, subkey, pending)

    def delete(self, engine: ColumnEngine, key: Key, subkey: Key | None) -> None:
        if engine.rows is not None:
            engine.rows.dirty = True
        self._emit(["del", engine.name, key, subkey])
        engine.del_slot(key, subkey)

    # ---------------------------------------------------------------- pack
    def _start_put(self, key: str, data: bytes) -> None:
        """``store.put``, started (see :mod:`hangar._uploads`)."""
        self._uploads.start(self.store.put, key, data)

    def _start_chunk(self, digest: str, data: bytes) -> None:
        """:meth:`_store_chunk`, started (see :mod:`hangar._uploads`)."""
        self._uploads.start(self._store_chunk, digest, data)

    def _store_chunk(self, digest: str, data: bytes) -> None:
        """Store a chunk unless it is there already (content-addressed: same name, same bytes).

        Samples written again in the same order pack into the same chunks, so
        re-adding identical content uploads no chunk bytes.
        """
        key = chunk_key(digest)
        if not self.store.exists(key):
            self.store.put(key, data)

    # --------------------------------------------------------------- commit
    def commit(self, message: str, user_name: str, user_email: str) -> str:
        """Write everything staged as a commit on the branch and return its id."""
        with _gcpause.gc_paused():
            return self._commit(message, user_name, user_email)

    def _commit(self, message: str, user_name: str, user_email: str) -> str:
        self.check_usable()
        self.lease.check()
        if self._buffer is not None:
            raise HangarError(
                "commit() inside a `with column:` block: leave the block first, so that "
                "its writes are flushed"
            )
        pending: list[Buffered] = [
            (e, k, sk, p) for e in self.columns.values() for k, sk, p in e.pending_items()
        ]
        pack_pending(pending, self._store_chunk)
        for engine in self.columns.values():
            engine.unpacked = False
        columns: dict[str, ColumnRecord] = {}
        # a commit of millions of samples writes hundreds of segments: a bar after 2 s
        with progress(f"commit to {self.branch!r}", "segment") as bar:
            try:
                for name, engine in sorted(self.columns.items()):
                    columns[name] = engine.build_record(put=self._start_put, written=bar.update)
            except BaseException:
                self._uploads.drain()  # nothing keeps running; the first error is raised
                raise
            self._uploads.wait()  # every segment is stored before the commit names it
        parents = (self.base_commit,) if self.base_commit else ()
        staged = CommitRecord(parents, user_name, user_email, now_iso(), message, columns)
        cid, record = self._move_ref(staged)
        if record is staged:
            for name, engine in self.columns.items():
                engine.committed(columns[name])
            self.base, self.base_commit = record, cid
            self.schemas_changed = False
        else:  # rebuilt on a newer head: start again from what landed
            self._set_base(record, cid)
        self._reset_journal(cid)
        return cid

    def _move_ref(self, staged: CommitRecord) -> tuple[str, CommitRecord]:
        """Write the commit and swap the branch ref to it; return what landed.

        The swap is against the ref version this writer last saw, carrying its
        lease epoch. If the ref moved since, a newer epoch means this writer
        was fenced out (:class:`LeaseLostError`); the same epoch means a merge
        moved the branch, and the staged changes are rebuilt on the new head
        (:meth:`_rebuild`) and swapped again.
        """
        try:
            return self._swap(staged)
        except MergeConflictError:
            if self._state.committing is not None:  # that commit never landed
                self._write_state(replace(self._state, committing=None))
            raise

    def _swap(self, staged: CommitRecord) -> tuple[str, CommitRecord]:
        lease = self.lease
        key = branch_ref(self.branch)
        head, version = lease.ref.commit, lease.ref_version
        fresh = False  # head and version were just read from the store
        for _ in range(_RETRIES):
            record = staged
            if head != self.base_commit:
                if not fresh:  # the branch moved before: rebuild on where it is now
                    head, version = self._current_ref()
                    fresh = True
                assert head is not None
                record, new = self._rebuild(staged, head)
                if not new:
                    return head, record
            cid = write_commit(self.store, record)
            lease.check()
            self._write_state(replace(self._state, committing=cid))
            ref = BranchRef(cid, lease.epoch)
            try:
                version = self.store.replace_if_version(key, ref.to_bytes(), version)
            except VersionConflictError:
                head, version = self._current_ref()
                fresh = True
                continue
            lease.moved_ref(ref, version)
            return cid, record
        raise VersionConflictError(
            key, None, f"branch {self.branch!r} kept moving: commit gave up after {_RETRIES} tries"
        )

    def _current_ref(self, what: str = "commit") -> tuple[str | None, Version]:
        """The branch head now and the ref's version; LeaseLostError if another writer took it."""
        data, version = self.store.get_versioned(branch_ref(self.branch))
        now = BranchRef.from_bytes(data)
        if now.epoch != self.lease.epoch:
            self.lease.lose("the branch ref moved under it: another writer was fenced in")
            raise LeaseLostError(
                f"{what} refused: branch {self.branch!r} was taken by another writer "
                "(its lease expired or was force-released); nothing was changed"
            )
        return now.commit, version

    def _rebuild(self, staged: CommitRecord, head: str) -> tuple[CommitRecord, bool]:
        """The staged changes (made on the base commit) applied on ``head`` instead.

        Returns the commit to write and True, or ``head``'s own record and
        False when ``head`` already holds every staged change: a writer
        crashed after its commit moved the ref, before it cleared the journal.
        """
        head_rec = read_commit(self.store, head)

        def describe(c: RawConflicts) -> str:
            return "\n".join(
                [
                    (
                        f"commit refused: branch {self.branch!r} moved to {head} while this "
                        f"writer was staging on {self.base_commit}, and both changed the "
                        "same keys; nothing was committed:"
                    ),
                    *conflict_lines(c, "the branch head", "this writer"),
                    (
                        "The staged changes are kept. reset_staging_area() drops them and "
                        "moves this writer to the new head."
                    ),
                ]
            )

        columns = merge_columns(self.store, self.cache, self.base, head_rec, staged,
                                describe=describe)  # fmt: skip
        if columns == head_rec.columns:
            return head_rec, False
        return replace(staged, parents=(head,), time=now_iso(), columns=columns), True

    def moved_to(self, commit: str, record: CommitRecord) -> None:
        """This writer moved the branch to ``commit`` (a merge): stage on it from now on."""
        self._set_base(record, commit)
        self._reset_journal(commit)

    def _reset_journal(self, base_commit: str | None) -> None:
        old = list_entries(self.store, self.branch)
        self._write_state(StagingState(self.lease.epoch, base_commit, (), self._seq))
        self._log = None  # the next entry starts a new log, live from its first byte
        # the new state already says the old entries are dead: deleting them is cleanup,
        # all at once, and one that fails is left for the next reset (which lists them all)
        deletes = Uploads(in_flight=self.store.capabilities.round_trips)
        try:
            delete_entries(self.store, self.branch, old, deletes.start)
            deletes.wait()
        except Exception as exc:  # noqa: BLE001 - reported, not raised: nothing is lost
            warnings.warn(
                f"branch {self.branch!r}: removing dead staging journal entries failed "
                f"({exc!r}); they are ignored, and removed at the next commit or reset",
                RuntimeWarning,
                stacklevel=3,
            )

    def _write_state(self, state: StagingState) -> None:
        """Swap the staging state; losing the swap means another writer took the branch."""
        try:
            self._state_version = write_state(self.store, self.branch, state, self._state_version)
        except VersionConflictError as exc:
            self.lease.lose("another writer took over the staging area")
            raise LeaseLostError(
                f"branch {self.branch!r} was taken by another writer (its staging area "
                "changed under this one)"
            ) from exc
        self._state = state

    def reset(self) -> None:
        """Drop every staged change: back to the branch head (its current one)."""
        self.lease.check()
        if self._buffer is not None:
            raise HangarError(
                "reset_staging_area() inside a `with column:` block: leave the block first"
            )
        head, version = self._current_ref("reset")
        self._broken = None  # the reset drops what could not be rebuilt
        if head != self.base_commit:  # a merge moved the branch: start from its head
            self.lease.moved_ref(BranchRef(head, self.lease.epoch), version)
            base = read_commit(self.store, head) if head else None
            self._set_base(base, head)
        else:
            self._set_base(self.base, self.base_commit)
        self._reset_journal(self.base_commit)

    def staged_diff(self) -> RawDiff:
        """The staged changes against the base commit, from digests (no chunk is read)."""
        base_cols = self.base.columns if self.base else {}
        out = RawDiff({}, {}, {}, {}, {}, {})
        for name in sorted(set(base_cols) | set(self.columns)):
            rec, engine = base_cols.get(name), self.columns.get(name)
            if engine is None or rec is None or rec.schema != engine.schema:
                # a column added, dropped or re-created: every sample on each side
                before, _ = column_states(self.store, name, rec, None)
                after: State = {}
                if engine is not None:
                    after = {
                        (name, k, sk): d
                        for k, v in engine.index.items()
                        for sk, d in _slot_digests(engine, v).items()
                    }
                diff_schemas(out, name, rec.schema.to_dict() if rec else None,
                             engine.schema.to_dict() if engine else None)  # fmt: skip
                diff_states(out, before, after)
                continue
            touched = engine.touched()
            if not touched:
                continue
            base_index = SegmentIndex(self.store, rec.segments, engine.nested, rec.samples)
            before = {}
            after = {}
            for key in touched:
                for sub, d in _slot_digests(engine, base_index.get(key)).items():
                    before[name, key, sub] = d
                for sub, d in _slot_digests(engine, engine.index.get(key)).items():
                    after[name, key, sub] = d
            diff_states(out, before, after)
        return out

    @property
    def has_changes(self) -> bool:
        return self.schemas_changed or any(e.touched() for e in self.columns.values())


def _slot_digest(engine: ColumnEngine, slot: Any) -> bytes:
    if isinstance(slot, int):
        if slot < 0:  # a row packed by a with-block (hangar.columns._table)
            return engine.table.digest(slot)
        # a row buffered in an open with-block
        assert engine.rows is not None
        assert engine.digest is not None  # a writer's column
        return engine.digest.of(engine.rows.row(slot), engine.variable)
    digest: bytes = slot.digest
    return digest


def _slot_digests(engine: ColumnEngine, value: Any) -> dict[Key | None, bytes]:
    """subkey (None in flat columns) -> digest of one key's value (None: no such key)."""
    if value is None:
        return {}
    if engine.nested:
        return {sk: _slot_digest(engine, s) for sk, s in value.items()}
    return {None: _slot_digest(engine, value)}
