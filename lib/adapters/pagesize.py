"""The `pagesize` command line: the base page size in bytes.

pagesize(1) (illumos usr/src/cmd/pagesize/pagesize.c) prints one decimal number,
4096 on x86. unix:0:system_pages counts in pages and has no page-size statistic
(illumos.md section 5), so this is how its counts become bytes.
"""

from __future__ import annotations

from vmbundle.adapters.run import run_tool
from vmbundle.errors import ToolError

DEFAULT_BINARY = "pagesize"


def parse(text: str) -> int:
    """The number pagesize printed; ValueError for anything else."""
    value = int(text.strip())
    if value <= 0 or value & (value - 1):
        raise ValueError(f"not a page size: {text.strip()!r}")
    return value


def pagesize(*, binary: str = DEFAULT_BINARY) -> int:
    argv = [binary]
    out = run_tool(argv, timeout=30).stdout
    try:
        return parse(out)
    except ValueError:
        raise ToolError(argv, 0, f"unexpected output: {out.strip()!r}") from None
