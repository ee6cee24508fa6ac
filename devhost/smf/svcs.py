"""svcs(1): report service status.

Follows illumos usr/src/cmd/svc/svcs/svcs.c (columns, widths, sort keys, -l, -p, -d,
-D) and explain.c (-x). The restarter writes each instance's `restarter` group;
svcs only reads. Kept free of heavy imports: the product polls it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from devhost.smf import repository as repo
from devhost.smf.repository import Doc, Pgs, Walked
from devhost.smf.svcprop import getopt

PROG = "svcs"
STARTD = "svc:/system/svc/restarter:default"
MSG_BASE = "http://illumos.org/msg/"

EXIT_FATAL = 1
EXIT_USAGE = 2

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

STATE_CHAR = {
    "uninitialized": "u",
    "offline": "0",
    "online": "1",
    "maintenance": "m",
    "disabled": "d",
    "degraded": "D",
    "legacy_run": "L",
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
MAX_STATE = 13  # MAX_SCF_STATE_STRING_SZ - 1

# A property's type is usable as any of its base types (libscf scf_type_base_type).
_BASE_TYPE = {
    "ustring": "astring",
    "uri": "ustring",
    "fmri": "uri",
    "host": "ustring",
    "hostname": "host",
    "net_address": "host",
    "net_address_v4": "net_address",
    "net_address_v6": "net_address",
}

DAY = 24 * 60 * 60


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def type_is(actual: str, wanted: str) -> bool:
    t: str | None = actual
    while t is not None:
        if t == wanted:
            return True
        t = _BASE_TYPE.get(t)
    return False


def warn(msg: str) -> None:
    sys.stderr.write(f"{PROG}: {msg}\n")


def die(msg: str) -> NoReturn:
    warn(msg)
    raise _Exit(EXIT_FATAL)


def _timestamp(text: str) -> tuple[int, int] | None:
    """A time value (seconds[.fraction]) as (seconds, microseconds)."""
    sec, _, frac = text.partition(".")
    try:
        return int(sec), int((frac + "000000")[:6]) if frac else 0
    except ValueError:
        return None


def short_time(seconds: int, now: float) -> str:
    """STIME and -p formats: the time today, the date this year, else the year."""
    tm = time.localtime(seconds)
    if now - seconds < DAY:
        return time.strftime("%k:%M:%S", tm)
    if now - seconds < 12 * 30 * DAY:
        return time.strftime("%b_%d  ", tm)
    return time.strftime("%Y    ", tm)


def long_time(seconds: int) -> str:
    """strftime(NULL) in the C locale of illumos: %c."""
    return time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(seconds))


def locale_name() -> str:
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var)
        if value:
            return "".join(c if c.isalnum() or c == "_" else "_" for c in value)
    return "C"


class Inst:
    """One instance as svcs sees it; reads are cached because columns and sort keys
    ask for the same properties repeatedly."""

    def __init__(self, doc: Doc, service: str, instance: str) -> None:
        self.doc = doc
        self.service = service
        self.instance = instance
        self.fmri = f"svc:/{service}:{instance}"
        node = repo.node_of(doc, service, instance)
        assert node is not None
        self.node = node
        self._current: Pgs | None = None

    @property
    def current(self) -> Pgs:
        """The composed current view (what svcs reads restarter properties from)."""
        if self._current is None:
            self._current = repo.current_view_of(self.doc, self.service, self.instance)
        return self._current

    @property
    def direct(self) -> Pgs:
        pgs: Pgs = self.node["pgs"]
        return pgs

    def running_or_current(self) -> Pgs:
        snap = repo.snapshot_view_of(self.doc, self.service, self.instance, "running")
        return self.current if snap is None else snap

    def value(
        self, pgs: Pgs, pg: str, prop: str, ptype: str, *, empty_ok: bool = False
    ) -> str | None:
        group = pgs.get(pg)
        return None if group is None else self.single(group, pg, prop, ptype, empty_ok)

    def single(
        self, group: Any, pg: str, prop: str, ptype: str, empty_ok: bool = False
    ) -> str | None:
        """pg_get_single_val(): the single value, None when missing; a value of the wrong
        type or count is reported as misconfigured."""
        if prop not in group["props"]:
            return None
        entry = group["props"][prop]
        values = entry["values"]
        if type_is(entry["type"], ptype) and len(values) == 1:
            return str(values[0])
        if type_is(entry["type"], ptype) and not values and empty_ok:
            return None
        warn(f'Property "{self.fmri}{repo.PG_PREFIX}{pg}/{prop}" is misconfigured.')
        return None

    def restarter(self, prop: str, ptype: str = "astring", **kw: bool) -> str | None:
        return self.value(self.current, "restarter", prop, ptype, **kw)

    @property
    def state(self) -> str:
        return (self.restarter("state") or "")[:MAX_STATE]

    @property
    def next_state(self) -> str:
        return (self.restarter("next_state") or "")[:MAX_STATE]

    @property
    def transitioning(self) -> bool:
        return self.next_state in STATE_CHAR

    def stime(self) -> tuple[int, int] | None:
        text = self.restarter("state_timestamp", "time")
        return None if text is None else _timestamp(text)

    def contracts(self) -> list[int] | None:
        """restarter/contract values, None when absent or not a count."""
        group = self.current.get("restarter")
        if group is None or "contract" not in group["props"]:
            return None
        entry = group["props"]["contract"]
        if not type_is(entry["type"], "count"):
            warn(f'Property "{self.fmri}{repo.PG_PREFIX}restarter/contract" is misconfigured.')
            return None
        return [int(v) for v in entry["values"]]

    def enabled(self, pg: str) -> bool | None:
        text = self.value(self.direct, pg, "enabled", "boolean")
        return None if text is None else text == "true"

    def restarter_fmri(self) -> str:
        return self.value(self.current, "general", "restarter", "astring") or STARTD

    def restarter_canonical(self) -> str | None:
        parsed = repo.parse_svc_fmri(self.restarter_fmri())
        if parsed is None or parsed.instance is None:
            return None
        return f"svc:/{parsed.service}:{parsed.instance}"

    def common_name(self, view: Pgs) -> str | None:
        for name in (locale_name(), "C"):
            text = self.value(view, "tm_common_name", name, "ustring")
            if text is not None:
                return text
        return None


# --- columns -------------------------------------------------------------------------------


class Lister:
    def __init__(self, doc: Doc, state_dir: Path, verbose: bool) -> None:
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
        out = ""
        for pid in sorted(instance_pids(self.state_dir, i)):
            info = proc_info(pid)
            if info is None:
                continue
            start, fname, _ = info
            stime = short_time(int(start), self.now)[:8]
            out += f"\n               {stime:<8}   {pid:6d} {fname[:16]}"
        return out


def instance_pids(state_dir: Path, i: Inst) -> list[int]:
    """The processes in the instance's contract(s) (restarter/contract and
    restarter/transient_contract), as the restarter's contract emulation knows them."""
    group = i.direct.get("restarter")
    if group is None:
        return []
    ctids: list[int] = []
    for name in ("contract", "transient_contract"):
        entry = group["props"].get(name)
        if entry is not None and entry["type"] == "count":
            ctids.extend(int(v) for v in entry["values"])
    if not ctids:
        return []
    try:
        from devhost.smf import contracts
    except ImportError:
        return []
    pids: list[int] = []
    for ctid in ctids:
        pids.extend(contracts.processes(state_dir, ctid))
    return pids


