"""Branches and tags: named pointers to commits, kept as small objects under ``refs/``.

A branch ref moves only by compare-and-swap (a commit, a merge, a lease
taking the branch); a tag is created once with create-if-absent and never
changes (DESIGN.md, "Objects under the repository root").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

from hangar.ancestry import merge_bases
from hangar.exceptions import (
    AlreadyExistsError,
    EmptyHistoryError,
    LockHeldError,
    NameTakenError,
    ObjectNotFoundError,
    RefNotFoundError,
    UnmergedBranchError,
)
from hangar.format.commits import CommitRecord
from hangar.format.lease import lease_is_live
from hangar.format.names import (
    BRANCHES,
    TAGS,
    branch_ref,
    commit_key,
    ref_name,
    staging_prefix,
    tag_ref,
    validate_name,
)
from hangar.format.records import BranchRef, TagRef
from hangar.store import Store

__all__ = [
    "BranchHead",
    "TagHead",
    "branch_head",
    "create_branch",
    "create_tag",
    "is_ancestor",
    "list_branches",
    "list_tags",
    "remove_branch",
    "tag_commit",
]


class BranchHead(NamedTuple):
    """A branch and the commit at its head (None before its first commit), as in Hangar."""

    name: str
    digest: str | None


class TagHead(NamedTuple):
    """A tag and the commit it names."""

    name: str
    digest: str


def branch_head(store: Store, name: str) -> str | None:
    """The head commit of branch ``name`` (None if it has no commit yet)."""
    try:
        data = store.get(branch_ref(validate_name(name, "branch name")))
    except ObjectNotFoundError:
        raise RefNotFoundError(f"no branch named {name!r}") from None
    return BranchRef.from_bytes(data).commit


def list_branches(store: Store) -> list[str]:
    """Names of every branch, sorted."""
    return sorted(ref_name(k) for k in store.list(BRANCHES))


def create_branch(store: Store, name: str, commit: str | None) -> BranchHead:
    """Create branch ``name`` at ``commit``; the name must be free."""
    name = validate_name(name, "branch name")
    if commit is None:
        raise EmptyHistoryError(
            f"cannot create branch {name!r}: the repository has no commit to start it from "
            "(commit on master first, or pass base_commit=)"
        )
    _require_commit(store, commit)
    try:
        store.put_if_absent(branch_ref(name), BranchRef(commit, 0).to_bytes())
    except AlreadyExistsError:
        raise NameTakenError(f"a branch named {name!r} already exists") from None
    return BranchHead(name, commit)


def remove_branch(
    store: Store,
    name: str,
    force_delete: bool,
    read_commit: Callable[[str], CommitRecord],
) -> BranchHead:
    """Delete branch ``name`` (its ref and staged changes; no commit is deleted).

    Refused while a writer holds the branch, for the last branch, and, unless
    ``force_delete``, when its head is not in the history of another branch.
    """
    name = validate_name(name, "branch name")
    head = branch_head(store, name)
    others = [b for b in list_branches(store) if b != name]
    if not others:
        raise LockHeldError(f"branch {name!r} is the only branch: it cannot be removed")
    if lease_is_live(store, name):
        raise LockHeldError(
            f"a writer checkout holds branch {name!r}: close it (or force_release_writer_lock"
            f"(branch={name!r})) before removing the branch"
        )
    if head is not None and not force_delete:
        other_heads = [h for b in others if (h := branch_head(store, b)) is not None]
        if not is_ancestor(head, other_heads, read_commit):
            raise UnmergedBranchError(
                f"The branch {name} is not fully merged. If you are sure you want to delete "
                "it, re-run with force-remove parameter set."
            )
    store.delete(branch_ref(name))
    for key in list(store.list(staging_prefix(name) + "/")):
        store.delete(key)
    return BranchHead(name, head)


def is_ancestor(
    commit: str, heads: Iterable[str], read_commit: Callable[[str], CommitRecord]
) -> bool:
    """True if ``commit`` is one of ``heads`` or in the history of one of them.

    Walks only the commits newer than the fork point (see
    :func:`hangar.diff.merge_bases`), not whole histories.
    """
    return any(commit in merge_bases(commit, h, read_commit) for h in heads)


def create_tag(store: Store, name: str, commit: str) -> TagHead:
    """Create tag ``name`` for ``commit``; a tag never changes once created."""
    name = validate_name(name, "tag name")
    _require_commit(store, commit)
    try:
        store.put_if_absent(tag_ref(name), TagRef(commit).to_bytes())
    except AlreadyExistsError:
        existing = tag_commit(store, name)
        raise NameTakenError(
            f"tag {name!r} already exists (it names {existing}); tags never change"
        ) from None
    return TagHead(name, commit)


def tag_commit(store: Store, name: str) -> str:
    """The commit tag ``name`` names."""
    try:
        data = store.get(tag_ref(validate_name(name, "tag name")))
    except ObjectNotFoundError:
        raise RefNotFoundError(f"no tag named {name!r}") from None
    return TagRef.from_bytes(data).commit


def list_tags(store: Store) -> list[str]:
    """Names of every tag, sorted."""
    return sorted(ref_name(k) for k in store.list(TAGS))


def _require_commit(store: Store, commit: str) -> None:
    if not isinstance(commit, str) or not store.exists(commit_key(commit)):
        raise RefNotFoundError(f"no commit {commit!r} in this repository")
