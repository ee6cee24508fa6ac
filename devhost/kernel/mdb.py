"""mdb(1) -k / -kw over the simulated kernel: just enough to find and poke the ARC.

Emulated, with the output and messages of illumos mdb (usr/src/cmd/mdb/common/mdb:
mdb_print.c cmd_print/elt_print, mdb_cmds.c write_arglist/write_uint64, mdb_io.c
formats, mdb_lex.l, mdb_grammar.y, mdb_err.c, mdb_main.c):

    arc_stats::print [-adtx] arcstat_<stat>.value.ui64 ...
        -> "fffffffffbc37f68 arcstat_c_max.value.ui64 = 0x340000000" (with -a)
    ADDR/Z VALUE            (8-byte write; needs -w)
        -> "arc_stats+0x650:0x340000000             =       0x200000000"
    ::quit, $q

Expressions are symbols (arc_stats), numbers in mdb's default radix 16 (0x, 0t,
0o, 0i prefixes too), + - * and parentheses. Commands come from standard input or
-e. As in mdb, a failing command prints "mdb: ..." on standard error and the next
one runs; the exit status is 0 at the end of input whatever failed (mdb_main.c),
except with -e, where it is 1 when the command failed. Anything else fails the way
mdb fails on a dcmd or symbol it does not know.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

from devhost.getopt import BAD, getopt
from devhost.kernel import arc

if TYPE_CHECKING:
    from _typeshed import StrPath

PROG = "mdb"
MASK64 = (1 << 64) - 1

# mdb_err.c
EMDB_NOSYM = "unknown symbol name"
EMDB_NOMAP = "no mapping for address"
EMDB_NODCMD = "unknown dcmd name"
EMDB_TGTRDONLY = "target is not open for writing"
EMDB_NOSYMADDR = "no symbol corresponds to address"
EMDB_CTFNOMEMB = "no such member of structure or union"

PRINT_USAGE = "Usage: [address]::print [-aCdhiLptx] [-c lim] [-l lim] [type] [member|offset ...]\n"

MAIN_USAGE = (
    "Usage: mdb [-fkmuwyAFKMSUW] [+/-o option] [-p pid] [-s dist] [-I path] [-L path]\n"
    "\t[-P prompt] [-R root] [-V dis-version] [-e expr] [object [core] | core | suffix]\n\n"
    "\t-e evaluate expr and return status\n"
    "\t-f force raw file debugging mode\n"
    "\t-k force kernel debugging mode\n"
    "\t-m disable demand-loading of module symbols\n"
    "\t-o set specified debugger option (+o to unset)\n"
    "\t-p attach to specified process-id\n"
    "\t-s set symbol matching distance\n"
    "\t-u force user program debugging mode\n"
    "\t-w enable write mode\n"
    "\t-y send terminal initialization sequences for tty mode\n"
    "\t-A disable automatic loading of mdb modules\n"
    "\t-F enable forcible takeover mode\n"
    "\t-K stop operating system and enter live kernel debugger\n"
    "\t-M preload all module symbols\n"
    "\t-I set initial path for macro files\n"
    "\t-L set initial path for module libs\n"
    "\t-P set command-line prompt\n"
    "\t-R set root directory for pathname expansion\n"
    "\t-S suppress processing of ~/.mdbrc file\n"
    "\t-U unload live kernel debugger\n"
    "\t-W enable I/O-mapped memory access (kernel only)\n"
    "\t-V set disassembler version\n"
)


class CommandFailed(Exception):
    """A dcmd failed (DCMD_ERR): its message is already printed; the next command runs."""


class ParseFailed(Exception):
    """The lexer or parser gave up on the statement (MDB_ERR_PARSE)."""


def _warn(message: str, err: str | None = None) -> None:
    # vwarn(): a message without a newline gets ": <strerror>" appended.
    sys.stderr.write(f"{PROG}: {message}" + (f": {err}\n" if err is not None else ""))


# --- the kernel's types, as CTF would describe them ---------------------------------


class IntType(NamedTuple):
    name: str
    size: int
    signed: bool


# kstat_named_t.value (sys/kstat.h): the integer members of the union.
_VALUE_MEMBERS = {
    "i32": IntType("int32_t", 4, True),
    "ui32": IntType("uint32_t", 4, False),
    "i64": IntType("int64_t", 8, True),
    "ui64": IntType("uint64_t", 8, False),
    "l": IntType("long", 8, True),
    "ul": IntType("ulong_t", 8, False),
    "ll": IntType("longlong_t", 8, True),
    "ull": IntType("u_longlong_t", 8, False),
}
_NAMED_MEMBERS = ("name", "data_type", "value")
_VALUE_UNION = "union {...}"
KSTAT_DATA_UINT64 = 4


class Leaf(NamedTuple):
    """An integer reached through a member path: where it is and how to print it."""

    addr: int
    type: IntType
    value: int


# --- expressions --------------------------------------------------------------------

_TOKEN_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("num2", re.compile(r"0[iI][01][01_]*")),
    ("num8", re.compile(r"0[oO][0-7][0-7_]*")),
    ("num10", re.compile(r"0[tT][0-9][0-9_]*")),
    ("num16", re.compile(r"0[xX][0-9a-fA-F][0-9a-fA-F_]*")),
    ("bare", re.compile(r"[0-9a-fA-F][0-9a-fA-F_]*")),
    ("symbol", re.compile(r"[a-zA-Z_.][0-9a-zA-Z_.`]*")),
    ("op", re.compile(r"[-+*()]")),
    ("space", re.compile(r"[ \t]+")),
)


def _tokens(text: str) -> Iterator[tuple[str, str]]:
    pos = 0
    while pos < len(text):
        # lex takes the longest match; on a tie the rule listed first.
        best: tuple[str, str] | None = None
        for kind, rule in _TOKEN_RULES:
            m = rule.match(text, pos)
            if m and (best is None or len(m.group()) > len(best[1])):
                best = (kind, m.group())
        if best is None:
            raise _syntax_error(text[pos])
        pos += len(best[1])
        if best[0] != "space":
            yield best


def _syntax_error(near: str) -> ParseFailed:
    sys.stderr.write(f'{PROG}: syntax error near "{near}"\n')
    return ParseFailed()


class Evaluator:
    def __init__(self, symbols: dict[str, int], dot: int) -> None:
        self.symbols = symbols
        self.dot = dot

    def eval(self, text: str) -> int:
        self._toks = list(_tokens(text))
        self._i = 0
        value = self._sum()
        if self._i != len(self._toks):
            raise _syntax_error(self._toks[self._i][1])
        return value & MASK64

    def _peek(self) -> tuple[str, str] | None:
        return self._toks[self._i] if self._i < len(self._toks) else None

    def _sum(self) -> int:
        value = self._product()
        while (tok := self._peek()) is not None and tok[1] in "+-":
            self._i += 1
            rhs = self._product()
            value = value + rhs if tok[1] == "+" else value - rhs
        return value

    def _product(self) -> int:
        value = self._unary()
        while (tok := self._peek()) is not None and tok[1] == "*":
            self._i += 1
            value *= self._unary()
        return value

    def _unary(self) -> int:
        tok = self._peek()
        if tok is None:
            raise _syntax_error("\\n")
        self._i += 1
        kind, text = tok
        if text == "-":
            return -self._unary()
        if text == "(":
            value = self._sum()
            if (close := self._peek()) is None or close[1] != ")":
                raise _syntax_error(close[1] if close else "\\n")
            self._i += 1
            return value
        if kind == "op":
            raise _syntax_error(text)
        return self._atom(kind, text)

    def _atom(self, kind: str, text: str) -> int:
        bases = {"num2": 2, "num8": 8, "num10": 10, "num16": 16}
        if kind in bases:
            return int(text[2:].replace("_", ""), bases[kind])
        if kind == "bare":
            # A token of hex digits that starts with a letter may be a symbol ("f").
            if text[0] not in "0123456789" and text in self.symbols:
                return self.symbols[text]
            return int(text.replace("_", ""), 16)
        if text == ".":
            return self.dot
        if text in self.symbols:
            return self.symbols[text]
        _warn("failed to dereference symbol", EMDB_NOSYM)
        raise ParseFailed()


# --- the session --------------------------------------------------------------------


class Session:
    def __init__(self, state_dir: StrPath, writable: bool) -> None:
        self.state_dir = state_dir
        self.writable = writable
        self.dot = 0
        self.last_failed = False
        self.parse_failed = False
        self.quit = False

    def kernel(self) -> arc.Kernel:
        return arc.read(self.state_dir)

    def symbols(self, kernel: arc.Kernel) -> dict[str, int]:
        return {"arc_stats": kernel.arc_stats_addr}

    def run(self, text: str) -> None:
        for statement in _statements(text):
            if self.quit:
                return
            try:
                self.last_failed = False
                self._statement(statement)
            except CommandFailed:
                self.last_failed = True
            except ParseFailed:
                self.parse_failed = True

    def _statement(self, text: str) -> None:
        m = re.match(r"(?P<expr>[^:/\\=$>!,]*)(?P<verb>::|/|\\|=|\$|>|!|,|:)?(?P<rest>.*)", text)
        assert m is not None
        expr, verb, rest = m.group("expr").strip(), m.group("verb"), m.group("rest")
        kernel = self.kernel()
        has_addr = expr != ""
        if has_addr:
            self.dot = Evaluator(self.symbols(kernel), self.dot).eval(expr)
        if verb is None:
            return  # a bare expression only sets dot
        if verb == "::":
            name_m = re.match(r"[a-zA-Z_.][0-9a-zA-Z_.`]*", rest)
            if name_m is None:
                raise _syntax_error(":")
            name, args = name_m.group(), rest[name_m.end() :].split()
            self._dcmd(name, args, has_addr, kernel)
        elif verb == "/" and (w := re.match(r"[ \t]*([vwzWZlLM])", rest)):
            self._write(w.group(1), rest[w.end() :].split(), kernel)
        elif verb == "$" and rest.strip() == "q":
            self.quit = True
        else:
            _warn(f"devhost does not emulate {verb!r} commands ({text.strip()!r})\n")
            raise CommandFailed()

    # ::dcmd

    def _dcmd(self, name: str, args: list[str], has_addr: bool, kernel: arc.Kernel) -> None:
        if name == "quit":
            self.quit = True
        elif name == "print":
            self._print(args, has_addr, kernel)
        else:
            _warn(f"invalid command '::{name}'", EMDB_NODCMD)
            raise ParseFailed()

    def _print(self, args: list[str], has_addr: bool, kernel: arc.Kernel) -> None:
        flags, members = _print_options(args)
        if not members:
            if not has_addr:
                sys.stderr.write(PRINT_USAGE)
                raise CommandFailed()
            _warn("devhost does not emulate ::print of a whole structure\n")
            raise CommandFailed()
        typename = members[0]
        if typename in ("arc_stats_t", "struct arc_stats"):
            members = members[1:]
        elif not (has_addr and self.dot == kernel.arc_stats_addr):
            # Not a type we know, and the address is not the start of a symbol whose
            # type would tell: cmd_print gives up.
            err = EMDB_NOSYMADDR if has_addr else EMDB_NOSYM
            _warn(f"failed to look up type {typename}", err)
            raise CommandFailed()
        if self.dot != kernel.arc_stats_addr:
            _warn("devhost knows arc_stats_t only at arc_stats\n")
            raise CommandFailed()
        now = time.time()
        stats = arc.arcstats(kernel, now)
        lines = []
        for member in members:
            leaf = _resolve(kernel, stats, member)
            lines.append(_format_leaf(leaf, member, flags))
        sys.stdout.write("".join(lines))

    # ADDR/Z VALUE

    def _write(self, fmt: str, args: list[str], kernel: arc.Kernel) -> None:
        if not args:
            _warn(f"expected value to write following {fmt}\n")
            raise CommandFailed()
        if fmt != "Z":
            _warn(f"devhost does not emulate /{fmt} (only 8-byte writes, /Z)\n")
            raise CommandFailed()
        addr = self.dot
        for arg in args:
            value = Evaluator(self.symbols(kernel), self.dot).eval(arg)
            stat = arc.stat_at(kernel, addr)
            if stat is None:
                _warn(f"failed to write {value:x} at address {addr:#x}", EMDB_NOMAP)
                raise CommandFailed()
            if not self.writable:
                _warn(f"failed to write {value:x} at address {addr:#x}", EMDB_TGTRDONLY)
                raise CommandFailed()
            old = arc.arcstats(kernel, time.time())[stat]
            if stat in arc.LIVE_FIELDS:
                kernel = arc.poke(self.state_dir, stat, value)
            # Any other statistic is recomputed at the next kstat read: the write
            # lands, reads back, and is gone.
            sys.stdout.write(_write_echo(kernel, addr, old, value))
            addr += 8
            self.dot = addr


def _statements(text: str) -> Iterator[str]:
    for line in text.splitlines():
        line = line.split("//", 1)[0]
        for part in line.split(";"):
            if part.strip():
                yield part


def _print_options(args: list[str]) -> tuple[str, list[str]]:
    flags = ""
    i = 0
    while i < len(args) and args[i].startswith("-") and len(args[i]) > 1:
        for c in args[i][1:]:
            if c not in "aCdhiLptx":
                sys.stderr.write(PRINT_USAGE)
                raise CommandFailed()
            flags += c
        i += 1
    rest = args[i:]
    if rest and rest[0][0] in "+-":
        sys.stderr.write(PRINT_USAGE)
        raise CommandFailed()
    if "x" in flags:
        flags = flags.replace("d", "")  # -x and -d are mutually exclusive: -x wins
    return flags, rest


def _resolve(kernel: arc.Kernel, stats: dict[str, int], member: str) -> Leaf:
    parts = re.split(r"\.", member)
    if not parts[0].startswith("arcstat_") or parts[0][8:] not in arc.ARCSTAT_NAMES:
        _warn(f"failed to find member {parts[0]} of arc_stats_t", EMDB_CTFNOMEMB)
        raise CommandFailed()
    stat = parts[0][8:]
    base = arc.value_address(kernel, stat) - arc.VALUE_OFFSET
    if len(parts) == 1:
        _warn("devhost does not emulate ::print of a whole kstat_named_t\n")
        raise CommandFailed()
    if parts[1] not in _NAMED_MEMBERS:
        _warn(f"failed to find member {parts[1]} of kstat_named_t", EMDB_CTFNOMEMB)
        raise CommandFailed()
    if parts[1] == "data_type" and len(parts) == 2:
        return Leaf(base + 31, IntType("uchar_t", 1, False), KSTAT_DATA_UINT64)
    if parts[1] != "value" or len(parts) != 3:
        _warn(f"devhost does not emulate ::print of {member}\n")
        raise CommandFailed()
    if parts[2] not in _VALUE_MEMBERS:
        _warn(f"failed to find member {parts[2]} of {_VALUE_UNION}", EMDB_CTFNOMEMB)
        raise CommandFailed()
    itype = _VALUE_MEMBERS[parts[2]]
    raw = stats[stat] & ((1 << (8 * itype.size)) - 1)  # little-endian: the low bytes
    return Leaf(base + arc.VALUE_OFFSET, itype, raw)


def _format_leaf(leaf: Leaf, member: str, flags: str) -> str:
    # elt_print(): "%llx " address, type and a space, the member as typed, " = ",
    # the value: %#llx by default (0 prints as "0"), %#llu / %#lld with -d ("0t").
    text = ""
    if "a" in flags:
        text += f"{leaf.addr:x} "
    if "t" in flags:
        text += f"{leaf.type.name} "
    text += f"{member} = "
    value = leaf.value
    if "d" in flags:
        if leaf.type.signed and value >= 1 << (8 * leaf.type.size - 1):
            value -= 1 << (8 * leaf.type.size)
        text += f"-0t{-value}" if value < 0 else f"0t{value}"
    else:
        text += f"{value:#x}" if value else "0"
    return text + "\n"


def _write_echo(kernel: arc.Kernel, addr: int, old: int, new: int) -> str:
    # write_uint64(): "%-#*lla%16T%-#24llx=%8T0x%llx\n" with a margin of 0.
    # %#a is the address as symbol+offset with a ":" suffix; %16T pads to the next
    # multiple of 16 columns (nothing when already there); %#x of 0 is "0".
    line = _symbolic(kernel, addr) + ":"
    line = _tab_to(line, 16)
    line += f"{(f'{old:#x}' if old else '0'):<24}="
    line = _tab_to(line, 8)
    return line + f"0x{new:x}\n"


def _tab_to(line: str, width: int) -> str:
    if len(line) % width:
        line += " " * (width - len(line) % width)
    return line


def _symbolic(kernel: arc.Kernel, addr: int) -> str:
    off = addr - kernel.arc_stats_addr
    if 0 <= off < arc.ARC_STATS_SIZE:
        return "arc_stats" + (f"+{off:#x}" if off else "")
    return f"{addr:#x}"


# --- the command --------------------------------------------------------------------


def main(argv: Sequence[str], state_dir: StrPath) -> int:
    parsed = getopt(PROG, argv, "e:fkmo:p:s:uwyACD:FI:KL:MOP:R:SUV:W")
    kernel_target = writable = False
    expr: str | None = None
    for c, arg in parsed.options:
        if c == "?":
            sys.stderr.write(MAIN_USAGE)
            return 0
        if c == BAD:
            sys.stderr.write(MAIN_USAGE)
            return 2
        if c == "k":
            kernel_target = True
        elif c == "w":
            writable = True
        elif c == "e":
            if expr is not None:
                _warn("-e already specified\n")
                return 2
            expr = arg
        elif c in "pufK":
            kernel_target = False
    if not kernel_target or parsed.operands:
        _warn("devhost emulates only the live kernel target: mdb -k [-w]\n")
        return 1
    session = Session(state_dir, writable)
    try:
        session.kernel()
    except (arc.KernelMissing, ValueError, OSError):
        _warn(f"devhost has no kernel to debug: {arc.kernel_path(state_dir)} is missing\n")
        return 1
    if expr is not None:
        session.run(expr)
        return 1 if session.last_failed or session.parse_failed else 0
    try:
        session.run(sys.stdin.read())
    except BrokenPipeError:
        return 1
    return 0