_BOOT_TIME: float | None = None


def proc_info(pid: int) -> tuple[float, str, str] | None:
    """(start time, command name, argument string) of a live process, from /proc."""
    global _BOOT_TIME
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
    fname = stat[stat.find("(") + 1 : stat.rfind(")")]
    fields = stat[stat.rfind(")") + 2 :].split()
    if _BOOT_TIME is None:
        with open("/proc/stat") as f:
            _BOOT_TIME = next(float(line.split()[1]) for line in f if line.startswith("btime"))
    start = _BOOT_TIME + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return start, fname, (args or fname)[:80]


# --- dependencies ----------------------------------------------------------------------------


def dependency_groups(i: Inst) -> list[tuple[str, Any]]:
    """The instance's dependency groups in its running snapshot (composed), or in the
    current composed view when it has none."""
    return [(n, pg) for n, pg in i.running_or_current().items() if pg["type"] == "dependency"]


def prop_values(pg: Any, name: str) -> list[str]:
    entry = pg["props"].get(name)
    return [] if entry is None else list(entry["values"])


def fmri_state(doc: Doc, fmri: str) -> str:
    """What svcs -l shows after a dependency: the state of the instance, the one
    instance of a service, or a file's presence."""
    if fmri.startswith("file:"):
        path = _file_path(fmri)
        if path is None:
            return "invalid"
        try:
            os.stat(path)
        except FileNotFoundError:
            return "absent"
        except OSError:
            return "unknown"
        return "online"
    parsed = repo.parse_svc_fmri(fmri)
    if parsed is None or parsed.service is None or parsed.pg is not None:
        return "invalid"
    svc = doc["services"].get(parsed.service)
    if parsed.instance is not None:
        if svc is None or parsed.instance not in svc["instances"]:
            return "absent"
        return Inst(doc, parsed.service, parsed.instance).state
    if svc is None or not svc["instances"]:
        return "absent"
    if len(svc["instances"]) > 1:
        return "multiple"
    only = next(iter(svc["instances"]))
    return Inst(doc, parsed.service, only).state


def _file_path(fmri: str) -> str | None:
    s = fmri.removeprefix("file:")
    if s.startswith("//"):
        s = s[2:]
        if s.startswith("localhost/"):
            s = s[len("localhost") :]
        elif not s.startswith("/"):
            return None
    return s if s.startswith("/") else None


# --- the command -------------------------------------------------------------------------------


