"""getopt(3C) as illumos libc does it, for every emulated tool (svcs, svcprop,
svccfg, svcadm, kstat, mdb, pagesize).

No argument permutation: options stop at the first operand, at "-" or after
"--". Parsing stops at the first bad option too (every tool here gives up
there): it comes back as (BAD, letter), after the SVID message
"PROG: illegal option -- x" or "PROG: option requires an argument -- x" went to
standard error, unless report is false (opterr = 0). A real "-?", when '?' is in
the option string, comes back as ("?", ""). ':' and '(' are never option letters.

Free of heavy imports: svcs and svcprop start on every poll of the product.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import NamedTuple

# In place of the option letter for a bad option (where getopt() returns '?').
BAD = "\0"


class Parsed(NamedTuple):
    options: list[tuple[str, str]]  # (letter, argument or "")
    operands: list[str]


def getopt(prog: str, argv: Sequence[str], optstring: str, report: bool = True) -> Parsed:
    options: list[tuple[str, str]] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        i += 1
        j = 1
        while j < len(arg):
            c = arg[j]
            spec = optstring.find(c) if c not in ":(" else -1
            if spec < 0:
                _complain(report, f"{prog}: illegal option -- {c}\n")
                options.append((BAD, c))
                return Parsed(options, list(argv[i:]))
            if optstring[spec + 1 : spec + 2] != ":":
                options.append((c, ""))
                j += 1
                continue
            if j + 1 < len(arg):
                options.append((c, arg[j + 1 :]))
            elif i < len(argv):
                options.append((c, argv[i]))
                i += 1
            else:
                _complain(report, f"{prog}: option requires an argument -- {c}\n")
                options.append((BAD, c))
                return Parsed(options, [])
            break
    return Parsed(options, list(argv[i:]))


def _complain(report: bool, message: str) -> None:
    if report:
        sys.stderr.write(message)
