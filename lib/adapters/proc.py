"""CPU time and resident memory of processes (the guests' QEMUs, for metrics).

Linux: /proc/PID/stat (proc(5): utime and stime in clock ticks, fields 14 and 15;
rss in pages, field 24). Elsewhere, illumos among them, `ps -o pid=,rss=,time=`
(ps(1): rss in kilobytes, time as [[dd-]hh:]mm:ss), whose CPU time is whole
seconds.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import attrs

from vmbundle.adapters.run import run_tool
from vmbundle.errors import ToolError

_PROC = Path("/proc")


@attrs.frozen
class Usage:
    cpu_seconds: float
    rss_bytes: int


def _linux(pid: int) -> Usage | None:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces.
    fields = text[text.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    utime, stime, rss = int(fields[11]), int(fields[12]), int(fields[21])
    return Usage((utime + stime) / ticks, rss * os.sysconf("SC_PAGE_SIZE"))


def _seconds(text: str) -> float:
    days, _, clock = text.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    h, m, s = parts
    return (int(days or 0) * 24 + h) * 3600 + m * 60 + s


def _ps(pids: list[int]) -> dict[int, Usage]:
    argv = ["ps", "-o", "pid=,rss=,time=", "-p", ",".join(str(p) for p in pids)]
    try:
        out = run_tool(argv, check=False, timeout=10).stdout
    except ToolError:
        return {}
    found: dict[int, Usage] = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0].isdigit() and fields[1].isdigit():
            found[int(fields[0])] = Usage(_seconds(fields[2]), int(fields[1]) * 1024)
    return found


def usage(pids: Iterable[int]) -> dict[int, Usage]:
    """pid -> usage, for those of pids that exist."""
    wanted = sorted(set(pids))
    if not wanted:
        return {}
    if (_PROC / "self" / "stat").is_file():
        return {p: u for p in wanted if (u := _linux(p)) is not None}
    return _ps(wanted)