class Svcs:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.exit_status = 0
        self.out: list[str] = []

    def usage(self) -> NoReturn:
        sys.stderr.write(USAGE)
        raise _Exit(EXIT_USAGE)

    def run(self, argv: list[str]) -> int:
        opts, operands = getopt(PROG, argv, "aHpvno:R:s:S:dDlL?xZz:")
        mode = ""
        for opt, arg in opts:
            if opt == "?":
                if arg == "":
                    self.out.append(USAGE + HELP)
                    for name, text in COLUMN_HELP.items():
                        self.out.append(f"\t{name:<6}  {text}\n")
                    return 0
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
        if mode == "l":
            if not operands:
                self.usage()
            return self.detailed(doc, operands, processes, verbose, zone)
        if mode == "L":
            return self.logs(doc, operands)
        if mode == "x":
            from_explain = Explainer(doc, self.out, verbose, zone)
            self.exit_status = from_explain.run(operands)
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
            self.walk_instances(
                doc, operands, lambda i: self.list_dependencies(doc, i, list_instance)
            )
        elif mode == "D":
            if not operands:
                self.usage()
            walked = repo.walk(doc, operands, services=True)
            self.report(walked.errors)
            for match in walked.matches:
                self.list_dependents(doc, match, list_instance)
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

    def report(self, errors: list[str]) -> None:
        for msg in errors:
            warn(msg)
        if errors:
            self.exit_status = EXIT_FATAL

    def walk_instances(
        self, doc: Doc, operands: list[str], each: Callable[[Inst], None], legacy: bool = False
    ) -> None:
        walked = repo.walk(doc, operands, legacy=legacy)
        self.report(walked.errors)
        for match in walked.matches:
            assert match.instance is not None
            each(Inst(doc, match.service, match.instance))

    def list_dependencies(self, doc: Doc, i: Inst, list_instance: Callable[[Inst], None]) -> None:
        for _, pg in dependency_groups(i):
            grouping = pg["props"].get("grouping")
            if grouping is None or grouping["type"] != "astring" or len(grouping["values"]) != 1:
                continue
            if grouping["values"][0] == "exclude_all":
                continue
            for fmri in prop_values(pg, "entities"):
                self.list_svc_or_inst(doc, fmri, list_instance)

    def list_svc_or_inst(self, doc: Doc, fmri: str, list_instance: Callable[[Inst], None]) -> None:
        parsed = repo.parse_svc_fmri(fmri)
        if parsed is None:
            self.exit_status = EXIT_FATAL
            return
        if parsed.service is None or parsed.pg is not None:
            return
        svc = doc["services"].get(parsed.service)
        if parsed.instance is not None:
            if svc is not None and parsed.instance in svc["instances"]:
                list_instance(Inst(doc, parsed.service, parsed.instance))
            return
        if svc is None:
            self.exit_status = EXIT_FATAL
            return
        for name in svc["instances"]:
            list_instance(Inst(doc, parsed.service, name))
        self.exit_status = 0  # svcs.c resets it here

    def list_dependents(
        self, doc: Doc, provider: Walked, list_instance: Callable[[Inst], None]
    ) -> None:
        for match in repo.walk(doc, []).matches:
            assert match.instance is not None
            i = Inst(doc, match.service, match.instance)
            if any(
                _provides(provider, fmri)
                for _, pg in dependency_groups(i)
                if _grouping(pg) not in (None, "exclude_all")
                for fmri in prop_values(pg, "entities")
            ):
                list_instance(i)

    # --- -l and -L ---

    def detailed(
        self, doc: Doc, operands: list[str], processes: bool, verbose: bool, zone: str | None
    ) -> int:
        first = True

        def paragraph(i: Inst) -> None:
            nonlocal first
            if not first:
                self.out.append("\n")
            first = False
            self.out.append(self.detail(doc, i, processes, verbose, zone))

        self.walk_instances(doc, operands, paragraph)
        return self.exit_status

    def detail(self, doc: Doc, i: Inst, processes: bool, verbose: bool, zone: str | None) -> str:
        lines = [f"{'fmri':<13}{i.fmri}\n"]
        name = i.common_name(i.running_or_current())
        if name is not None:
            lines.append(f"{'name':<13}{name}\n")
        if zone is not None:
            lines.append(f"{'zone':<13}{zone}\n")
        perm, temp = i.enabled("general"), i.enabled("general_ovr")
        if temp is not None:
            suffix = " (temporary)" if temp != perm else ""
            lines.append(f"{'enabled':<13}{'true' if temp else 'false'}{suffix}\n")
        elif perm is not None:
            lines.append(f"{'enabled':<13}{'true' if perm else 'false'}\n")
        rpg = i.direct.get("restarter")
        if rpg is not None:
            direct = i.direct
            for label, prop in (("state", "state"), ("next_state", "next_state")):
                value = i.value(direct, "restarter", prop, "astring")
                if value is not None:
                    lines.append(f"{label:<13}{value}\n")
            stamp_text = i.value(direct, "restarter", "state_timestamp", "time")
            stamp = None if stamp_text is None else _timestamp(stamp_text)
            if stamp is not None:
                lines.append(f"{'state_time':<13}{long_time(stamp[0])}\n")
            for prop in ("alt_logfile", "logfile"):
                value = i.value(direct, "restarter", prop, "astring")
                if value is not None:
                    lines.append(f"{prop:<13}{value}\n")
        lines.append(f"{'restarter':<13}{i.restarter_fmri()}\n")
        if rpg is not None:
            entry = rpg["props"].get("contract")
            if entry is not None and type_is(entry["type"], "count"):
                lines.append(f"{'contract_id':<13}" + "".join(f"{v} " for v in entry["values"]))
                lines.append("\n")
        for _, pg in dependency_groups(i):
            entities = pg["props"].get("entities")
            if entities is None or entities["type"] != "fmri":
                continue
            grouping = i.single(pg, "dependency", "grouping", "astring") or "?"
            restart_on = i.single(pg, "dependency", "restart_on", "astring") or "?"
            line = f"{'dependency':<13}{grouping}/{restart_on}"
            for fmri in entities["values"]:
                line += f" {fmri} ({fmri_state(doc, fmri)})"
            lines.append(line + "\n")
        if processes and i.contracts():
            for pid in sorted(instance_pids(self.state_dir, i)):
                info = proc_info(pid)
                lines.append(f"{'process':<13}{pid}" + ("" if info is None else f" {info[2]}"))
                lines.append("\n")
        if verbose:
            lines.append(application_properties(i))
        return "".join(lines)

    def logs(self, doc: Doc, operands: list[str]) -> int:
        def log(i: Inst) -> None:
            if "restarter" in i.direct:
                path = i.value(i.direct, "restarter", "logfile", "astring")
                if path is not None:
                    self.out.append(path + "\n")

        self.walk_instances(doc, operands, log)
        return self.exit_status


