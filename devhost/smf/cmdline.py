"""getopt(3C) for the svc* commands, without the attrs import devhost.kernel.getopt
brings: svcs and svcprop must start fast."""

from __future__ import annotations

import sys


def getopt(prog: str, args: list[str], optstring: str) -> tuple[list[tuple[str, str]], list[str]]:
    """POSIX getopt as illumos libc does it, stopping at the first error, which comes
    back as ("?", letter) after the SVID message went to stderr."""
    opts: list[tuple[str, str]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        j = 1
        while j < len(arg):
            c = arg[j]
            at = optstring.find(c)
            if at < 0 or c == ":":
                sys.stderr.write(f"{prog}: illegal option -- {c}\n")
                opts.append(("?", c))
                return opts, args[i + 1 :]
            if optstring[at + 1 : at + 2] != ":":
                opts.append((c, ""))
                j += 1
                continue
            if j + 1 < len(arg):
                opts.append((c, arg[j + 1 :]))
            elif i + 1 < len(args):
                i += 1
                opts.append((c, args[i]))
            else:
                sys.stderr.write(f"{prog}: option requires an argument -- {c}\n")
                opts.append(("?", c))
                return opts, []
            break
        i += 1
    return opts, args[i:]
