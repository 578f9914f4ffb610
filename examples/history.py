"""Branches, diffs, merges and conflicts, in Hangar's own calls (its tutorial part 2).

    python examples/history.py [REPO_DIR]

Runs on a local folder (default: a temporary one), prints what each step does.
"""

from __future__ import annotations

import sys
import tempfile

import numpy as np

from hangar import Repository
from hangar.exceptions import MergeConflictError


def main(path: str) -> None:
    repo = Repository(path, exists=False)
    repo.init(user_name="Ann", user_email="ann@example.com", remove_old=True)

    co = repo.checkout(write=True)
    col = co.add_ndarray_column("dummy", shape=(10,), dtype=np.uint16)
    col[0] = np.arange(10, dtype=np.uint16)
    co.commit("first commit with a single sample added to a dummy column")
    co.close()

    # a branch, and a commit on it
    repo.create_branch(name="testbranch")
    print("branches:", repo.list_branches())
    co = repo.checkout(write=True, branch="testbranch")
    co["dummy", 0] = np.arange(50, 60, dtype=np.uint16)
    co.add_str_column("notes")["hello"] = "world"
    co.commit("mutated sample 0 and added a note")
    co.close()

    # meanwhile on master
    co = repo.checkout(write=True, branch="master")
    co["dummy", 1] = np.arange(1, 11, dtype=np.uint16)
    co.commit("commit on master adding sample 1")

    # what would a merge bring?
    out = co.diff.branch("testbranch")
    print("mutated on testbranch:", out.diff.mutated.samples)
    print("conflicts:", out.conflict.conflict)

    digest = co.merge(message="merge of testbranch into master", dev_branch="testbranch")
    print("merge commit:", digest)
    print("sample 0 after the merge:", co["dummy", 0])
    print("note:", co["notes", "hello"])
    co.close()
    repo.log()

    # a conflict: the same key changed differently on both branches
    for branch, value in (("testbranch", 7), ("master", 9)):
        w = repo.checkout(write=True, branch=branch)
        w["dummy", 1] = np.full(10, value, dtype=np.uint16)
        w.commit(f"sample 1 set to {value} on {branch}")
        w.close()
    try:
        repo.merge("this merge should not happen", "master", "testbranch")
    except MergeConflictError as err:
        print(err)
        c = err.conflicts
        print("conflicts by kind:", {"t1": c.t1.samples, "t21": c.t21.samples,
                                     "t22": c.t22.samples, "t3": c.t3.samples})  # fmt: skip
    digest = repo.merge("resolved: take testbranch's side", "master", "testbranch",
                        strategy="theirs")  # fmt: skip
    print("sample 1 on master:", repo.checkout()["dummy", 1])
    repo.log()
    print(repo.verify(progress=False))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="hangar-history-"))