def _grouping(pg: Any) -> str | None:
    entry = pg["props"].get("grouping")
    if entry is None or entry["type"] != "astring" or len(entry["values"]) != 1:
        return None
    value: str = entry["values"][0]
    return value


def _provides(provider: Walked, fmri: str) -> bool:
    """Whether a dependency on fmri is one on the provider (a dependency on a service
    counts for each of its instances)."""
    parsed = repo.parse_svc_fmri(fmri)
    if parsed is None or parsed.service is None or parsed.pg is not None:
        return False
    if parsed.service != provider.service:
        return False
    if provider.instance is None:
        return parsed.instance is None
    return parsed.instance is None or parsed.instance == provider.instance


def application_properties(i: Inst) -> str:
    """svcs -l -v: the application groups of the running snapshot."""
    out = ""
    for pg_name, pg in i.running_or_current().items():
        if pg["type"] != "application":
            continue
        out += f"{pg_name} (application)\n"
        for prop_name, prop in pg["props"].items():
            out += f"{pg_name}/{prop_name} ({prop['type']}) = "
            for value in prop["values"]:
                if any(c in value for c in ' \t\n"()'):
                    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
                    out += f'"{escaped}"'
                else:
                    out += f"{value} "
            out += "\n"
    return out


# --- -x: explain.c -----------------------------------------------------------------------------

# illumos's strsignal() texts, by signal name (the restarter records Linux numbers).
SIGNAL_TEXT = {
    "SIGHUP": "Hangup",
    "SIGINT": "Interrupt",
    "SIGQUIT": "Quit",
    "SIGILL": "Illegal Instruction",
    "SIGTRAP": "Trace/Breakpoint Trap",
    "SIGABRT": "Abort",
    "SIGFPE": "Arithmetic Exception",
    "SIGKILL": "Killed",
    "SIGBUS": "Bus Error",
    "SIGSEGV": "Segmentation Fault",
    "SIGSYS": "Bad System Call",
    "SIGPIPE": "Broken Pipe",
    "SIGALRM": "Alarm Clock",
    "SIGTERM": "Terminated",
    "SIGUSR1": "User Signal 1",
    "SIGUSR2": "User Signal 2",
    "SIGCHLD": "Child Status Changed",
    "SIGPWR": "Power-Fail/Restart",
    "SIGWINCH": "Window Size Change",
    "SIGURG": "Urgent Socket Condition",
    "SIGPOLL": "Pollable Event",
    "SIGSTOP": "Stopped (signal)",
    "SIGTSTP": "Stopped (user)",
    "SIGCONT": "Continued",
    "SIGTTIN": "Stopped (tty input)",
    "SIGTTOU": "Stopped (tty output)",
    "SIGVTALRM": "Virtual Timer Expired",
    "SIGPROF": "Profiling Timer Expired",
    "SIGXCPU": "Cpu Limit Exceeded",
    "SIGXFSZ": "File Size Limit Exceeded",
}

SMF_EXIT_ERR_FATAL = 95
SMF_EXIT_ERR_CONFIG = 96


def signal_text(signo: int) -> str | None:
    import signal

    try:
        name = signal.Signals(signo).name
    except ValueError:
        return None
    return SIGNAL_TEXT.get(name)


