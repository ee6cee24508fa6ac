"""getopt(3C) as illumos libc does it: no argument permutation (options stop at
the first operand or "--"), and the same two messages on standard error."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import attrs

# Reported in place of an option letter when getopt() would return '?' for an error;
# a real "-?" (when '?' is in the option string) comes back as "?".
BAD = "\0"


@attrs.frozen
class Parsed:
    options: list[tuple[str, str | None]]
    operands: list[str]


def getopt(prog: str, argv: Sequence[str], optstring: str) -> Parsed:
    """Parse options up to and including the first bad one (the commands here all
    stop there), printing getopt's message for it."""
    options: list[tuple[str, str | None]] = []
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
                print(f"{prog}: illegal option -- {c}", file=sys.stderr)
                options.append((BAD, c))
                return Parsed(options, list(argv[i:]))
            if optstring[spec + 1 : spec + 2] != ":":
                options.append((c, None))
                j += 1
                continue
            if j + 1 < len(arg):
                options.append((c, arg[j + 1 :]))
            elif i < len(argv):
                options.append((c, argv[i]))
                i += 1
            else:
                print(f"{prog}: option requires an argument -- {c}", file=sys.stderr)
                options.append((BAD, c))
                return Parsed(options, [])
            break
    return Parsed(options, list(argv[i:]))
