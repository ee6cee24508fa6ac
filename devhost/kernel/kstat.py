"""kstat(8) over the simulated kernel: zfs:0:arcstats and unix:0:system_pages.

Behaviour follows illumos usr/src/cmd/stat/kstat/kstat.c: selectors
module:instance:name:statistic with shell globs or /ERE/, empty fields match all;
kstats sorted by module, instance, name and statistics case-insensitively; named
kstats carry the pseudo-statistics crtime and snaptime (and class under -p/-l/-C);
exit 0 when something matched, 1 when nothing did, 2 for usage, 3 when the kernel
statistics cannot be opened. Any other kstat simply does not exist here, so asking
for it matches nothing, as for a kstat that does not exist on illumos.
"""

from __future__ import annotations

import fnmatch
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from devhost.getopt import BAD, getopt
from devhost.kernel import arc

if TYPE_CHECKING:
    from _typeshed import StrPath

PROG = "kstat"
KSTAT_TYPE_NAMED = 1
ULONG_MAX = (1 << 64) - 1

USAGE = (
    "Usage:\n"
    "kstat [ -Cjlpq ] [ -T d|u ] [ -c class ]\n"
    "      [ -m module ] [ -i instance ] [ -n name ] [ -s statistic ]\n"
    "      [ interval [ count ] ]\n"
    "kstat [ -Cjlpq ] [ -T d|u ] [ -c class ]\n"
    "      [ module[:instance[:name[:statistic]]] ... ]\n"
    "      [ interval [ count ] ]\n"
)


class UsageError(Exception):
    """Print the message (if any), the usage, and exit 2."""


class HrTime(int):
    """Nanoseconds since boot: printed as seconds with nine decimals (0 as "0")."""


Value = int | str | HrTime


class Kstat(NamedTuple):
    module: str
    instance: int
    name: str
    klass: str
    snaptime: HrTime
    stats: dict[str, Value]  # the pseudo-statistics included


class Selector(NamedTuple):
    module: str = "*"
    instance: str = "*"
    name: str = "*"
    statistic: str = "*"


class Options(NamedTuple):
    parseable: bool = False  # -p, also set by -C and -l
    colon: bool = False  # -C
    names_only: bool = False  # -l
    values_only: bool = False  # -V (with -p)
    json: bool = False  # -j
    quiet: bool = False  # -q
    timestamp: str | None = None  # "d" or "u"
    klass: str = "*"


# --- the kernel's kstats ------------------------------------------------------------

# When each kstat was created, in ns after boot: zfs loads after the root pool is
# found; unix's page counters exist before the clock does.
_CRTIME = {"arcstats": HrTime(41_208_337_150), "system_pages": HrTime(0)}


def read_kstats(state_dir: StrPath, with_class: bool, now: float) -> list[Kstat]:
    kernel = arc.read(state_dir)
    snaptime = HrTime(int(kernel.uptime(now) * 1e9))
    tables: list[tuple[str, str, str, dict[str, int]]] = [
        ("zfs", "arcstats", "misc", arc.arcstats(kernel, now)),
        ("unix", "system_pages", "pages", arc.system_pages(kernel, now)),
    ]
    kstats = []
    for module, name, klass, values in tables:
        stats: dict[str, Value] = {"crtime": _CRTIME[name], "snaptime": snaptime}
        if with_class:
            stats["class"] = klass
        stats.update(values)
        kstats.append(Kstat(module, 0, name, klass, snaptime, stats))
    kstats.sort(key=lambda k: (k.module.lower(), k.instance, k.name.lower()))
    return kstats


# --- matching -----------------------------------------------------------------------


def _matcher(pattern: str) -> Callable[[str], bool]:
    if len(pattern) >= 2 and pattern.startswith("/") and pattern.endswith("/"):
        try:
            regex = re.compile(pattern[1:-1])
        except re.error as exc:
            raise UsageError(f"kstat: {exc}\n") from None
        return lambda s: regex.search(s) is not None
    return lambda s: fnmatch.fnmatchcase(s, pattern)


