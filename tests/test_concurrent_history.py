"""Sixteen processes commit and merge at once (issue 5): no commit is lost.

Fifteen processes each commit twice on their own branch (one lease per
branch) and merge it into master (no lease: compare-and-swap, retried on a
moved head); a sixteenth holds master's writer lease and commits on master
meanwhile, so its commits are rebuilt on the heads the merges moved. Then
every commit is in master's history and every sample reads back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hangar import Repository

SRC = str(Path(__file__).resolve().parents[1] / "src")
MERGERS = 15
MASTER_COMMITS = 4

_MERGER = """
import json, os, sys, time
import numpy as np
from hangar import Repository
url, opts, i, go = json.loads(sys.argv[1])
repo = Repository(url, storage_options=opts)
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.01)
ids = []
for j in range(2):
    co = repo.checkout(write=True, branch=f"w{i}")
    co["x", f"{i}-{j}"] = np.full(2, 100 * i + j, np.int64)
    ids.append(co.commit(f"w{i} commit {j}"))
    co.close()
merged = repo.merge(f"merge w{i}", "master", f"w{i}")
print(json.dumps(ids + [merged]), flush=True)
"""

_MASTER_WRITER = """
import json, os, sys, time
import numpy as np
from hangar import Repository
url, opts, n, go = json.loads(sys.argv[1])
repo = Repository(url, storage_options=opts)
co = repo.checkout(write=True)
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.01)
ids = []
for j in range(n):
    co["x", f"m-{j}"] = np.full(2, -j, np.int64)
    ids.append(co.commit(f"master commit {j}"))
    time.sleep(0.05)
co.close()
print(json.dumps(ids), flush=True)
"""


def _start(code: str, args: list[Any]) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(
        [sys.executable, "-W", "ignore", "-c", textwrap.dedent(code), json.dumps(args)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


@pytest.fixture(params=["local", "s3"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    if request.param == "local":
        return str(tmp_path / "repo"), {}
    server = request.getfixturevalue("seaweedfs")
    return f"s3://{server.create_bucket()}/repo", server.storage_options()


@pytest.mark.timeout(600)
def test_sixteen_processes_race_commits_and_merges(
    location: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    url, opts = location
    repo = Repository(url, exists=False, storage_options=opts)
    repo.init("Tester", "t@example.com", remove_old=True)
    co = repo.checkout(write=True)
    co.add_ndarray_column("x", shape=(2,), dtype=np.int64)["base"] = np.zeros(2, np.int64)
    base = co.commit("base")
    co.close()
    for i in range(MERGERS):
        repo.create_branch(f"w{i}")
    go = str(tmp_path / "go")
    procs = [_start(_MERGER, [url, opts, i, go]) for i in range(MERGERS)]
    procs.append(_start(_MASTER_WRITER, [url, opts, MASTER_COMMITS, go]))
    for p in procs:
        assert p.stdout is not None
        line = p.stdout.readline().strip()
        assert line == b"ready", p.communicate()[1].decode()
    Path(go).touch()  # all at once
    outs = []
    deadline = time.monotonic() + 500
    for p in procs:
        out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        assert p.returncode == 0, err.decode()
        outs.append(json.loads(out.decode().strip().splitlines()[-1]))

    log = repo.log(return_contents=True)
    history = set(log["order"])
    expected = {base}
    for ids in outs:
        expected |= set(ids)
    assert expected <= history  # every commit and every merge is in master's history
    r = repo.checkout()
    col = r["x"]
    want = {"base": 0}
    for i in range(MERGERS):
        want |= {f"{i}-0": 100 * i, f"{i}-1": 100 * i + 1}
    want |= {f"m-{j}": -j for j in range(MASTER_COMMITS)}
    assert {k: int(col[k][0]) for k in col} == want
    assert all(int(col[k][1]) == v for k, v in want.items())
    # each merge is its branch's last commit (a fast-forward) or has it as a parent
    for i, ids in enumerate(outs[:MERGERS]):
        assert ids[-1] == ids[1] or ids[1] in log["ancestors"][ids[-1]], i
    assert repo.verify(progress=False).ok
