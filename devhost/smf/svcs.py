"""svcs(1): report service status.

Follows illumos usr/src/cmd/svc/svcs/svcs.c (columns, widths, sort keys, -l, -p, -d,
-D) and explain.c (-x). The restarter writes each instance's `restarter` group;
svcs only reads. Kept small and free of heavy imports, because the product polls it:
this module is the plain listing; -l/-L/-p are in svcs_long, -d/-D in svcs_deps and
-x in svcs_explain, each imported only when its option is used.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from devhost.getopt import BAD, getopt
from devhost.smf import repository as repo
from devhost.smf.repository import Doc
from devhost.smf.svcs_common import (
    EXIT_FATAL,
    EXIT_USAGE,
    MAX_STATE,
    PROG,
    STATE_CHAR,
    Exit,
    Inst,
    Run,
    die,
    warn,
)

if TYPE_CHECKING:
    from _typeshed import StrPath

USAGE = (
    "Usage: svcs [-aHpv] [-o col[,col ... ]] [-R restarter] [-sS col] [-Z | -z zone ]\n"
    "            [<service> ...]\n"
    "       svcs -d | -D [-Hpv] [-o col[,col ... ]] [-sS col] [-Z | -z zone ]\n"
    "            [<service> ...]\n"
    "       svcs [-l | -L] [-Z | -z zone] <service> ...\n"
    "       svcs -x [-v] [-Z | -z zone] [<service> ...]\n"
    "       svcs -?\n"
)

HELP = (
    "\n"
    "\t-a  list all service instances rather than only those that are enabled\n"
    "\t-d  list dependencies of the specified service(s)\n"
    "\t-D  list dependents of the specified service(s)\n"
    "\t-H  omit header line from output\n"
    "\t-l  list detailed information about the specified service(s)\n"
    "\t-L  list the log file associated with the specified service(s)\n"
    "\t-o  list only the specified columns in the output\n"
    "\t-p  list process IDs and names associated with each service\n"
    "\t-R  list only those services with the specified restarter\n"
    "\t-s  sort output in ascending order by the specified column(s)\n"
    "\t-S  sort output in descending order by the specified column(s)\n"
    "\t-v  list verbose information appropriate to the type of output\n"
    "\t-x  explain the status of services that might require maintenance,\n"
    "\t    or explain the status of the specified service(s)\n"
    "\t-z  from global zone, show services in a specified zone\n"
    "\t-Z  from global zone, show services in all zones\n"
    "\n\t"
    "Services can be specified using an FMRI, abbreviation, or fnmatch(5)\n"
    "\tpattern, as shown in these examples for svc:/network/smtp:sendmail\n"
    "\n"
    "\tsvcs [opts] svc:/network/smtp:sendmail\n"
    "\tsvcs [opts] network/smtp:sendmail\n"
    "\tsvcs [opts] network/*mail\n"
    "\tsvcs [opts] network/smtp\n"
    "\tsvcs [opts] smtp:sendmail\n"
    "\tsvcs [opts] smtp\n"
    "\tsvcs [opts] sendmail\n"
    "\n\t"
    "Columns for output or sorting can be specified using these names:\n"
    "\n"
)

COLUMN_HELP = {
    "CTID": "contract ID for service (see contract(4))",
    "DESC": "human-readable description of the service",
    "FMRI": "Fault Managed Resource Identifier for service",
    "INST": "portion of the FMRI indicating service instance",
    "N": "abbreviation for next state (if in transition)",
    "NSTA": "abbreviation for next state (if in transition)",
    "NSTATE": "name for next state (if in transition)",
    "S": "abbreviation for current state",
    "SCOPE": "name for scope associated with service",
    "SN": "abbreviation for current state and next state",
    "SVC": "portion of the FMRI representing service name",
    "STA": "abbreviation for current state",
    "STATE": "name for current state",
    "STIME": "time of last state change",
    "ZONE": "name of zone",
}

STATE_ABBREV = {
    "uninitialized": "UN",
    "offline": "OFF",
    "online": "ON",
    "maintenance": "MNT",
    "disabled": "DIS",
    "degraded": "DGD",
    "legacy_run": "LRC",
}
# Sort rank, least interesting first (legacy_run would be 0).
STATE_RANK = {
    "disabled": 1,
    "online": 2,
    "degraded": 3,
    "offline": 4,
    "maintenance": 5,
    "uninitialized": 6,
}

DAY = 24 * 60 * 60


def short_time(seconds: int, now: float) -> str:
    """STIME and -p formats: the time today, the date this year, else the year."""
    tm = time.localtime(seconds)
    if now - seconds < DAY:
        return time.strftime("%k:%M:%S", tm)
    if now - seconds < 12 * 30 * DAY:
        return time.strftime("%b_%d  ", tm)
    return time.strftime("%Y    ", tm)


# --- columns -------------------------------------------------------------------------------


class Lister:
    def __init__(self, doc: Doc, state_dir: StrPath, verbose: bool) -> None:
        self.doc = doc
        self.state_dir = state_dir
        self.verbose = verbose
        self.now = time.time()
        self.nstate_shown = False
        self.zone = "global"

    # Each column: (name, header width, sprint, sortkey).
    def columns(self) -> dict[str, tuple[int, Callable[[Inst], str], Callable[[Inst], bytes]]]:
        return {
            "CTID": (6, self.sprint_ctid, self.key_ctid),
            "DESC": (100, self.sprint_desc, lambda i: bytes(100)),
            "FMRI": (50, self.sprint_fmri, lambda i: self.sprint_fmri(i)[:50].encode()),
            "INST": (20, self.sprint_inst, lambda i: self.sprint_inst(i)[:20].encode()),
            "N": (1, self.sprint_n, self.key_nstate),
            "NSTA": (4, self.sprint_nsta, self.key_nstate),
            "NSTATE": (MAX_STATE, self.sprint_nstate, self.key_nstate),
            "S": (2, self.sprint_s, self.key_state),
            "SCOPE": (20, self.sprint_scope, lambda i: self.sprint_scope(i)[:20].encode()),
            "SN": (2, self.sprint_sn, lambda i: self.key_state(i) + self.key_nstate(i)),
            "SVC": (20, self.sprint_svc, lambda i: self.sprint_svc(i)[:20].encode()),
            "STA": (4, self.sprint_sta, self.key_state),
            "STATE": (MAX_STATE + 1, self.sprint_state, self.key_state),
            "STIME": (8, self.sprint_stime, self.key_stime),
            "ZONE": (16, self.sprint_zone, lambda i: self.sprint_zone(i)[:16].encode()),
        }

    def sprint_ctid(self, i: Inst) -> str:
        ctids = i.contracts()
        if ctids is None or not ctids:
            return "     - "
        if len(ctids) > 1:
            return f"{ctids[0]:5d}* "
        return f"{ctids[0]:6d} "

    def key_ctid(self, i: Inst) -> bytes:
        ctids = i.contracts()
        if ctids is None or len(ctids) != 1:
            return bytes(8)
        return ctids[0].to_bytes(8, "big")

    def sprint_desc(self, i: Inst) -> str:
        name = i.common_name(i.running_or_current()) or "-"
        return name.replace("\n", " ").ljust(100) + " "

    def sprint_fmri(self, i: Inst) -> str:
        return i.fmri.ljust(50) + " "

    def sprint_inst(self, i: Inst) -> str:
        return (i.instance.ljust(20) + " ")[:21]

    def sprint_scope(self, i: Inst) -> str:
        return ("localhost".ljust(20) + " ")[:21]

    def sprint_svc(self, i: Inst) -> str:
        return i.service.ljust(20) + " "

    def sprint_zone(self, i: Inst) -> str:
        return self.zone.ljust(16) + " "

    def star(self, i: Inst) -> bool:
        return not self.nstate_shown and i.transitioning

    def sprint_state(self, i: Inst) -> str:
        name = i.state or "-"
        if self.star(i):
            name += "*"
        return name.ljust(MAX_STATE + 2)[: MAX_STATE + 2]

    def sprint_nstate(self, i: Inst) -> str:
        ns = i.next_state
        if not ns or ns == "none":
            ns = "-"
        return ns.ljust(MAX_STATE) + " "

    def sprint_s(self, i: Inst) -> str:
        return STATE_CHAR.get(i.state, "?") + ("*" if self.star(i) else " ") + " "

    def sprint_n(self, i: Inst) -> str:
        ns = i.next_state
        return ("-" if ns == "none" else STATE_CHAR.get(ns, "?")) + " "

    def sprint_sn(self, i: Inst) -> str:
        ns = i.next_state
        second = "-" if ns == "none" else STATE_CHAR.get(ns, "?")
        return STATE_CHAR.get(i.state, "?") + second + " "

    def sprint_sta(self, i: Inst) -> str:
        sta = STATE_ABBREV.get(i.state, "?") + ("*" if self.star(i) else "")
        return f"{sta:<4} "

    def sprint_nsta(self, i: Inst) -> str:
        ns = i.next_state
        return f"{'-' if ns == 'none' else STATE_ABBREV.get(ns, '?'):<4} "

    def sprint_stime(self, i: Inst) -> str:
        stamp = i.stime()
        if stamp is None:
            return "-".ljust(9)
        return short_time(stamp[0], self.now).ljust(9)[:9]

    def key_state(self, i: Inst) -> bytes:
        return bytes([STATE_RANK.get(i.state, 7)])

    def key_nstate(self, i: Inst) -> bytes:
        return bytes([STATE_RANK.get(i.next_state, 7)])

    def key_stime(self, i: Inst) -> bytes:
        stamp = i.stime()
        if stamp is None:
            return bytes(12)
        return stamp[0].to_bytes(8, "big", signed=True) + stamp[1].to_bytes(4, "big")

    # --- -p ---

    def process_lines(self, i: Inst) -> str:
        from devhost.smf.svcs_long import instance_pids, proc_info

        out = ""
        for pid in sorted(instance_pids(self.state_dir, i)):
            info = proc_info(pid)
            if info is None:
                continue
            start, fname, _ = info
            stime = short_time(int(start), self.now)[:8]
            out += f"\n               {stime:<8}   {pid:6d} {fname[:16]}"
        return out


# --- the command -------------------------------------------------------------------------------


class Svcs(Run):
    def usage(self) -> NoReturn:
        sys.stderr.write(USAGE)
        raise Exit(EXIT_USAGE)

    def run(self, argv: list[str]) -> int:
        opts, operands = getopt(PROG, argv, "aHpvno:R:s:S:dDlL?xZz:")
        mode = ""
        for opt, _ in opts:
            if opt == "?":
                self.out.append(USAGE + HELP)
                for name, text in COLUMN_HELP.items():
                    self.out.append(f"\t{name:<6}  {text}\n")
                return 0
            if opt == BAD:
                self.usage()
            if opt in "dDlLnx":
                if mode:
                    self.usage()
                mode = opt
        show_all = show_header = processes = verbose = False
        show_header = True
        columns: str | None = None
        sort: list[tuple[str, bool]] = []
        restarters: list[str] = []
        zone: str | None = None  # -z/-Z: the zone named in -l and -x output
        show_zones = False  # -Z: the ZONE column too
        for opt, arg in opts:
            if opt == "a":
                if mode:
                    self.usage()
                show_all = True
            elif opt == "H":
                if mode in ("l", "x"):
                    self.usage()
                show_header = False
            elif opt == "p":
                if mode == "x":
                    self.usage()
                processes = True
            elif opt == "v":
                verbose = True
            elif opt == "o":
                if mode in ("l", "x"):
                    self.usage()
                columns = arg
            elif opt == "R":
                if mode:
                    self.usage()
                restarters.append(self.restarter_operand(arg))
            elif opt in "sS":
                if mode:
                    self.usage()
                sort.append((arg, opt == "S"))
            elif opt in ("z", "Z"):
                if (opt == "z" and show_zones) or (opt == "Z" and zone is not None):
                    self.usage()
                show_zones = show_zones or opt == "Z"
                zone = "global" if opt == "Z" else arg
                if zone != "global":
                    warn(f"Could not bind to repository server for zone {zone}: entity not found")
                    return EXIT_FATAL
        if show_all and operands:
            warn("-a ignored when used with arguments.")

        doc = repo.Repository(self.state_dir).read()
        # -l, -L, -x, -d and -D live in modules of their own, imported only when used.
        if mode == "l":
            if not operands:
                self.usage()
            from devhost.smf import svcs_long

            return svcs_long.detailed(self, doc, operands, processes, verbose, zone)
        if mode == "L":
            from devhost.smf import svcs_long

            return svcs_long.logs(self, doc, operands)
        if mode == "x":
            from devhost.smf.svcs_explain import Explainer

            self.exit_status = Explainer(doc, self.out, verbose, zone).run(operands)
            return self.exit_status
        if mode == "n":
            return 0
        return self.listing(
            doc, mode, operands, columns, sort, show_all, show_header, processes, verbose,
            restarters, show_zones,
        )  # fmt: skip

    def restarter_operand(self, fmri: str) -> str:
        parsed = repo.parse_svc_fmri(fmri)
        if parsed is None:
            die(f'Restarter FMRI "{fmri}" is invalid.')
        if parsed.instance is None or parsed.pg is not None:
            die(f'Restarter FMRI "{fmri}" does not designate an instance.')
        return f"svc:/{parsed.service}:{parsed.instance}"

    # --- plain, -d and -D listings ---

    def listing(
        self,
        doc: Doc,
        mode: str,
        operands: list[str],
        columns: str | None,
        sort: list[tuple[str, bool]],
        show_all: bool,
        show_header: bool,
        processes: bool,
        verbose: bool,
        restarters: list[str],
        show_zones: bool,
    ) -> int:
        lister = Lister(doc, self.state_dir, verbose)
        table = lister.columns()
        if columns is None:
            if not sort:
                if show_zones:
                    sort.append(("zone", False))
                sort += [("state", False), ("stime", False), ("fmri", False)]
            base = "state,nstate,stime,ctid,fmri" if verbose else "state,stime,fmri"
            columns = ("zone," if show_zones else "") + base
        sort_cols: list[tuple[str, bool]] = []
        for name, reverse in sort:
            if name.upper() not in table:
                die(f'Unrecognized sort column "{name}".')
            sort_cols.append((name.upper(), reverse))
        shown: list[str] = []
        for name in columns.split(","):
            if name.upper() not in table:
                die(f'Unknown column "{name}".')
            shown.append(name.upper())
        lister.nstate_shown = any(n in ("N", "SN", "NSTA", "NSTATE") for n in shown)

        lines: list[tuple[bytes, str]] = []
        listed: set[str] = set()

        def list_instance(i: Inst) -> None:
            if restarters and i.restarter_canonical() not in restarters:
                return
            if mode == "" and i.fmri in listed:
                return  # svcs.c uniquifies only plain listings
            listed.add(i.fmri)
            text = "".join(table[c][1](i) for c in shown).rstrip(" ")
            if processes:
                text += lister.process_lines(i)
            key = b""
            for c, reverse in sort_cols:
                part = table[c][2](i)
                key += bytes(255 - b for b in part) if reverse else part
            lines.append((key, text))

        if mode == "d":
            if not operands:
                self.usage()
            from devhost.smf import svcs_deps

            self.walk_instances(
                doc, operands, lambda i: svcs_deps.list_dependencies(self, doc, i, list_instance)
            )
        elif mode == "D":
            if not operands:
                self.usage()
            from devhost.smf import svcs_deps

            walked = repo.walk(doc, operands, services=True, missing_instance=True)
            self.report(walked.errors)
            for match in walked.matches:
                svcs_deps.list_dependents(doc, match, list_instance)
        else:
            listing_all = show_all or bool(operands) or bool(restarters)

            def maybe_list(i: Inst) -> None:
                if listing_all or i.enabled("general") or i.enabled("general_ovr"):
                    list_instance(i)

            self.walk_instances(doc, operands, maybe_list, legacy=True)

        if show_header:
            header = "".join(c[: table[c][0]].ljust(table[c][0]) + " " for c in shown)
            self.out.append(header.rstrip(" ") + "\n")
        for _, text in sorted(lines, key=lambda line: line[0]):
            self.out.append(text + "\n")
        return self.exit_status


def main(argv: list[str], state_dir: StrPath) -> int:
    tool = Svcs(state_dir)
    try:
        code = tool.run(argv)
    except Exit as e:
        code = e.code
    sys.stdout.write("".join(tool.out))
    sys.stdout.flush()
    return code