class _Compiled(NamedTuple):
    module: Callable[[str], bool]
    instance: Callable[[str], bool]
    name: Callable[[str], bool]
    statistic: Callable[[str], bool]


def _compile(sel: Selector) -> _Compiled:
    return _Compiled(
        _matcher(sel.module), _matcher(sel.instance), _matcher(sel.name), _matcher(sel.statistic)
    )


# --- output -------------------------------------------------------------------------


def _value_text(value: Value) -> str:
    if isinstance(value, HrTime):
        return "0" if value == 0 else f"{value / 1e9:.9f}"
    return str(value)


def _json_string(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"?\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif not ch.isprintable():
            out.append(f"\\u{ord(ch) & 0xFF:04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _print_report(kstats: list[Kstat], selectors: list[Selector], opts: Options) -> bool:
    """One report, as ks_instances_print does it; whether anything matched."""
    out: list[str] = []
    matched = False
    klass = _matcher(opts.klass)
    if opts.timestamp == "u":
        out.append(f"{int(time.time())}\n")
    elif opts.timestamp == "d":
        out.append(time.strftime("%a %b %e %H:%M:%S %Z %Y") + "\n")
    if opts.json:
        out.append("[")
    json_headers = 0
    for sel in selectors:
        m = _compile(sel)
        for ks in kstats:
            if not (
                m.module(ks.module)
                and m.name(ks.name)
                and m.instance(str(ks.instance))
                and klass(ks.klass)
            ):
                continue
            names = sorted((n for n in ks.stats if m.statistic(n)), key=str.lower)
            if not names:
                continue
            matched = True
            if opts.quiet:
                continue
            if opts.json:
                if json_headers:
                    out.append(", ")
                json_headers += 1
                out.append(_json_header(ks))
                for i, n in enumerate(names):
                    v = ks.stats[n]
                    text = _json_string(v) if isinstance(v, str) else _value_text(v)
                    comma = "," if i < len(names) - 1 else ""
                    out.append(f"\t\t{_json_string(n)}: {text}{comma}\n")
                out.append("\t}\n}")
            elif opts.parseable:
                sep = ":" if opts.colon else "\t"
                for n in names:
                    key = f"{ks.module}:{ks.instance}:{ks.name}:{n}"
                    if opts.names_only:
                        out.append(key + "\n")
                    elif opts.values_only:
                        out.append(_value_text(ks.stats[n]) + "\n")
                    else:
                        out.append(f"{key}{sep}{_value_text(ks.stats[n])}\n")
            else:
                out.append(
                    f"module: {ks.module[:30]:<30}  instance: {ks.instance:<6}\n"
                    f"name:   {ks.name[:30]:<30}  class:    {ks.klass[:30]}\n"
                )
                for n in names:
                    out.append(f"\t{n:<30}  {_value_text(ks.stats[n])}\n")
                out.append("\n")
    if opts.json:
        out.append("]\n")
    sys.stdout.write("".join(out))
    sys.stdout.flush()
    return matched


def _json_header(ks: Kstat) -> str:
    snap = _value_text(ks.snaptime)
    return (
        f'{{\n\t"module": {_json_string(ks.module)},\n\t"instance": {ks.instance},\n'
        f'\t"name": {_json_string(ks.name)},\n\t"class": {_json_string(ks.klass)},\n'
        f'\t"type": {KSTAT_TYPE_NAMED},\n\t"snaptime": {snap},\n\t"data": {{\n'
    )


# --- the command line ---------------------------------------------------------------


class Invocation(NamedTuple):
    opts: Options
    selectors: list[Selector]
    interval: int
    # -1: forever. The field hides tuple.count, which nothing here calls.
    count: int  # type: ignore[assignment]


def parse_args(argv: Sequence[str]) -> Invocation | int:
    """The invocation, or an exit status after printing what kstat prints."""
    parsed = getopt(PROG, argv, "h?CqjlpVT:m:i:n:s:c:")
    opts = Options()
    named = Selector()
    named_given = False
    bad = False
    for c, arg in parsed.options:
        if c in ("h", "?", BAD):
            # kstat.c treats getopt's '?' like -h: usage, then exit 0.
            sys.stderr.write(USAGE)
            return 0
        if c == "C":
            opts = opts._replace(parseable=True, colon=True)
        elif c == "q":
            opts = opts._replace(quiet=True)
        elif c == "j":
            opts = opts._replace(json=True)
        elif c == "l":
            opts = opts._replace(parseable=True, names_only=True)
        elif c == "p":
            opts = opts._replace(parseable=True)
        elif c == "V":
            # kstat(8) of 2025: "-p [-V] ... only values are displayed"; the source
            # of that version was not available, so -V alone does nothing here.
            opts = opts._replace(values_only=True)
        elif c == "T":
            if arg and arg[0] in "du":
                opts = opts._replace(timestamp=arg[0])
            else:
                bad = True
        elif c == "c":
            opts = opts._replace(klass=arg or "")
        elif c in "mins":
            field = {"m": "module", "i": "instance", "n": "name", "s": "statistic"}[c]
            named = named._replace(**{field: arg or ""})
            named_given = True
    if opts.quiet and (opts.json or opts.parseable):
        sys.stderr.write("-q and -lpj are mutually exclusive\n")
        bad = True
    try:
        if bad:
            raise UsageError("")
        selectors, interval, count = _operands(parsed.operands)
        if selectors and named_given:
            raise UsageError(
                "[module[:instance[:name[:statistic]]]] and -m -i -n -s are mutually exclusive"
            )
    except UsageError as exc:
        sys.stderr.write(str(exc) + USAGE)
        return 2
    return Invocation(opts, selectors or [named], interval, count)


# What strtoul(3C) takes whole, in base 10 (kstat.c's test for interval and count).
_NUMBER = re.compile(r"\s*([+-]?)([0-9]*)")


def _operands(operands: list[str]) -> tuple[list[Selector], int, int]:
    selectors: list[Selector] = []
    interval, count, n = 0, 1, 0
    for arg in operands:
        num = _NUMBER.fullmatch(arg)
        if num is None:
            fields = arg.split(":")
            if len(fields) > 4:
                raise UsageError("")
            fields = [f or "*" for f in fields] + ["*"] * (4 - len(fields))
            selectors.append(Selector(*fields))
            continue
        value = int(num.group(2) or "0")
        if value > ULONG_MAX:
            what = ("Interval is too large\n", "Count is too large\n")
            raise UsageError(what[n] if n < 2 else "")
        if num.group(1) == "-":
            value = -value % (ULONG_MAX + 1)  # strtoul negates in unsigned arithmetic
        value = _as_c_int(value)  # kstat.c keeps strtoul's result in an int
        if value < 1:
            what = ("Interval must be an integer >= 1", "Count must be an integer >= 1")
            raise UsageError(what[n] if n < 2 else "")
        if n == 0:
            interval, count = value, -1
        elif n == 1:
            count = value
        else:
            raise UsageError("")
        n += 1
    return selectors, interval, count


def _as_c_int(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def main(argv: Sequence[str], state_dir: StrPath) -> int:
    parsed = parse_args(argv)
    if isinstance(parsed, int):
        return parsed
    inv = parsed
    matched = False
    try:
        n = 0
        while inv.count == -1 or n < inv.count:
            if n:
                time.sleep(inv.interval)
                sys.stdout.write("\n")
            try:
                kstats = read_kstats(state_dir, inv.opts.parseable, time.time())
            except (arc.KernelMissing, OSError, json.JSONDecodeError) as exc:
                print(f"kstat_open: {_strerror(exc)}", file=sys.stderr)
                return 3
            try:
                matched = _print_report(kstats, inv.selectors, inv.opts) or matched
            except UsageError as exc:  # a bad /regex/, found while matching
                sys.stderr.write(str(exc) + USAGE)
                return 2
            n += 1
    except BrokenPipeError:
        return 0 if matched else 1
    except KeyboardInterrupt:
        return 0 if matched else 1
    return 0 if matched else 1


def _strerror(exc: Exception) -> str:
    if isinstance(exc, arc.KernelMissing):
        return "No such file or directory"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return "I/O error"