def method_failure(waitstatus: int, aux_state: str) -> tuple[str, str]:
    """The Reason line for a failed method and its message code, from the raw wait
    status the restarter recorded (explain.c print_method_failure)."""
    repeated = aux_state == "fault_threshold_reached"
    how: str | None = None
    if waitstatus != 0:
        if waitstatus & 0x7F == 0:  # exited
            code = (waitstatus >> 8) & 0xFF
            if code == SMF_EXIT_ERR_CONFIG:
                how = "exited with $SMF_EXIT_ERR_CONFIG"
            elif code == SMF_EXIT_ERR_FATAL:
                how = "exited with $SMF_EXIT_ERR_FATAL"
            else:
                how = f"exited with status {code}"
        elif waitstatus & 0x7F != 0x7F:  # killed by a signal
            sig = waitstatus & 0x7F
            text = signal_text(sig)
            if waitstatus & 0x80:
                how = f"dumped core on {text} ({sig})" if text else f"dumped core signal {sig}"
            else:
                how = f"died on {text} ({sig})" if text else f"died on signal {sig}"
    if how is None:
        reason = "Method failed repeatedly." if repeated else "Method failed."
        return f"Reason: {reason}", "SMF-8000-8Q"
    if repeated:
        return f"Reason: Start method failed repeatedly, last {how}.", "SMF-8000-KS"
    return f"Reason: Start method {how}.", "SMF-8000-KS"


class XInst:
    """An instance as explain.c loads it (only those with a complete restarter group)."""

    def __init__(self, i: Inst) -> None:
        self.i = i
        self.fmri = i.fmri
        direct = i.direct
        self.state = (i.value(direct, "restarter", "state", "astring") or "")[:MAX_STATE]
        self.next_state = (i.value(direct, "restarter", "next_state", "astring") or "")[:MAX_STATE]
        stamp = i.value(direct, "restarter", "state_timestamp", "time")
        self.stime = 0 if stamp is None else (_timestamp(stamp) or (0, 0))[0]
        self.aux_state = (
            i.value(direct, "restarter", "auxiliary_state", "astring") or "invalid_aux_state"
        )
        waitstatus = i.value(direct, "restarter", "start_method_waitstatus", "integer")
        self.waitstatus = int(waitstatus) if waitstatus is not None else 0
        self.aux_fmri = i.value(direct, "restarter", "auxiliary_fmri", "astring")
        perm = i.value(i.current, "general", "enabled", "boolean") == "true"
        temp = i.enabled("general_ovr")
        self.enabled = perm if temp is None else temp
        self.temporary = temp is not None and temp != perm
        self.restarter = i.value(i.current, "general", "restarter", "astring") or STARTD
        self.dependencies: list[tuple[str, str, list[str]]] = []  # (grouping, type, fmris)
        self.causes: list[XInst] | None = None
        self.next_hop: dict[int, XInst] = {}  # id(cause) -> the dependency it came through
        self.baddeps: list[str] = []
        self.impact_dependents: list[XInst] = []
        self.impact: list[XInst] | None = None
        self.active = False
        self.restarter_bad = ""  # "", "invalid" or "absent"
        self.summary: str | None = None

    @property
    def running(self) -> bool:
        return self.state in ("online", "degraded")


def _complete_restarter(i: Inst) -> bool:
    return all(
        i.value(i.direct, "restarter", p, t) is not None
        for p, t in (("state", "astring"), ("next_state", "astring"), ("state_timestamp", "time"))
    )


