"""The writer lease of a branch, fenced through the branch ref (DESIGN.md, invariant 3).

Taking a lease:

1. create ``leases/heads/<branch>.json`` with create-if-absent, or replace an
   expired or released one by compare-and-swap; the new lease's epoch is one
   more than any epoch seen in the old lease or the ref;
2. write that epoch into the branch ref by compare-and-swap (same commit, new
   epoch). From then on a writer of an older epoch cannot move the ref: its
   swap is against a version that no longer exists.

While held, a heartbeat thread renews the lease (compare-and-swap, every third
of its duration). A writer checks :meth:`Lease.check` before every staging
write and commit: it fails once a renewal lost (force-released, taken over) or
once the lease may have expired by the writer's own monotonic clock.

Release replaces the lease with a *released* record (compare-and-swap) rather
than deleting it: a delete cannot be made conditional on every store, and an
unconditional delete could remove a lease another writer has just taken.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import threading
import time
import uuid
from dataclasses import replace

from hangar.exceptions import (
    AlreadyExistsError,
    LeaseLostError,
    LockHeldError,
    ObjectNotFoundError,
    VersionConflictError,
)
from hangar.format.names import branch_ref, lease_key
from hangar.format.records import BranchRef, LeaseRecord
from hangar.store import Store, Version

__all__ = ["Lease", "force_release", "lease_is_live", "read_lease"]

_RETRIES = 20


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(t: dt.datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def read_lease(store: Store, branch: str) -> tuple[LeaseRecord, Version] | None:
    """The current lease record of ``branch`` and its version, or None."""
    try:
        data, version = store.get_versioned(lease_key(branch))
    except ObjectNotFoundError:
        return None
    return LeaseRecord.from_bytes(data), version


def lease_is_live(store: Store, branch: str) -> bool:
    """Whether an unexpired, unreleased lease holds ``branch`` (the written expiry is advice)."""
    current = read_lease(store, branch)
    return current is not None and not _is_free(current[0])


def _is_free(record: LeaseRecord) -> bool:
    return bool(record.extra.get("released")) or _parse(record.expires) <= _now()


def _held_message(record: LeaseRecord) -> str:
    return (
        "Cannot acquire the writer lock. Only one instance of a writer checkout can be "
        "active at a time. If the last checkout of this repository did not properly close, "
        "or a crash occurred, the lock must be manually freed before another writer can be "
        f"instantiated. Branch {record.branch!r} is held by {record.user_name} "
        f"(host {record.host}, pid {record.pid}, lease epoch {record.epoch}) until "
        f"{record.expires}; an expired lease is taken over without any manual step, or use "
        "repo.force_release_writer_lock()."
    )


class Lease:
    """A writer lease this process holds on one branch."""

    def __init__(
        self,
        store: Store,
        record: LeaseRecord,
        version: Version,
        ref: BranchRef,
        ref_version: Version,
    ) -> None:
        self.store = store
        self.record = record
        self._version = version
        self.ref = ref
        self.ref_version = ref_version
        self._lost: str | None = None
        self._deadline = time.monotonic() + record.duration_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --------------------------------------------------------------- taking
    @classmethod
    def acquire(cls, store: Store, branch: str, user_name: str, duration_s: float) -> Lease:
        """Take the lease of ``branch`` or raise :class:`LockHeldError`."""
        for _ in range(_RETRIES):
            ref_data, ref_version = store.get_versioned(branch_ref(branch))
            ref = BranchRef.from_bytes(ref_data)
            current = read_lease(store, branch)
            epoch = ref.epoch + 1
            if current is not None:
                old, old_version = current
                if not _is_free(old):
                    raise LockHeldError(_held_message(old))
                epoch = max(epoch, old.epoch + 1)
            record = cls._new_record(branch, user_name, epoch, duration_s)
            try:
                if current is None:
                    version = store.put_if_absent(lease_key(branch), record.to_bytes())
                else:
                    version = store.replace_if_version(
                        lease_key(branch), record.to_bytes(), old_version
                    )
            except (AlreadyExistsError, VersionConflictError):
                continue  # someone else moved first: look again
            lease = cls(store, record, version, ref, ref_version)
            lease._fence()
            return lease
        raise LockHeldError(f"could not take the lease of branch {branch!r}: too much contention")

    @staticmethod
    def _new_record(branch: str, user_name: str, epoch: int, duration_s: float) -> LeaseRecord:
        now = _now()
        return LeaseRecord(
            branch=branch,
            holder=uuid.uuid4().hex,
            epoch=epoch,
            user_name=user_name,
            host=socket.gethostname(),
            pid=os.getpid(),
            acquired=_iso(now),
            expires=_iso(now + dt.timedelta(seconds=duration_s)),
            duration_s=float(duration_s),
        )

    def _fence(self) -> None:
        """Write our epoch into the branch ref (same commit), by compare-and-swap."""
        key = branch_ref(self.record.branch)
        for _ in range(_RETRIES):
            data, version = self.store.get_versioned(key)
            ref = BranchRef.from_bytes(data)
            if ref.epoch >= self.record.epoch:
                self._lost = "a newer writer fenced the branch"
                raise LeaseLostError(f"lost the lease of {self.record.branch!r} while taking it")
            fenced = BranchRef(ref.commit, self.record.epoch)
            try:
                self.ref_version = self.store.replace_if_version(key, fenced.to_bytes(), version)
            except VersionConflictError:
                continue
            self.ref = fenced
            return
        raise LeaseLostError(f"could not fence branch {self.record.branch!r}: too much contention")

    # ------------------------------------------------------------- holding
    @property
    def branch(self) -> str:
        return self.record.branch

    @property
    def epoch(self) -> int:
        return self.record.epoch

    def check(self) -> None:
        """Raise :class:`LeaseLostError` unless this lease is certainly still ours."""
        if self._lost is not None:
            raise LeaseLostError(
                f"this writer checkout of branch {self.branch!r} lost its lease "
                f"({self._lost}); nothing was written. Open a new writer checkout."
            )
        if time.monotonic() > self._deadline:
            self._lost = "it expired before it could be renewed"
            self.check()

    def verify(self) -> None:
        """:meth:`check`, then read the lease back: it must still be the one we wrote."""
        self.check()
        with self._lock:
            try:
                _, version = self.store.get_versioned(lease_key(self.branch))
            except ObjectNotFoundError:
                version = None
            if version != self._version:
                self._lost = "it was force-released or taken over by another writer"
        self.check()

    def renew(self) -> None:
        """Extend the lease by its duration (compare-and-swap); mark it lost on conflict."""
        with self._lock:
            if self._lost is not None:
                return
            start = time.monotonic()
            now = _now()
            record = replace(
                self.record, expires=_iso(now + dt.timedelta(seconds=self.record.duration_s))
            )
            try:
                self._version = self.store.replace_if_version(
                    lease_key(self.branch), record.to_bytes(), self._version
                )
            except VersionConflictError:
                self._lost = "it was force-released or taken over by another writer"
                return
            self.record = record
            self._deadline = start + record.duration_s

    def moved_ref(self, ref: BranchRef, version: Version) -> None:
        """Record the ref version this writer's last commit produced."""
        self.ref, self.ref_version = ref, version

    def lose(self, why: str) -> None:
        """Mark the lease lost (a fenced commit found the ref moved)."""
        self._lost = why

    def start_heartbeat(self) -> None:
        """Renew every third of the duration in a daemon thread until released."""
        interval = self.record.duration_s / 3

        def beat() -> None:
            while not self._stop.wait(interval):
                with contextlib.suppress(Exception):
                    self.renew()
                if self._lost is not None:
                    return

        self._thread = threading.Thread(
            target=beat, name=f"hangar-lease-{self.branch}", daemon=True
        )
        self._thread.start()

    def release(self) -> None:
        """Stop renewing and mark the lease released (if it is still ours)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        with self._lock:
            if self._lost is not None:
                return
            released = replace(
                self.record, expires=_iso(_now()), extra={**self.record.extra, "released": True}
            )
            with contextlib.suppress(VersionConflictError, ObjectNotFoundError):
                self.store.replace_if_version(
                    lease_key(self.branch), released.to_bytes(), self._version
                )
            self._lost = "it was released"


def force_release(store: Store, branch: str) -> bool:
    """Release ``branch``'s lease whoever holds it, and fence its holder out.

    The lease is marked released and the branch ref gets a new epoch, so the
    old holder can neither renew nor commit. Returns True.
    """
    for _ in range(_RETRIES):
        ref_data, ref_version = store.get_versioned(branch_ref(branch))
        ref = BranchRef.from_bytes(ref_data)
        current = read_lease(store, branch)
        epoch = max(ref.epoch, current[0].epoch if current else 0) + 1
        try:
            if current is not None:
                old, old_version = current
                released = replace(
                    old, epoch=epoch, expires=_iso(_now()), extra={"released": True, "forced": True}
                )
                store.replace_if_version(lease_key(branch), released.to_bytes(), old_version)
            store.replace_if_version(
                branch_ref(branch), BranchRef(ref.commit, epoch).to_bytes(), ref_version
            )
        except VersionConflictError:
            continue
        return True
    raise LockHeldError(f"could not force-release branch {branch!r}: too much contention")
