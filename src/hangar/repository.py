"""``Repository``: the entry point, as in Hangar.

A repository is a location: a local folder (data under ``<folder>/.hangar``)
or a store URL (``s3://bucket/prefix``, ``gs://...``, ``memory://...``).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
import warnings
from typing import Any

from hangar import refs
from hangar.checkout import ReaderCheckout, WriterCheckout
from hangar.diff import DiffAndConflicts, ReaderUserDiff
from hangar.exceptions import (
    AlreadyExistsError,
    CorruptionError,
    EmptyHistoryError,
    InvalidKeyError,
    ObjectNotFoundError,
    RefNotFoundError,
    RepositoryNotFoundError,
)
from hangar.format.chunks import BlockCache
from hangar.format.commits import CommitRecord, read_commit
from hangar.format.lease import force_release, lease_is_live
from hangar.format.names import HANGAR_JSON, branch_ref, validate_name
from hangar.format.records import FORMAT_VERSION, BranchRef, RepositoryInfo, load_json
from hangar.format.sample_digest import DEFAULT_SCHEME, SampleDigest, sample_digest_scheme
from hangar.history import format_bytes, format_log, list_history, summary_text
from hangar.merge import MERGE_TEXT, merge_branch
from hangar.store import LocalStore, Store, open_store
from hangar.verify import VerifyReport, verify_repository

__all__ = ["Repository"]

_DEFAULT_BRANCH = "master"
_COMMIT_CACHE = 65536  # commit records a Repository keeps in memory
READ_AHEAD_DEFAULT = 256 << 20  # encoded chunk bytes a checkout may read ahead (object stores)


class Repository:
    """A hangar repository at a local folder or a store URL.

    Parameters
    ----------
    path
        A local folder (the repository lives in ``<path>/.hangar``, as in
        Hangar), a URL: ``s3://bucket/prefix``, ``gs://bucket/prefix``,
        ``memory://name``, or an open :class:`hangar.store.Store`.
    exists
        If True (default) and there is no repository yet, say that ``init()``
        is needed (a warning); data operations raise until it is called.
    storage_options
        Passed to the store (S3 endpoint and credentials, GCS token...).
    cache_blocks
        Decoded blocks each checkout keeps in memory (each about 64 KiB raw on
        local disk and in memory, 256 KiB on object stores).
    read_ahead_bytes
        On object stores (S3, GCS), how many bytes of encoded chunks each
        checkout's single-sample reads may read ahead and keep: the first
        read that misses in a chunk fetches its block alone, the second
        fetches the chunk (up to 8 MiB) in its one GET, and later reads in
        that chunk need no request. Past this many bytes, a miss fetches its
        block alone. Default 256 MiB; 0 turns read-ahead off. Local and
        in-memory stores never read ahead (docs/design/009).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | Store,
        exists: bool = True,
        *,
        storage_options: dict[str, Any] | None = None,
        cache_blocks: int = 4096,
        read_ahead_bytes: int = READ_AHEAD_DEFAULT,
    ) -> None:
        if isinstance(path, Store):
            self._root = path.url
            self._store: Store = path
        else:
            location = os.fspath(path)
            if "://" in location and not location.startswith("file://"):
                root = location
            else:
                local = location.removeprefix("file://")
                root = os.path.join(os.path.abspath(os.path.expanduser(local)), ".hangar")
            self._root = root
            self._store = open_store(root, **(storage_options or {}))
        if read_ahead_bytes < 0:
            raise ValueError(f"read_ahead_bytes must be >= 0, not {read_ahead_bytes}")
        self._cache_blocks = cache_blocks
        self._read_ahead = read_ahead_bytes if self._store.capabilities.round_trips else 0
        # commit records never change once written: history walks read each once
        self._commits: dict[str, CommitRecord] = {}
        self._info: RepositoryInfo | None = None
        self._load_info()
        if exists and self._info is None:
            warnings.warn(
                f"No repository exists at {self._root}: call repo.init() with a user name "
                "and email to create one.",
                UserWarning,
                stacklevel=2,
            )

    # ------------------------------------------------------------- state
    def _load_info(self) -> None:
        try:
            raw = load_json(self._store.get(HANGAR_JSON), HANGAR_JSON)
        except ObjectNotFoundError:
            self._info = None
            return
        version = raw.get("format_version")
        if isinstance(version, int) and version > FORMAT_VERSION:
            # before reading the fields: a newer format may have fields this hangar lacks
            raise InvalidKeyError(
                f"the repository at {self._root} has format version "
                f"{version}; this hangar reads up to {FORMAT_VERSION}: upgrade"
            )
        self._info = RepositoryInfo.from_dict(raw)

    def _require(self) -> RepositoryInfo:
        if self._info is None:
            self._load_info()
        if self._info is None:
            raise RepositoryNotFoundError(
                f"No repository exists at {self._root}. Use repo.init() to create one."
            )
        return self._info

    @property
    def _user_name(self) -> str:
        return os.environ.get("HANGAR_USER_NAME") or self._require().user_name

    @property
    def _user_email(self) -> str:
        return os.environ.get("HANGAR_USER_EMAIL") or self._require().user_email

    @property
    def _sample_digest(self) -> SampleDigest:
        """How this repository digests samples (fixed when it was created)."""
        return sample_digest_scheme(self._require().sample_digest)

    @property
    def path(self) -> str:
        """Where the repository's objects live."""
        return self._root

    @property
    def initialized(self) -> bool:
        """Whether a repository exists at this location."""
        if self._info is None:
            self._load_info()
        return self._info is not None

    def __repr__(self) -> str:
        return f"Hangar {type(self).__name__}\n    Repository Path  : {self._root}\n"

    def _read_commit(self, cid: str) -> CommitRecord:
        rec = self._commits.get(cid)
        if rec is None:
            rec = read_commit(self._store, cid)
            if len(self._commits) >= _COMMIT_CACHE:
                self._commits.clear()
            self._commits[cid] = rec
        return rec

    # -------------------------------------------------------------- init
    def init(self, user_name: str, user_email: str, remove_old: bool = False) -> str:
        """Create the repository; return its location.

        With ``remove_old=True`` an existing repository here is deleted first;
        without it, an existing repository is an error (``FileExistsError``).
        """
        if not user_name or not user_email:
            raise InvalidKeyError("init() needs a user_name and a user_email")
        if self.initialized:
            if not remove_old:
                raise AlreadyExistsError(HANGAR_JSON)
            self._remove_everything()
        info = RepositoryInfo(
            repository_id=uuid.uuid4().hex,
            created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            user_name=user_name,
            user_email=user_email,
            format_version=FORMAT_VERSION,
            sample_digest=DEFAULT_SCHEME,
        )
        self._store.put_if_absent(HANGAR_JSON, info.to_bytes())
        self._store.put_if_absent(branch_ref(_DEFAULT_BRANCH), BranchRef(None, 0).to_bytes())
        self._info = info
        print(f"Hangar Repo initialized at: {self._root}")
        return self._root

    def _remove_everything(self) -> None:
        if isinstance(self._store, LocalStore):
            shutil.rmtree(self._store.root, ignore_errors=True)
        else:
            for key in list(self._store.list()):
                self._store.delete(key)
        self._info = None
        self._commits.clear()

    # ---------------------------------------------------------- branches
    def _branch_head(self, branch: str) -> str | None:
        return refs.branch_head(self._store, branch)

    def list_branches(self) -> list[str]:
        """Names of every branch, sorted."""
        self._require()
        return refs.list_branches(self._store)

    def create_branch(self, name: str, base_commit: str | None = None) -> refs.BranchHead:
        """Create branch ``name`` starting at ``base_commit`` (default: ``master``'s head).

        Returns ``BranchHead(name, digest)``. A name already taken raises
        ``ValueError`` (:class:`~hangar.exceptions.NameTakenError`); a
        repository with no commit raises ``RuntimeError``.
        """
        self._require()
        if base_commit is None:
            base_commit = self._branch_head(_DEFAULT_BRANCH)
        else:
            base_commit = self._resolve_commit(base_commit)
        return refs.create_branch(self._store, name, base_commit)

    def remove_branch(self, name: str, *, force_delete: bool = False) -> refs.BranchHead:
        """Delete branch ``name``'s pointer (and its staged changes); commits stay.

        Refused (``PermissionError``) while a writer holds the branch or if it
        is the last branch; refused (``RuntimeError``) if its head is in no
        other branch's history, unless ``force_delete=True``. Returns the
        ``BranchHead`` removed: ``create_branch(name, base_commit=digest)``
        brings it back.
        """
        self._require()
        return refs.remove_branch(self._store, name, force_delete, self._read_commit)

    def _branch_heads(self) -> dict[str, list[str]]:
        heads: dict[str, list[str]] = {}
        for b in self.list_branches():
            head = self._branch_head(b)
            if head:
                heads.setdefault(head, []).append(b)
        return heads

    # -------------------------------------------------------------- tags
    def create_tag(self, name: str, commit: str | None = None) -> refs.TagHead:
        """Name ``commit`` (default: ``master``'s head) ``name``, for good.

        Tags never move: a name already taken raises ``ValueError``, whatever
        commit it names. Returns ``TagHead(name, digest)``.
        """
        self._require()
        if commit is None:
            commit = self._branch_head(_DEFAULT_BRANCH)
            if commit is None:
                raise EmptyHistoryError("master has no commit yet: nothing to tag")
        return refs.create_tag(self._store, name, self._resolve_commit(commit))

    def list_tags(self) -> list[str]:
        """Names of every tag, sorted."""
        self._require()
        return refs.list_tags(self._store)

    # ------------------------------------------------------------- merge
    def merge(
        self,
        message: str,
        master_branch: str,
        dev_branch: str,
        *,
        strategy: str | None = None,
    ) -> str:
        """Merge ``dev_branch`` into ``master_branch``; return ``master_branch``'s new head.

        A fast-forward when ``master_branch``'s head is in ``dev_branch``'s
        history (no new commit); otherwise a three-way merge against their
        nearest common ancestor, written as a commit with both heads as
        parents and ``message``. Nothing changes when ``dev_branch`` is
        already merged. Only manifests are read, never sample data.

        A merge needs no writer lease: the branch ref moves by
        compare-and-swap, and a merge that lost the race to another commit or
        merge is done again on the new head. A writer checkout open on
        ``master_branch`` keeps its staged changes; its next commit is
        rebuilt on the merged head.

        Parameters
        ----------
        message
            The merge commit's message (unused by a fast-forward).
        master_branch
            The branch that receives the changes.
        dev_branch
            The branch whose changes are merged.
        strategy
            ``None`` (default): any conflict raises and nothing changes.
            ``'ours'``: conflicting keys and columns keep ``master_branch``'s
            version; ``'theirs'``: they take ``dev_branch``'s.

        Raises
        ------
        MergeConflictError
            A ``ValueError`` listing every conflicting column and key (and,
            in ``.conflicts``, Hangar's ``Conflicts``): sample added on both
            sides with different content (t1), removed on one side and
            mutated on the other (t21, t22), mutated differently on both (t3),
            columns changed incompatibly.
        RefNotFoundError
            No such branch.
        EmptyHistoryError
            ``dev_branch`` has no commit.
        """
        self._require()
        outcome = merge_branch(
            self._store, self._read_commit, self._new_cache(), master_branch,
            dev_branch, message, (self._user_name, self._user_email), strategy=strategy,
        )  # fmt: skip
        print(MERGE_TEXT[outcome.kind])
        return outcome.commit

    def _new_cache(self) -> BlockCache:
        """The block cache of a new checkout (or merge)."""
        return BlockCache(self._cache_blocks, self._read_ahead)

    def _resolve_commit(self, commit: str) -> str:
        """A commit id, or the commit a tag names."""
        if isinstance(commit, str) and commit.startswith("a="):
            return commit
        return refs.tag_commit(self._store, commit)

    # --------------------------------------------------------- checkouts
    def checkout(
        self,
        write: bool = False,
        *,
        branch: str = "",
        commit: str = "",
        tag: str = "",
        lease_seconds: float = 60.0,
    ) -> Any:
        """Open a checkout.

        ``write=False``: a read-only checkout of ``commit`` (a commit id, or a
        tag name), of ``tag``, or of the head of ``branch`` (default
        ``master``). ``write=True``: the writer checkout of ``branch`` (default
        ``master``); it holds the branch's lease, renewed while open; a writer
        that dies stops holding it after ``lease_seconds``. Each branch has its
        own lease: writers of different branches work at the same time.
        """
        self._require()
        if write:
            if commit or tag:
                raise InvalidKeyError("a writer checkout is of a branch head; drop commit=/tag=")
            name = validate_name(branch or _DEFAULT_BRANCH, "branch name")
            self._branch_head(name)
            return WriterCheckout(self, name, lease_seconds)
        if tag:
            commit = refs.tag_commit(self._store, tag)
        elif commit:
            commit = self._resolve_commit(commit)
        else:
            name = validate_name(branch or _DEFAULT_BRANCH, "branch name")
            head = self._branch_head(name)
            if head is None:
                raise RefNotFoundError(
                    f"branch {name!r} has no commits yet: nothing to read (commit first)"
                )
            commit = head
        try:
            record = self._read_commit(commit)
        except ObjectNotFoundError:
            raise RefNotFoundError(f"no commit {commit!r} in this repository") from None
        return ReaderCheckout(self, commit, record)

    def force_release_writer_lock(self, branch: str = _DEFAULT_BRANCH) -> bool:
        """Release the writer lease of ``branch`` whoever holds it; return True.

        The old holder is fenced out: it can neither stage nor commit again.
        """
        self._require()
        return force_release(self._store, validate_name(branch, "branch name"))

    @property
    def writer_lock_held(self) -> bool:
        """Whether a writer checkout holds a live lease on any branch (as in Hangar, an attribute).

        Hangar had one writer lock per repository; here each branch has its
        own lease, so this is True while any branch is held.
        :meth:`branch_lock_held` asks about one branch.
        """
        self._require()
        return any(lease_is_live(self._store, b) for b in refs.list_branches(self._store))

    def branch_lock_held(self, branch: str = _DEFAULT_BRANCH) -> bool:
        """Whether a live (unexpired, unreleased) writer lease holds ``branch``."""
        self._require()
        return lease_is_live(self._store, validate_name(branch, "branch name"))

    # -------------------------------------------------------------- diff
    def diff(self, master: str, dev: str) -> DiffAndConflicts:
        """Diff ``dev`` against ``master``, as if ``dev`` were to be merged into it.

        Parameters
        ----------
        master, dev
            Each a branch name, a commit id (``'a=...'``) or a tag name.

        Returns
        -------
        DiffAndConflicts
            As ``co.diff.commit(...)`` of a checkout of ``master``: ``diff``
            (what ``dev`` changed, for a fast-forward; otherwise the changes
            from ``dev`` to ``master``) and ``conflict`` (what a merge would
            find against their common ancestor).

        Raises
        ------
        RefNotFoundError
            A name that is no branch, commit or tag (a ``KeyError``), or a
            branch with no commit yet given as ``dev``.
        """
        self._require()
        base = self._diff_side(master, "master")
        dev_commit = self._diff_side(dev, "dev")
        if dev_commit is None:
            raise RefNotFoundError(f"branch {dev!r} has no commit yet: nothing to diff")
        differ = ReaderUserDiff(self._store, self._read_commit, self._resolve_commit,
                                self._branch_head, lambda: base)  # fmt: skip
        return differ.commit(dev_commit)

    def _diff_side(self, name: str, what: str) -> str | None:
        if not isinstance(name, str) or not name:
            raise InvalidKeyError(f"`{what}` must be a branch name or a commit, not {name!r}")
        try:  # a branch: one read of its ref
            return self._branch_head(name)
        except (RefNotFoundError, InvalidKeyError):
            pass  # no branch of that name (or not one a branch can have): a commit or tag
        try:
            cid = self._resolve_commit(name)
            self._read_commit(cid)
        except (ObjectNotFoundError, RefNotFoundError, InvalidKeyError):
            raise RefNotFoundError(
                f"`{what}` {name!r} is no branch, commit or tag in this repository"
            ) from None
        return cid

    # ---------------------------------------------------------- integrity
    def verify_repo_integrity(self) -> bool:
        """Hangar's name for :meth:`verify`: True, or CorruptionError listing every problem.

        Raises
        ------
        CorruptionError
            Some object is missing or does not match its name or checksum.
        """
        report = self.verify(progress=False)
        if not report.ok:
            raise CorruptionError(str(report))
        return True

    def verify(self, *, progress: bool = True) -> VerifyReport:
        """Re-hash every commit, manifest segment and chunk reachable from any branch or tag.

        Every object is read once and checked against its name (and every
        block a manifest points at against its checksum); the report lists
        every missing or corrupt object, it does not stop at the first.

        Parameters
        ----------
        progress
            Show progress bars (on stderr) while manifests and chunks are read.

        Returns
        -------
        VerifyReport
            ``report.ok``, ``report.problems`` (each a ``Problem(kind, key,
            detail)``, ``kind`` being ``'missing'`` or ``'corrupt'``) and
            counts of what was checked; ``print(report)`` tells it all.
        """
        self._require()
        return verify_repository(self._store, progress=progress)

    # ------------------------------------------------------ log, summary
    def log(
        self,
        branch: str | None = None,
        commit: str | None = None,
        *,
        return_contents: bool = False,
        show_time: bool = False,
        show_user: bool = False,
    ) -> dict[str, Any] | None:
        """Print the commit graph (``* a=... (master) : message``), newest first.

        With ``return_contents=True`` return it instead: ``head``, ``ancestors``
        (commit -> parents), ``specs`` (message, time, user, email), ``order``
        and ``branch_heads``.
        """
        self._require()
        if commit is None:
            head = self._branch_head(branch or _DEFAULT_BRANCH)
            if head is None:
                if return_contents:
                    return {"head": None, "ancestors": {}, "specs": {}, "order": [],
                            "branch_heads": {}}  # fmt: skip
                print("No commits made")
                return None
            commit = head
        history = list_history(commit, self._read_commit)
        heads = {c: b for c, b in self._branch_heads().items() if c in history["specs"]}
        if return_contents:
            history["branch_heads"] = {c: b[0] if len(b) == 1 else b for c, b in heads.items()}
            return history
        print(format_log(history, heads, show_time, show_user), end="")
        return None

    def summary(self, *, branch: str = "", commit: str = "", return_contents: bool = False) -> Any:
        """Print what the repository holds at a commit (default: ``master``'s head).

        With ``return_contents=True`` return the text instead of printing it.
        """
        self._require()
        if not commit:
            head = self._branch_head(branch or _DEFAULT_BRANCH)
            if head is None:
                text = "No commits made"
                if return_contents:
                    return text
                print(text)
                return None
            commit = head
        rec = self._read_commit(commit)
        text = summary_text(self._root, self.size_nbytes, commit, rec)
        if return_contents:
            return text
        print(text, end="")
        return None

    @property
    def size_nbytes(self) -> int:
        """Bytes of every object in the repository."""
        return self._store.disk_usage()

    @property
    def size_human(self) -> str:
        """:attr:`size_nbytes`, human readable."""
        return format_bytes(self.size_nbytes)
