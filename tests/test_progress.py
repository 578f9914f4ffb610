"""Progress bars on long work: a commit's bar counts the manifest segments it writes."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest

import hangar._progress as progress_module
import hangar.staging as staging_module
from hangar import Repository


def commit_many(monkeypatch: pytest.MonkeyPatch, setting: str) -> list[Any]:
    """Commit 20k samples; the bars made."""
    monkeypatch.setenv("HANGAR_PROGRESS", setting)
    monkeypatch.setattr(progress_module, "DELAY", 0.0)  # as if the commit ran for long
    bars: list[Any] = []
    real = progress_module.progress

    def spy(desc: str, unit: str) -> Any:
        bar = real(desc, unit)
        bars.append((bar, bar.disable))  # (closing a bar disables it)
        return bar

    monkeypatch.setattr(staging_module, "progress", spy)
    repo = Repository(f"memory://progress-{uuid.uuid4().hex}", exists=False)
    repo.init("t", "t@example.com")
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("x", shape=(2,), dtype=np.int16)
    with col:
        for i in range(20_000):  # three segments of 8,192 rows
            col[i] = np.array([i, -i], np.int16)
    co.commit("many")
    co.close()
    return bars


def test_a_long_commit_shows_a_bar_of_segments_on_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ((bar, disabled),) = commit_many(monkeypatch, "1")  # shown on a stderr not a terminal
    assert bar.n == 3  # three segments of 8,192 rows
    assert not disabled
    assert "commit to 'master'" in capsys.readouterr().err


def test_hangar_progress_0_turns_bars_off(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ((_, disabled),) = commit_many(monkeypatch, "0")
    assert disabled
    assert "commit to" not in capsys.readouterr().err