class Explainer:
    def __init__(self, doc: Doc, out: list[str], verbose: bool, zone: str | None) -> None:
        self.doc = doc
        self.out = out
        self.verbose = verbose
        self.zone = zone
        self.insts: dict[tuple[str, str], XInst] = {}
        self.services: set[str] = set()  # services with an instance, as explain.c hashes them
        self.g_causes: list[XInst] = []
        self.first = True

    def load(self) -> None:
        for sname, svc in self.doc["services"].items():
            for iname in svc["instances"]:
                self.services.add(sname)
                i = Inst(self.doc, sname, iname)
                if "restarter" not in i.direct:
                    sys.stderr.write(
                        f'svc:/{sname}:{iname} has no "restarter" property group; ignoring.\n'
                    )
                    continue
                if not _complete_restarter(i):
                    continue
                if i.value(i.current, "general", "enabled", "boolean") is None:
                    continue
                x = XInst(i)
                if x.state == "offline" and not self.load_dependencies(x):
                    continue
                self.insts[(sname, iname)] = x

    def load_dependencies(self, x: XInst) -> bool:
        for _, pg in dependency_groups(x.i):
            grouping = x.i.single(pg, "dependency", "grouping", "astring")
            if grouping is None:
                return False
            if grouping not in ("require_all", "require_any", "optional_all", "exclude_all"):
                sys.stderr.write(f'{x.fmri} has dependency with unknown type "{grouping}".\n')
                return False
            dtype = x.i.single(pg, "dependency", "type", "astring")
            if dtype is None:
                return False
            if "entities" not in pg["props"]:
                sys.stderr.write(f"{x.fmri} has dependency without an entities property.\n")
                return False
            x.dependencies.append((grouping, dtype, prop_values(pg, "entities")))
        return True

    def get_fmri(self, fmri: str) -> tuple[str, XInst | None, list[XInst]]:
        """explain.c get_fmri(): ("" | "invalid" | "absent", the instance named, or the
        loaded instances of the service named)."""
        parsed = repo.parse_svc_fmri(fmri)
        if parsed is None or parsed.service is None:
            return "invalid", None, []
        if parsed.service not in self.services:
            return "absent", None, []
        if parsed.instance is not None:
            found = self.insts.get((parsed.service, parsed.instance))
            return ("", found, []) if found is not None else ("absent", None, [])
        return "", None, [x for (s, _), x in self.insts.items() if s == parsed.service]

    def add_causes(self, dst: XInst, src: XInst) -> bool:
        """Merge src's causes into dst's; False on a dependency cycle."""
        if not self.determine_causes(src, can_fail=True):
            sys.stderr.write(f"  {dst.fmri}\n")
            return False
        if dst not in src.impact_dependents:
            src.impact_dependents.append(dst)
        assert src.causes is not None and dst.causes is not None
        for cause in src.causes:
            if cause in dst.causes:
                continue
            dst.causes.append(cause)
            dst.next_hop[id(cause)] = src
            self.add_g_cause(cause)
        return True

    def add_g_cause(self, x: XInst) -> None:
        if x not in self.g_causes:
            self.g_causes.append(x)

    def determine_causes(self, x: XInst, can_fail: bool = False) -> bool:
        """Why x is not running (explain.c determine_causes); False on a cycle when the
        caller can take a failure."""
        if x.active:
            sys.stderr.write(f"Dependency cycle detected:\n  {x.fmri}\n")
            return not can_fail
        if x.causes is not None:
            return True
        x.causes = []
        if x.running or x.state == "uninitialized":
            x.causes.append(x)  # a running service may be excluding another
            return True
        if x.state == "maintenance":
            x.causes.append(x)
            self.add_g_cause(x)
            return True
        if x.state == "disabled":
            x.causes.append(x)
            if x.enabled:
                self.add_g_cause(x)
            return True
        if x.state != "offline":
            sys.stderr.write(f'{x.fmri} has invalid state "{x.state}".\n')
            x.causes.append(x)
            self.add_g_cause(x)
            return True
        if x.next_state != "none":
            x.causes.append(x)
            self.add_g_cause(x)
            return True
        x.active = True
        for grouping, dtype, fmris in x.dependencies:
            if dtype == "path":
                self.file_dependency(x, grouping, fmris)
            elif dtype == "service":
                if not self.service_dependency(x, grouping, fmris):
                    x.active = False
                    return not can_fail
            else:
                sys.stderr.write(f'{x.fmri} has dependency group with invalid type "{dtype}".\n')
        if not x.causes:
            if x.baddeps:
                self.add_g_cause(x)
                x.causes.append(x)
            else:
                status, restarter, _ = self.get_fmri(x.restarter)
                if x.restarter == STARTD:
                    status, restarter = "", None  # the emulated svc.startd always runs
                if status == "" and restarter is not None and not restarter.running:
                    if not self.add_causes(x, restarter):
                        x.active = False
                        return not can_fail
                else:
                    x.restarter_bad = status
                    x.causes.append(x)
                    self.add_g_cause(x)
        x.active = False
        return True

    def service_dependency(self, x: XInst, grouping: str, fmris: list[str]) -> bool:
        """One service dependency group; False on a cycle."""
        resolved: list[tuple[str, str, XInst | None, list[XInst]]] = []
        for fmri in fmris:
            status, inst, members = self.get_fmri(fmri)
            if status == "invalid":
                sys.stderr.write(f'{x.fmri} has invalid dependency "{fmri}".\n')
                continue
            resolved.append((fmri, status, inst, members))

        def blocked_by(targets: list[XInst]) -> bool:
            return all(self.add_causes(x, t) for t in targets)

        if grouping == "require_any":
            for _, status, inst, members in resolved:
                if status == "absent":
                    continue
                if any(t.running for t in ([inst] if inst else members)):
                    return True
            for fmri, status, inst, members in resolved:
                if status == "absent":
                    x.baddeps.append(fmri)
                    continue
                targets = [inst] if inst else members
                if not blocked_by([t for t in targets if not t.running]):
                    return False
            return True
        for fmri, status, inst, members in resolved:
            if status == "absent":
                if grouping == "require_all":
                    x.baddeps.append(fmri)
                continue
            targets = [inst] if inst else members
            if grouping == "require_all":
                if inst is None and any(t.running for t in targets):
                    continue
                blocking = [t for t in targets if not t.running]
            elif grouping == "optional_all":
                blocking = [
                    t for t in targets if t.enabled and not (t.running or t.state == "maintenance")
                ]
            else:  # exclude_all
                blocking = [t for t in targets if t.running]
            if not blocked_by(blocking):
                return False
        return True

    def file_dependency(self, x: XInst, grouping: str, fmris: list[str]) -> None:
        missing: list[str] = []
        any_present = False
        for fmri in fmris:
            path = _file_path(fmri)
            if path is None:
                sys.stderr.write(f'{x.fmri} has invalid dependency "{fmri}".\n')
                continue
            present = os.path.exists(path)
            if grouping in ("require_all", "optional_all"):
                if not present:
                    x.baddeps.append(fmri)
            elif grouping == "exclude_all":
                if present:
                    x.baddeps.append(fmri)
            elif present:
                any_present = True
            else:
                missing.append(fmri)
        if grouping == "require_any" and not any_present:
            x.baddeps.extend(reversed(missing))

    def determine_impact(self, x: XInst) -> bool:
        if x.active:
            sys.stderr.write(f"Dependency cycle detected:\n  {x.fmri}\n")
            return False
        if x.impact is not None:
            return True
        x.impact = []
        x.active = True
        for dependent in x.impact_dependents:
            if not self.determine_impact(dependent):
                sys.stderr.write(f"  {x.fmri}\n")
                return False
            if dependent not in x.impact:
                x.impact.append(dependent)
            for further in dependent.impact or []:
                if further not in x.impact:
                    x.impact.append(further)
        x.active = False
        return True

    def summary(self, x: XInst) -> str:
        if x.summary is not None:
            return x.summary
        if x.running:
            text = "is running."
        elif x.state == "uninitialized":
            text = "is uninitialized."
        elif x.state == "disabled":
            text = "is temporarily disabled." if x.temporary else "is disabled."
        elif x.state == "offline":
            if x.baddeps:
                text = "has missing dependencies."
            elif x.next_state == "online":
                text = "is starting."
            else:
                text = "is offline."
        elif x.state == "maintenance":
            text = {
                "administrative_request": "was taken down for maintenace by an administrator.",
                "dependency_cycle": "completed a dependency cycle.",
                "fault_threshold_reached": "is not running because a method failed repeatedly.",
                "invalid_dependency": "has an invalid dependency.",
                "invalid_restarter": "has an invalid restarter.",
                "method_failed": "is not running because a method failed.",
                "none": "is not running for an unknown reason.",
                "restarting_too_quickly": "was restarting too quickly.",
            }.get(x.aux_state, "requires maintenance.")
        else:
            text = "is in an invalid state."
        x.summary = text
        return text

    def see(self, code: str) -> None:
        self.out.append(f"   See: {MSG_BASE}{code}\n")

    def dependency_reasons(self, x: XInst) -> None:
        assert x.causes is not None
        if not x.baddeps and len(x.causes) == 1 and x.causes[0] is x:
            if x.restarter_bad == "invalid":
                self.out.append(f'Reason: Restarter "{x.restarter}" is invalid.\n')
                self.see("SMF-8000-2A")
            elif x.restarter_bad == "absent":
                self.out.append(f'Reason: Restarter "{x.restarter}" does not exist.\n')
                self.see("SMF-8000-3P")
            else:
                self.out.append("Reason: Unknown.\n")
                self.see("SMF-8000-AR")
            return
        for fmri in x.baddeps:
            self.out.append(f"Reason: Dependency {fmri} is absent.\n")
            self.see("SMF-8000-E2")
        for cause in x.causes:
            if cause is x:
                break
            if cause.running:
                self.out.append(f"Reason: Service {cause.fmri} is running.\n")
                code = "SMF-8000-FJ"
            else:
                line = f"Reason: Service {cause.fmri} {self.summary(cause)}"
                if len(line) <= 80:
                    self.out.append(line + "\n")
                else:
                    self.out.append(
                        f"Reason: Service {cause.fmri}\n        {self.summary(cause)}\n"
                    )
                code = "SMF-8000-GE"
            self.see(code)
            if self.verbose:
                self.out.append(f"  Path: {x.fmri}\n")
                indent = 1
                hop = x.next_hop.get(id(cause))
                while hop is not None:
                    self.out.append(f"{'':6}  {'':{indent * 2}}{hop.fmri}\n")
                    indent += 1
                    if hop is cause:
                        break
                    hop = hop.next_hop.get(id(cause))

    def reasons(self, x: XInst) -> None:
        code: str | None = None
        if x.state == "online":
            return
        if x.state == "uninitialized":
            if x.restarter == STARTD:
                self.out.append(
                    f"Reason: Restarter {x.restarter} has not initialized service state.\n"
                )
                code = "SMF-8000-4D"
            else:
                status, rinst, _ = self.get_fmri(x.restarter)
                if status == "absent":
                    self.out.append(f'Reason: Restarter "{x.restarter}" does not exist.\n')
                    code = "SMF-8000-3P"
                elif status != "ok" or rinst is None:
                    self.out.append(f'Reason: Restarter "{x.restarter}" is invalid.\n')
                    code = "SMF-8000-2A"
                elif rinst.running:
                    self.out.append(
                        f"Reason: Restarter {x.restarter} has not initialized service state.\n"
                    )
                    code = "SMF-8000-4D"
                else:
                    self.out.append(f"Reason: Restarter {x.restarter} is not running.\n")
                    code = "SMF-8000-5H"
        elif x.state == "disabled":
            if x.temporary:
                self.out.append("Reason: Temporarily disabled by an administrator.\n")
                code = "SMF-8000-1S"
            else:
                self.out.append("Reason: Disabled by an administrator.\n")
                code = "SMF-8000-05"
        elif x.state == "maintenance":
            aux = x.aux_state
            if aux == "administrative_request":
                self.out.append("Reason: Maintenance requested by an administrator.\n")
                code = "SMF-8000-63"
            elif aux == "dependency_cycle":
                self.out.append("Reason: Completes a dependency cycle.\n")
                code = "SMF-8000-HP"
            elif aux in ("fault_threshold_reached", "method_failed"):
                line, code = method_failure(x.waitstatus, aux)
                self.out.append(line + "\n")
            elif aux == "service_request":
                if x.aux_fmri:
                    self.out.append(f'Reason: Maintenance requested by "{x.aux_fmri}"\n')
                    parsed = repo.parse_svc_fmri(x.aux_fmri)
                    if parsed is not None and parsed.service and parsed.instance:
                        other = self.insts.get((parsed.service, parsed.instance))
                        if other is not None:
                            self.logs(other.i)
                else:
                    self.out.append("Reason: Maintenance requested by another service.\n")
                code = "SMF-8000-R4"
            elif aux == "invalid_dependency":
                self.out.append("Reason: Has invalid dependency.\n")
                code = "SMF-8000-JA"
            elif aux == "invalid_restarter":
                self.out.append(f'Reason: Restarter "{x.restarter}" is invalid.\n')
                code = "SMF-8000-2A"
            elif aux == "restarting_too_quickly":
                self.out.append("Reason: Restarting too quickly.\n")
                code = "SMF-8000-L5"
            elif aux == "none":
                self.out.append(f"Reason: Restarter {x.restarter} gave no explanation.\n")
                code = "SMF-8000-9C"
            else:
                self.out.append("Reason: Unknown.\n")
                code = "SMF-8000-AR"
        elif x.state == "offline":
            if x.next_state == "online":
                self.out.append("Reason: Start method is running.\n")
                code = "SMF-8000-C4"
            elif x.next_state == "none":
                self.dependency_reasons(x)
                return
            else:
                self.out.append(f"Reason: Transitioning to state {x.next_state}.\n")
                code = "SMF-8000-PH"
        elif x.state == "degraded":
            self.out.append("Reason: Degraded by an administrator.\n")
            code = "SMF-8000-DX"
        else:
            self.out.append(f"Reason: Not in valid state ({x.state}).\n")
            code = "SMF-8000-N3"
        self.see(code)

    def logs(self, i: Inst) -> None:
        for prop in ("alt_logfile", "logfile"):
            value = i.value(i.direct, "restarter", prop, "astring")
            if value is not None:
                self.out.append(f"   See: {value}\n")

    def print_service(self, x: XInst) -> None:
        if not self.first:
            self.out.append("\n")
        self.first = False
        name = x.i.common_name(x.i.current) or "?"
        self.out.append(f"{x.fmri} ({name})\n")
        if self.zone is not None:
            self.out.append(f"  Zone: {self.zone}\n")
        self.out.append(f" State: {x.state} since {long_time(x.stime)}\n")
        self.reasons(x)
        self.logs(x.i)
        self.determine_impact(x)
        impact = x.impact or []
        if not impact:
            self.out.append(
                "Impact: None.\n" if x.running else "Impact: This service is not running.\n"
            )
        elif len(impact) == 1:
            self.out.append(
                "Impact: 1 dependent service is not running:\n"
                if self.verbose
                else "Impact: 1 dependent service is not running.  (Use -v for list.)\n"
            )
        else:
            self.out.append(
                f"Impact: {len(impact)} dependent services are not running:\n"
                if self.verbose
                else f"Impact: {len(impact)} dependent services are not running.  "
                "(Use -v for list.)\n"
            )
        if self.verbose:
            for dependent in impact:
                self.out.append(f"        {dependent.fmri}\n")

    def run(self, operands: list[str]) -> int:
        self.load()
        for x in self.insts.values():
            self.determine_causes(x)
        if operands:
            walked = repo.walk(self.doc, operands)
            for msg in walked.errors:
                warn(msg)
            for match in walked.matches:
                assert match.instance is not None
                found = self.insts.get((match.service, match.instance))
                if found is not None:
                    self.print_service(found)
            return EXIT_FATAL if walked.errors else 0
        for x in self.g_causes:
            self.determine_impact(x)
        ordered = sorted(self.g_causes, key=lambda x: -len(x.impact or []))
        for x in ordered:
            self.print_service(x)
        return 0


def main(argv: list[str], state_dir: Path) -> int:
    tool = Svcs(state_dir)
    try:
        code = tool.run(argv)
    except _Exit as e:
        code = e.code
    sys.stdout.write("".join(tool.out))
    sys.stdout.flush()
    return code
