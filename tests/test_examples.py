"""The main job, examples/tutorial.py, runs as a newcomer would run it (on fewer images)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_example(script: str, *args: str) -> str:
    """Run ``examples/<script>`` as a newcomer would; return what it printed."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *args],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_tutorial_example_runs(tmp_path: Path) -> None:
    text = run_example("tutorial.py", str(tmp_path / "mnist"), "3000")
    assert "Hangar Repo initialized at:" in text
    assert "Hangar WriterCheckout" in text
    assert "Hangar FlatSampleWriter" in text
    assert "len(train_col) = 3" in text
    assert re.search(r"\* a=[0-9a-f]{40} \(master\) : first commit adding training images", text)
    assert "|    Num Data Pieces: 3001 " in text
    assert "read all 3001 images with items()" in text


def test_history_example_runs(tmp_path: Path) -> None:
    text = run_example("history.py", str(tmp_path / "hist"))
    assert "branches: ['master', 'testbranch']" in text
    assert "Selected 3-Way Merge Strategy" in text
    assert "sample 0 after the merge: [50 51 52 53 54 55 56 57 58 59]" in text
    assert "note: world" in text
    assert "HANGAR VALUE ERROR:: Merge ABORTED with conflict" in text
    assert "dummy[1]" in text
    assert "sample 1 on master: [7 7 7 7 7 7 7 7 7 7]" in text
    assert re.search(r"^\|\\$", text, re.MULTILINE)  # the merge opens a lane
    assert "no problem found" in text
