"""pagesize(1) of an amd64 illumos host (usr/src/cmd/pagesize/pagesize.c): the base
page size, or with -a every size the MMU supports (4K and 2M here)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from devhost.getopt import getopt
from devhost.kernel.arc import PAGESIZE

SUPPORTED_SIZES = (PAGESIZE, 2 << 20)


def main(argv: Sequence[str], state_dir: Path) -> int:
    parsed = getopt("pagesize", argv, "a")
    every = False
    for c, _ in parsed.options:
        if c != "a":
            print("usage: pagesize [-a]", file=sys.stderr)
            return 1
        every = True
    # pagesize ignores operands.
    sizes = SUPPORTED_SIZES if every else (PAGESIZE,)
    sys.stdout.write("".join(f"{n}\n" for n in sizes))
    return 0
