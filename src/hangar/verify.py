"""``repo.verify()``: re-hash every object reachable from every branch and tag.

Walks refs -> commits (all of history) -> manifest segments -> chunks, reads
each object once, and checks it against its name (commit ids, segment and
chunk digests) and, for every block a manifest points at, the block's own
checksum and bounds. Nothing stops at the first problem: the report lists
every missing or corrupt object. Reads run on a small thread pool, since on
an object store each one is a round trip.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from hangar.exceptions import CorruptionError, HangarError, ObjectNotFoundError
from hangar.format.chunks import block_check, digest_bytes
from hangar.format.commits import CommitRecord, read_commit
from hangar.format.manifest import decode_segment
from hangar.format.names import BRANCHES, TAGS, chunk_key, commit_key, manifest_key
from hangar.format.records import BranchRef, TagRef
from hangar.store import Store

__all__ = ["Problem", "VerifyReport", "verify_repository"]

_THREADS = 8

# a block a manifest row points at: offset, size, checksum
_Block = tuple[int, int, str]


@dataclass(frozen=True, slots=True)
class Problem:
    """One missing or corrupt object: ``kind`` is ``'missing'`` or ``'corrupt'``."""

    kind: str
    key: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.key} ({self.detail})"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What :func:`verify_repository` checked and what it found wrong."""

    refs: int
    commits: int
    manifests: int
    chunks: int
    nbytes: int
    problems: tuple[Problem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True if every reachable object is present and intact."""
        return not self.problems

    def __bool__(self) -> bool:
        """``if repo.verify():`` reads as "verified": the same as :attr:`ok`."""
        return self.ok

    def __str__(self) -> str:
        head = (
            f"verified {self.refs} refs, {self.commits} commits, {self.manifests} manifest "
            f"segments, {self.chunks} chunks ({self.nbytes} bytes): "
        )
        if self.ok:
            return head + "no problem found"
        lines = [head + f"{len(self.problems)} problem(s)"]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


class _Walk:
    def __init__(self, store: Store, progress: bool) -> None:
        self.store = store
        self.progress = progress
        self.problems: list[Problem] = []
        self.nbytes = 0
        self.nrefs = 0
        self._lock = threading.Lock()

    def problem(self, kind: str, key: str, detail: str) -> None:
        with self._lock:
            self.problems.append(Problem(kind, key, detail))

    def fetch(self, key: str, what: str) -> bytes | None:
        """An object's bytes, or None (recorded as missing)."""
        try:
            data = self.store.get(key)
        except ObjectNotFoundError:
            self.problem("missing", key, f"{what} referenced but not in the store")
            return None
        with self._lock:
            self.nbytes += len(data)
        return data

    def each(self, items: list[Any], check: Callable[[Any], None], desc: str) -> None:
        """Run ``check`` over ``items`` on the thread pool, with a progress bar."""
        with (
            ThreadPoolExecutor(_THREADS) as pool,
            tqdm(total=len(items), desc=desc, unit="obj", disable=not self.progress) as bar,
        ):
            for _ in pool.map(check, items):
                bar.update()

    # ---------------------------------------------------------------- steps
    def refs(self) -> list[str]:
        heads = []
        for prefix, parse in ((BRANCHES, BranchRef.from_bytes), (TAGS, TagRef.from_bytes)):
            for key in sorted(self.store.list(prefix)):
                self.nrefs += 1
                data = self.fetch(key, "ref")
                if data is None:
                    continue
                try:
                    commit = parse(data).commit
                except (HangarError, ValueError, KeyError, TypeError) as exc:
                    self.problem("corrupt", key, f"not a valid ref: {exc}")
                    continue
                if commit is not None:
                    heads.append(commit)
        return heads

    def commits(self, heads: Iterable[str]) -> dict[str, CommitRecord]:
        found: dict[str, CommitRecord] = {}
        seen: set[str] = set()
        todo = list(heads)
        while todo:
            cid = todo.pop()
            if cid in seen:
                continue
            seen.add(cid)
            try:
                rec = read_commit(self.store, cid)
            except ObjectNotFoundError:
                self.problem("missing", commit_key(cid), "commit in the history of a ref")
                continue
            except (HangarError, ValueError, KeyError, TypeError) as exc:
                self.problem("corrupt", commit_key(cid), str(exc))
                continue
            found[cid] = rec
            todo.extend(rec.parents)
        return found

    def manifests(self, digests: list[str]) -> dict[str, set[_Block]]:
        chunks: dict[str, set[_Block]] = {}
        results: list[list[tuple[str, _Block]]] = []

        def check(digest: str) -> None:
            key = manifest_key(digest)
            data = self.fetch(key, "manifest segment")
            if data is None:
                return
            try:
                rows = list(decode_segment(data, digest))
            except CorruptionError as exc:
                self.problem("corrupt", key, str(exc))
                return
            results.append([
                (e.location.chunk, (e.location.block_offset, e.location.block_size,
                                    e.location.block_check))
                for _, _, e in rows
            ])  # fmt: skip

        self.each(digests, check, "manifests")
        for found in results:
            for chunk, block in found:
                chunks.setdefault(chunk, set()).add(block)
        return chunks

    def chunks(self, chunks: dict[str, set[_Block]]) -> None:
        def check(item: tuple[str, set[_Block]]) -> None:
            digest, blocks = item
            key = chunk_key(digest)
            data = self.fetch(key, "chunk")
            if data is None:
                return
            if digest_bytes(data) != digest:
                self.problem("corrupt", key, "its bytes do not hash to its name")
                return
            view = memoryview(data)
            for offset, size, check_ in sorted(blocks):
                raw = view[offset : offset + size]
                if len(raw) != size or block_check(raw) != check_:
                    self.problem(
                        "corrupt", key, f"block at {offset} (+{size}) does not match its manifest"
                    )

        self.each(sorted(chunks.items()), check, "chunks")


def verify_repository(store: Store, *, progress: bool = True) -> VerifyReport:
    """Re-hash every commit, manifest segment and chunk reachable from any branch or tag.

    Parameters
    ----------
    store
        The repository's store.
    progress
        Show progress bars (on stderr) while manifests and chunks are read.

    Returns
    -------
    VerifyReport
        Counts of what was checked and every problem found (``report.ok``).
    """
    walk = _Walk(store, progress)
    heads = walk.refs()
    commits = walk.commits(heads)
    segments = sorted(
        {seg.digest for rec in commits.values() for col in rec.columns.values()
         for seg in col.segments}
    )  # fmt: skip
    chunks = walk.manifests(segments)
    walk.chunks(chunks)
    problems = sorted(set(walk.problems), key=lambda p: (p.key, p.kind, p.detail))
    return VerifyReport(walk.nrefs, len(commits), len(segments), len(chunks), walk.nbytes,
                        tuple(problems))  # fmt: skip
