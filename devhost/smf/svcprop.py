"""svcprop(1): print the values of service configuration properties.

Follows illumos usr/src/cmd/svc/svcprop/svcprop.c: the effective view of an instance
is its composed running snapshot plus its current non-persistent groups (without a
running snapshot, its directly attached groups, as illumos.md says); output is
bare values unless types are asked for (-t), a whole group is shown, the -p forms
are mixed, or several entities matched (then also full FMRIs). Kept free of heavy
imports: the product runs it on every method start.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from devhost.getopt import getopt
from devhost.smf import repository as repo
from devhost.smf.repository import Doc, Pgs, Walked

if TYPE_CHECKING:
    from _typeshed import StrPath

PROG = "svcprop"

USAGE = (
    "Usage: svcprop [-fqtv] [-C | -c | -s snapshot] [-z zone] [-p [name/]name]... \n"
    "         {FMRI | pattern}...\n"
    "       svcprop -w [-fqtv] [-z zone] [-p [name/]name] {FMRI | pattern}\n"
)

EXIT_FATAL = 1
EXIT_USAGE = 2

# Bourne shell metacharacters svcprop backslash-escapes in values.
_SHELL_META = frozenset(";&()|^<>\n \t\\\"'`")

# How often -w looks at the repository file for a change.
WAIT_POLL_SECONDS = 0.05


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def quote_for_shell(value: str) -> str:
    if value == "":
        return '""'
    return "".join("\\" + c if c in _SHELL_META else c for c in value)


class Svcprop:
    def __init__(self, state_dir: StrPath) -> None:
        self.repository = repo.Repository(state_dir)
        self.out: list[str] = []
        self.quiet = False
        self.types = False
        self.verbose = False
        self.fmris = False
        self.wait = False
        self.snapshot: str | None = "running"
        self.cflag = self.big_c = self.sflag = False
        self.props: list[tuple[str, str | None]] = []
        self.return_code = 0

    # --- messages (uu_warn/uu_die; -q silences warn and die, not the usage errors) ---

    def warn(self, msg: str) -> None:
        if not self.quiet:
            sys.stderr.write(f"{PROG}: {msg}\n")

    def die(self, msg: str) -> NoReturn:
        self.warn(msg)
        raise _Exit(EXIT_FATAL)

    def loud_warn(self, msg: str) -> None:
        sys.stderr.write(f"{PROG}: {msg}\n")

    def usage_die(self, msg: str) -> NoReturn:
        self.loud_warn(msg)
        raise _Exit(EXIT_USAGE)

    def usage(self) -> NoReturn:
        sys.stderr.write(USAGE)
        raise _Exit(EXIT_USAGE)

    @property
    def noprop_errors(self) -> bool:
        return not self.quiet or self.verbose

    def noprop(self, msg: str) -> None:
        if not self.noprop_errors:
            raise _Exit(EXIT_FATAL)
        self.loud_warn(msg)
        self.return_code = EXIT_FATAL

    # --- options ---

    def parse(self, argv: list[str]) -> list[str]:
        opts, operands = getopt(PROG, argv, "Ccfp:qs:tvwz:")
        for opt, arg in opts:
            if opt == "C":
                if self.cflag or self.sflag or self.wait:
                    self.usage()
                self.big_c, self.snapshot = True, None
            elif opt == "c":
                if self.big_c or self.sflag or self.wait:
                    self.usage()
                self.cflag, self.snapshot = True, None
            elif opt == "f":
                self.types = self.fmris = True
            elif opt == "p":
                self.add_prop(arg)
            elif opt == "q":
                self.quiet = True
            elif opt == "s":
                if self.big_c or self.cflag or self.wait:
                    self.usage()
                self.snapshot, self.sflag = arg, True
            elif opt == "t":
                self.types = True
            elif opt == "v":
                self.verbose = True
            elif opt == "w":
                if self.big_c or self.cflag or self.sflag:
                    self.usage()
                self.wait = True
            elif opt == "z":
                if arg != "global":
                    self.die(f"invalid zone '{arg}'")
            else:
                self.usage()
        if not operands:
            self.usage()
        return operands

    def add_prop(self, arg: str) -> None:
        first, slash, second = arg.partition("/")
        if "/" in second:
            self.loud_warn(f"-p argument `{arg}' has too many components.")
            self.usage()
        prop = (first, second if slash else None)
        for name in prop:
            if name is not None and not repo.valid_name(name):
                self.usage_die(f"Invalid component name `{name}'.")
        if self.props and (self.props[-1][1] is None) != (prop[1] is None):
            # pg and pg/prop mixed: label the lines as whole groups are labelled.
            self.types = True
        self.props.append(prop)

    # --- output ---

    def display_prop(self, owner: str, pg_name: str, prop_name: str, prop: Any) -> None:
        line = ""
        if self.types:
            if self.fmris:
                line = f"{owner}{repo.PG_PREFIX}{pg_name}/{prop_name} "
            else:
                line = f"{pg_name}/{prop_name} "
            line += prop["type"] + " "
        line += " ".join(quote_for_shell(v) for v in prop["values"])
        self.out.append(line + "\n")

    def display_pg(self, owner: str, pg_name: str, pg: Any) -> None:
        self.types = True  # sticky, as in svcprop.c
        for prop_name, prop in pg["props"].items():
            self.display_prop(owner, pg_name, prop_name, prop)

    # --- entities ---

    def run(self, argv: list[str]) -> int:
        operands = self.parse(argv)
        if self.wait and (len(self.props) > 1 or len(operands) > 1):
            self.usage()
        doc = self.repository.read()
        walked = repo.walk(
            doc,
            operands,
            multiple=not self.wait,
            services=True,
            explicit=True,
            properties=True,
        )
        for msg in walked.errors:
            self.warn(msg)
        if walked.errors:
            self.return_code = EXIT_FATAL
        for match in walked.matches:
            if self.wait:
                self.do_wait(doc, match)
            else:
                if walked.matched > 1:
                    self.types = self.fmris = True
                self.process(doc, match)
        return self.return_code

    def process(self, doc: Doc, match: Walked) -> None:
        if match.prop is not None:
            if self.props:
                self.loud_warn("The -p option cannot be used with property operands.")
                self.usage()
            if not self.quiet:
                pg = self._operand_pg(doc, match)
                self.display_prop(_owner(match), str(match.pg), match.prop, pg["props"][match.prop])
        elif match.pg is not None:
            self.process_pg(doc, match)
        else:
            self.process_entity(doc, match)

    def _operand_pg(self, doc: Doc, match: Walked) -> Any:
        node = repo.node_of(doc, match.service, match.instance)
        assert node is not None
        return node["pgs"][match.pg]

    def process_pg(self, doc: Doc, match: Walked) -> None:
        pg = self._operand_pg(doc, match)
        owner = _owner(match)
        if not self.props:
            if not self.quiet:
                self.display_pg(owner, str(match.pg), pg)
            return
        for first, second in self.props:
            if second is not None:
                self.usage_die(
                    f"-p argument `{first}/{second}' has too many components for "
                    f"property group `{match.fmri}'."
                )
            if first in pg["props"]:
                if not self.quiet:
                    self.display_prop(owner, str(match.pg), first, pg["props"][first])
                continue
            self.noprop(f"Couldn't find property `{first}' in property group `{match.fmri}'.")

    def snapshot_view(self, doc: Doc, match: Walked) -> Pgs | None:
        """The instance's view in the selected snapshot; None when there is none and the
        default (running) snapshot was asked for."""
        assert match.instance is not None and self.snapshot is not None
        if not repo.valid_name(self.snapshot):
            self.die("Invalid snapshot name.")
        view = repo.snapshot_view_of(doc, match.service, match.instance, self.snapshot)
        if view is None and self.sflag:
            self.die("No such snapshot.")
        return view

    def process_entity(self, doc: Doc, match: Walked) -> None:
        is_instance = match.instance is not None
        kind = "instance" if is_instance else "service"
        if not is_instance and self.sflag:
            self.die("Only instances have snapshots.")
        node = repo.node_of(doc, match.service, match.instance)
        assert node is not None
        current = repo.current_view_of(doc, match.service, match.instance)
        snap: Pgs | None = None
        if is_instance and self.snapshot is not None:
            snap = self.snapshot_view(doc, match)

        def owner_of(pg_name: str, from_snapshot: bool) -> str:
            # A composed group read outside a snapshot belongs to the level holding it.
            if from_snapshot or pg_name in node["pgs"]:
                return match.fmri
            return f"svc:/{match.service}"

        # Without its running snapshot an instance shows its directly attached
        # properties (illumos.md section 3; svcprop.c composes the current ones instead).
        direct = self.big_c or (is_instance and self.snapshot is not None and snap is None)

        if not self.props:
            if self.quiet:
                return
            if direct:
                groups, in_snap = node["pgs"], False
            elif snap is not None:
                groups, in_snap = snap, True
            else:
                groups, in_snap = current, False
            for name, pg in groups.items():
                self.display_pg(owner_of(name, in_snap), name, pg)
            if snap is not None and not self.sflag:
                for name, pg in current.items():
                    if pg.get("nonpersistent"):
                        self.display_pg(owner_of(name, False), name, pg)
            return

        for first, second in self.props:
            in_snap = False
            if direct:
                pg = node["pgs"].get(first)
            elif snap is not None:
                pg, in_snap = snap.get(first), True
                if pg is None:
                    live = current.get(first)
                    if live is not None and live.get("nonpersistent"):
                        pg, in_snap = live, False
            else:
                pg = current.get(first)
            if pg is None:
                self.noprop(f"Couldn't find property group `{first}' for {kind} `{match.fmri}'.")
                continue
            owner = owner_of(first, in_snap)
            if second is None:
                if not self.quiet:
                    self.display_pg(owner, first, pg)
                continue
            if second not in pg["props"]:
                self.noprop(f"Couldn't find property `{first}/{second}' for {kind} `{match.fmri}'.")
                continue
            if not self.quiet:
                self.display_prop(owner, first, second, pg["props"][second])

    # --- -w ---

    def do_wait(self, doc: Doc, match: Walked) -> None:
        """Wait for the group (on the entity itself, not composed) to change, then show
        it or the one property."""
        prop_name: str | None
        if match.prop is not None:
            if self.props:
                self.usage_die("-p cannot be used with property FMRIs.")
            pg_name, prop_name = str(match.pg), match.prop
        elif match.pg is not None:
            pg_name = match.pg
            prop_name = None
            if self.props:
                first, second = self.props[0]
                if second is not None:
                    self.usage_die(
                        f'-p argument "{first}/{second}" has too many components for '
                        f"property group {match.fmri}."
                    )
                prop_name = first
        else:
            if not self.props:
                what = "an instance" if match.instance is not None else "a service"
                self.usage_die(f"Cannot wait for {what}.")
            pg_name, prop_name = self.props[0]

        def locate(doc: Doc) -> Any:
            node = repo.node_of(doc, match.service, match.instance)
            return None if node is None else node["pgs"].get(pg_name)

        pg = locate(doc)
        if pg is None or (prop_name is not None and prop_name not in pg["props"]):
            self.die("Not found.")
        pg = self._wait_for_change(locate, pg)
        owner = _owner(match)
        if prop_name is None:
            if not self.quiet:
                self.display_pg(owner, pg_name, pg)
        elif prop_name in pg["props"]:
            if not self.quiet:
                self.display_prop(owner, pg_name, prop_name, pg["props"][prop_name])
        else:
            if self.noprop_errors:
                self.loud_warn("Not found.")
            self.return_code = EXIT_FATAL

    def _wait_for_change(self, locate: Any, before: Any) -> Any:
        import time

        def signature() -> tuple[int, int, int]:
            try:
                st = os.stat(self.repository.path)
            except FileNotFoundError:
                return (0, 0, 0)
            return (st.st_ino, st.st_mtime_ns, st.st_size)

        seen = signature()
        while True:
            time.sleep(WAIT_POLL_SECONDS)
            now = signature()
            if now == seen:
                continue
            seen = now
            pg = locate(self.repository.read())
            if pg is None:
                self.die("Not found.")
            if pg != before:
                return pg


def _owner(match: Walked) -> str:
    """The FMRI of the entity a group operand belongs to."""
    if match.instance is not None:
        return f"svc:/{match.service}:{match.instance}"
    return f"svc:/{match.service}"


def main(argv: list[str], state_dir: StrPath) -> int:
    tool = Svcprop(state_dir)
    try:
        code = tool.run(argv)
    except _Exit as e:
        code = e.code
    except KeyboardInterrupt:
        code = 130
    sys.stdout.write("".join(tool.out))
    sys.stdout.flush()
    return code
