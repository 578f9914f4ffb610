"""Race N writers for one key, round after round, in threads or processes."""

from __future__ import annotations

import multiprocessing as mp
import queue
import threading
from dataclasses import dataclass
from typing import Any

from hangar.store import Store, Version


@dataclass(frozen=True)
class RaceResult:
    """What one writer got in one round."""

    round: int
    writer: int
    payload: bytes
    won: bool
    error: str  # the exception's class name when the writer lost, else ""
    version: str  # the returned version token when it won


def payload_for(writer: int, rnd: int) -> bytes:
    """A body unique to one writer in one round (and longer than a header)."""
    return f"writer={writer:02d} round={rnd:03d} ".encode() * 8


def _race_worker(  # noqa: PLR0917 - a Process target takes positional args
    store: Store,
    writer: int,
    op: str,
    keys: list[str],
    versions: list[str | None],
    barrier: Any,
    results: Any,
) -> None:
    for rnd, key in enumerate(keys):
        data = payload_for(writer, rnd)
        try:
            barrier.wait(timeout=120)
        except threading.BrokenBarrierError:
            results.put(RaceResult(rnd, writer, data, False, "BrokenBarrierError", ""))
            return
        try:
            if op == "put_if_absent":
                version = store.put_if_absent(key, data)
            else:
                expected = versions[rnd]
                assert expected is not None
                version = store.replace_if_version(key, data, Version(expected))
            results.put(RaceResult(rnd, writer, data, True, "", version.token))
        except Exception as exc:  # noqa: BLE001 - reported to the checking side
            results.put(RaceResult(rnd, writer, data, False, type(exc).__name__, ""))


def run_race(
    contenders: list[Store],
    op: str,
    keys: list[str],
    versions: list[str | None],
    *,
    processes: bool,
    timeout: float = 300.0,
) -> list[RaceResult]:
    """Run ``op`` (``"put_if_absent"`` or ``"replace_if_version"``) on each key,
    all contenders at once per key; return every writer's result."""
    n = len(contenders)
    expected = n * len(keys)
    out: list[RaceResult] = []
    if processes:
        ctx = mp.get_context("spawn")
        barrier: Any = ctx.Barrier(n)
        results: Any = ctx.Queue()
        procs = [
            ctx.Process(target=_race_worker, args=(store, i, op, keys, versions, barrier, results))
            for i, store in enumerate(contenders)
        ]
        for p in procs:
            p.start()
        try:
            for _ in range(expected):
                out.append(results.get(timeout=timeout))
        finally:
            for p in procs:
                p.join(timeout=30)
                if p.is_alive():
                    p.kill()
    else:
        tbarrier = threading.Barrier(n)
        tresults: queue.Queue[RaceResult] = queue.Queue()
        threads = [
            threading.Thread(
                target=_race_worker, args=(store, i, op, keys, versions, tbarrier, tresults)
            )
            for i, store in enumerate(contenders)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout)
        while not tresults.empty():
            out.append(tresults.get_nowait())
    return out
