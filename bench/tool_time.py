"""The devhost's emulated tools' share of a timed window, from their timing log.

On devhost svcs, svcprop, kstat, mdb... are Python scripts of 20-40 ms; on
illumos they are C programs of a millisecond or two. With `<state>/tool-log.path`
naming a file, every tool run appends one JSON line with its start and end
(devhost/tools.py; the restarter gives methods svc.startd's environment, so an
environment variable would not reach the controller's or the methods' tools).
A window's tools' busy time is the union of their intervals in it, each begun
earlier by the interpreter start its own line cannot see.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from devhost import tools


class ToolLog:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.path = state / "tool-log.jsonl"

    def on(self, on: bool) -> None:
        """The devhost's tools log their runs to self.path while on."""
        path_file = self.state / tools.LOG_PATH_FILE
        if on:
            path_file.write_text(f"{self.path}\n")
        else:
            path_file.unlink(missing_ok=True)

    def runs(self, window: tuple[float, float]) -> list[dict[str, Any]]:
        """The logged tool runs that overlap window (time.time() seconds), clipped to it."""
        start, end = window
        out: list[dict[str, Any]] = []
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return out
        for line in lines:
            entry = json.loads(line)
            if entry["end"] > start and entry["start"] < end:
                entry["start"], entry["end"] = max(entry["start"], start), min(entry["end"], end)
                out.append(entry)
        return out

    def unlogged_ms(self, argv: list[str], env: dict[str, str], runs: int = 9) -> float:
        """The median time of a tool run that its log line does not see (the
        interpreter's start before the script's first line, its exit after main):
        exec to exit of argv, one tool run, less its logged duration."""
        gaps: list[float] = []
        for _ in range(runs + 1):
            start = time.perf_counter()
            proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
            proc.wait()
            ms = (time.perf_counter() - start) * 1000
            logged = [e for e in self.runs((0.0, float("inf"))) if e["pid"] == proc.pid]
            if logged:
                gaps.append(ms - (logged[-1]["end"] - logged[-1]["start"]) * 1000)
        return statistics.median(gaps[1:] or gaps)

    def busy_ms(self, window: tuple[float, float], unlogged_ms: float) -> float:
        """The wall time in window during which some emulated tool ran."""
        return busy_seconds(self.runs(window), window[0], unlogged_ms) * 1000


def busy_seconds(runs: list[dict[str, Any]], since: float, unlogged_ms: float) -> float:
    """The union of runs' intervals (from runs(window), whose start is since), each
    begun unlogged_ms earlier, but not before since."""
    extra = unlogged_ms / 1000
    return _union_seconds([(max(e["start"] - extra, since), e["end"]) for e in runs])


def _union_seconds(intervals: list[tuple[float, float]]) -> float:
    total = 0.0
    reach = float("-inf")
    for start, end in sorted(intervals):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total
