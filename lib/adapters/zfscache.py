"""The `zfscache` command lines (SmartOS only): read and set the ARC's bounds.

zfscache(8), illumos-joyent OS-8638 (illumos.md section 5): with no arguments it
prints the values; `zfscache -l MIN -u MAX` sets arc_c_min and arc_c_max (bytes,
strtoull/strtonumx base 0) through the ZFS_IOC_ARC ioctl, whose kernel side also
does `arc_c = MIN(arc_c, arc_c_max)`, and then prints the values it left. Both
print "label: N" lines (decimal, "%lu"):

    arc_c_min: N
    arc_c_max: N
    system default arc_c_min: N
    system default arc_c_max: N
    /etc/system zfs_arc_min: N
    /etc/system zfs_arc_max: N

Later versions add blank lines and a "system arc_init()-time of maximum available
memory (allmem): N" line; the parser takes every "label: N" line it finds.
Errors go to standard error with exit status 1 (ERANGE: min > max; EINVAL: min
below 64 MiB; ENOMEM: max at or above allmem; EAGAIN: busy).
"""

from __future__ import annotations

import shutil

from vmbundle.adapters.run import run_tool
from vmbundle.errors import ToolError

DEFAULT_BINARY = "zfscache"
C_MIN = "arc_c_min"
C_MAX = "arc_c_max"


def available(*, binary: str = DEFAULT_BINARY) -> bool:
    """Whether the host has zfscache (SmartOS with OS-8638)."""
    return shutil.which(binary) is not None


def parse(text: str) -> dict[str, int]:
    """label -> value for every "label: N" line; ValueError for any other
    non-blank line."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        label, sep, value = line.rpartition(": ")
        if not sep or not value.strip().isdigit():
            raise ValueError(f"unexpected zfscache line: {line!r}")
        out[label.strip()] = int(value)
    return out


def _run(argv: list[str]) -> dict[str, int]:
    proc = run_tool(argv, check=False, timeout=60)
    if proc.returncode != 0:
        # errx(3C) prefixes the program name; ToolError says it already.
        lines = proc.stderr.strip().splitlines()
        detail = "\n".join(line.removeprefix("zfscache: ") for line in lines)
        raise ToolError(argv, proc.returncode, detail or proc.stdout)
    out = proc.stdout
    try:
        values = parse(out)
    except ValueError as exc:
        raise ToolError(argv, 0, str(exc)) from None
    if C_MIN not in values or C_MAX not in values:
        raise ToolError(argv, 0, f"no {C_MIN}/{C_MAX} in zfscache output: {out!r}")
    return values


def read(*, binary: str = DEFAULT_BINARY) -> dict[str, int]:
    """`zfscache`: the current bounds and the defaults, by label."""
    return _run([binary])


def set_limits(c_min: int, c_max: int, *, binary: str = DEFAULT_BINARY) -> dict[str, int]:
    """`zfscache -l C_MIN -u C_MAX`; the values the kernel left, by label."""
    if not 0 < c_min <= c_max:
        raise ValueError(f"bad ARC bounds: min {c_min}, max {c_max}")
    return _run([binary, "-l", str(c_min), "-u", str(c_max)])
