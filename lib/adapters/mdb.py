"""The `mdb -k` / `mdb -kw` command lines: find and write the ARC's variables.

illumos.md section 5: `arc_c`, `arc_c_max`, ... are macros over the kstat storage
(`arc_stats.arcstat_<stat>.value.ui64`), so writing that 8-byte word changes the
kernel's variable. mdb(1), as its sources print (mdb_print.c elt_print, mdb_cmds.c
write_uint64):

    arc_stats::print -a arcstat_c_max.value.ui64
        -> "fffffffffbc37f68 arcstat_c_max.value.ui64 = 0x340000000"
    0xfffffffffbc37f68/Z 0x200000000          (needs -w)
        -> "arc_stats+0x650:0x340000000             =       0x200000000"

Every command goes through `-e`: mdb reading commands from standard input exits 0
whatever failed (mdb_main.c), while with -e it exits 1 when the command failed.
A failure is also told by a "mdb: ..." line on standard error; either one makes a
ToolError carrying mdb's message. Numbers are written with a 0x prefix: mdb's
default radix is 16, but a bare hex number that starts with a letter could be
read as a symbol.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import attrs

from vmbundle.adapters.run import run_tool
from vmbundle.errors import ToolError

DEFAULT_BINARY = "mdb"
ARC_STATS = "arc_stats"
U64_MAX = (1 << 64) - 1
_PREFIX = "mdb: "  # how mdb begins every error it prints (mdb_err.c, warn())

# elt_print() with -a: "%llx " address, the member as typed, " = ", the value in
# %#llx ("0" for zero).
_PRINT_A = re.compile(r"(?P<addr>[0-9a-f]+) (?P<member>\S+) = (?P<value>0x[0-9a-f]+|0)")

# write_uint64(): "%-#*lla%16T%-#24llx=%8T0x%llx\n" -- the address as symbol+offset
# with a ":" suffix, the old value (%#llx: "0" for zero), "=", the new value.
_WRITE_ECHO = re.compile(r"(?P<label>\S+?):\s*(?P<old>0x[0-9a-f]+|0)\s*=\s*0x(?P<new>[0-9a-f]+)")


@attrs.frozen
class Printed:
    """One member as `::print -a` showed it."""

    address: int
    value: int


def member(stat: str) -> str:
    """The arc_stats_t member path of an arcstats statistic."""
    if not re.fullmatch(r"[a-z0-9_]+", stat):
        raise ValueError(f"not an arcstats statistic: {stat!r}")
    return f"arcstat_{stat}.value.ui64"


def parse_print_a(text: str) -> dict[str, Printed]:
    """member path -> address and value, for `::print -a` output of integer members.
    ValueError for any other line."""
    out: dict[str, Printed] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        m = _PRINT_A.fullmatch(line.strip())
        if m is None:
            raise ValueError(f"unexpected ::print line: {line!r}")
        out[m.group("member")] = Printed(int(m.group("addr"), 16), int(m.group("value"), 16))
    return out


def parse_write_echo(text: str) -> tuple[int, int]:
    """(old value, new value) from the line mdb echoes after one `/Z` write."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != 1:
        raise ValueError(f"expected one line from /Z, got {text!r}")
    m = _WRITE_ECHO.fullmatch(lines[0].strip())
    if m is None:
        raise ValueError(f"unexpected /Z line: {lines[0]!r}")
    return int(m.group("old"), 16), int(m.group("new"), 16)


def _run(argv: list[str]) -> str:
    proc = run_tool(argv, check=False, timeout=60)
    lines = proc.stderr.splitlines()
    failed = any(line.startswith(_PREFIX) for line in lines)
    if proc.returncode != 0 or failed:
        # ToolError already says "mdb: "; keep mdb's own words after it.
        detail = "\n".join(line.removeprefix(_PREFIX) for line in lines)
        raise ToolError(argv, proc.returncode, detail or proc.stdout)
    return proc.stdout


def print_addresses(
    symbol: str, members: Sequence[str], *, binary: str = DEFAULT_BINARY
) -> dict[str, Printed]:
    """`mdb -k -e 'SYMBOL::print -a MEMBER ...'`: where each member is, one call."""
    if not members:
        return {}
    argv = [binary, "-k", "-e", f"{symbol}::print -a {' '.join(members)}"]
    out = _run(argv)
    try:
        printed = parse_print_a(out)
    except ValueError as exc:
        raise ToolError(argv, 0, str(exc)) from None
    missing = [m for m in members if m not in printed]
    if missing:
        raise ToolError(argv, 0, f"mdb printed no {', '.join(missing)}")
    return printed


def addresses_of(stats: Sequence[str], *, binary: str = DEFAULT_BINARY) -> dict[str, int]:
    """statistic -> address of `arc_stats.arcstat_<stat>.value.ui64`, in one call."""
    printed = print_addresses(ARC_STATS, [member(s) for s in stats], binary=binary)
    return {s: printed[member(s)].address for s in stats}


def address_of(stat: str, *, binary: str = DEFAULT_BINARY) -> int:
    """The address of `arc_stats.arcstat_<stat>.value.ui64` (e.g. stat "c_max")."""
    return addresses_of([stat], binary=binary)[stat]


def write_u64(addr: int, value: int, *, binary: str = DEFAULT_BINARY) -> int:
    """`mdb -kw -e '0xADDR/Z 0xVALUE'`: write 8 bytes; the value that was there.
    The echoed line is checked: mdb must say it wrote exactly value."""
    if not 0 <= value <= U64_MAX or not 0 < addr <= U64_MAX:
        raise ValueError(f"cannot write {value!r} at {addr!r}")
    argv = [binary, "-kw", "-e", f"{addr:#x}/Z {value:#x}"]
    out = _run(argv)
    try:
        old, new = parse_write_echo(out)
    except ValueError as exc:
        raise ToolError(argv, 0, str(exc)) from None
    if new != value:
        raise ToolError(argv, 0, f"mdb wrote {new:#x}, not {value:#x}")
    return old
