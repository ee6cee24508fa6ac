"""The `kstat -p` command line: kernel statistics, read in one call.

kstat(8), illumos kstat.c `ks_instance_print` (illumos.md section 5): with -p
every line is `module:instance:name:statistic<TAB>value`; a named kstat adds the
pseudo-statistics `class` (a string) and `crtime` / `snaptime` (seconds since
boot, "%.9f"). Exit status 0 when something matched, 1 when nothing did, 2 for
usage, 3 when the statistics cannot be read. Several selectors may be given at
once: one process, one snapshot of each kstat.
"""

from __future__ import annotations

from collections.abc import Sequence

from vmbundle.adapters.run import run_tool
from vmbundle.errors import ToolError

DEFAULT_BINARY = "kstat"

# kstat exits 1, silently, when no selector matched anything.
_NOTHING_MATCHED = 1


def parse_p(text: str) -> dict[str, str]:
    """`module:instance:name:statistic` -> value, for `kstat -p` output.

    The value is everything after the first TAB (a statistic name holds none; a
    string value may hold spaces). ValueError for a line without a TAB."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line:
            continue
        key, tab, value = line.partition("\t")
        if not tab or key.count(":") < 3:
            raise ValueError(f"not a `kstat -p` line: {line!r}")
        out[key] = value
    return out


def read(selectors: Sequence[str], *, binary: str = DEFAULT_BINARY) -> dict[str, str]:
    """Every statistic the selectors match (empty when none does), in one call."""
    if not selectors or any(s.startswith("-") for s in selectors):
        raise ValueError(f"bad kstat selectors: {list(selectors)!r}")
    argv = [binary, "-p", *selectors]
    proc = run_tool(argv, check=False, timeout=30)
    if proc.returncode == _NOTHING_MATCHED and not proc.stderr.strip():
        return {}
    if proc.returncode != 0:
        raise ToolError(argv, proc.returncode, proc.stderr or proc.stdout)
    try:
        return parse_p(proc.stdout)
    except ValueError as exc:
        raise ToolError(argv, 0, str(exc)) from None


def read_integers(keys: Sequence[str], *, binary: str = DEFAULT_BINARY) -> dict[str, int]:
    """The named statistics (exact `module:instance:name:statistic`, no globs),
    each an integer, read in one call; ToolError naming any that is missing."""
    values = read(keys, binary=binary)
    missing = [k for k in keys if k not in values]
    if missing:
        raise ToolError([binary, "-p", *keys], 1, f"no such statistic: {', '.join(missing)}")
    out: dict[str, int] = {}
    for k in keys:
        try:
            out[k] = int(values[k])
        except ValueError:
            raise ToolError(
                [binary, "-p", *keys], 0, f"{k} is not an integer: {values[k]!r}"
            ) from None
    return out
