"""svcs(1) -l and -L, and the process lists of -p (svcs.c print_detailed,
print_log, add_processes). Imported only when one of those options is used, so that
a plain listing stays cheap to start."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from devhost.smf.repository import Doc
from devhost.smf.svcs_common import Inst, Run, long_time, parse_time, type_is
from devhost.smf.svcs_deps import dependency_groups, fmri_state

if TYPE_CHECKING:
    from _typeshed import StrPath


def instance_pids(state_dir: StrPath, i: Inst) -> list[int]:
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
        pids.extend(contracts.processes(Path(state_dir), ctid))
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


def detailed(
    svcs: Run, doc: Doc, operands: list[str], processes: bool, verbose: bool, zone: str | None
) -> int:
    """-l: a paragraph of label/value lines per instance."""
    first = True

    def paragraph(i: Inst) -> None:
        nonlocal first
        if not first:
            svcs.out.append("\n")
        first = False
        svcs.out.append(detail(svcs.state_dir, doc, i, processes, verbose, zone))

    svcs.walk_instances(doc, operands, paragraph)
    return svcs.exit_status


def detail(
    state_dir: StrPath, doc: Doc, i: Inst, processes: bool, verbose: bool, zone: str | None
) -> str:
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
        stamp = None if stamp_text is None else parse_time(stamp_text)
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
        for pid in sorted(instance_pids(state_dir, i)):
            info = proc_info(pid)
            lines.append(f"{'process':<13}{pid}" + ("" if info is None else f" {info[2]}"))
            lines.append("\n")
    if verbose:
        lines.append(application_properties(i))
    return "".join(lines)


def logs(svcs: Run, doc: Doc, operands: list[str]) -> int:
    """-L: the log file of each instance."""

    def log(i: Inst) -> None:
        if "restarter" in i.direct:
            path = i.value(i.direct, "restarter", "logfile", "astring")
            if path is not None:
                svcs.out.append(path + "\n")

    svcs.walk_instances(doc, operands, log)
    return svcs.exit_status


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
