"""list and status: what the operator sees of every guest and of one.

Read-only: they ask SMF (through vmbundle.adapters.smf), the bundles and the run
directories, and change nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from vmbundle.adapters import smf
from vmbundle.cli.common import host_config
from vmbundle.cli.service import (
    LOG_TAIL_LINES,
    NOT_IMPORTED,
    QMP_TIMEOUT,
    UP,
    Instance,
    find_instance,
    guest_name,
    quick_config,
    tail,
    why,
)
from vmbundle.errors import VmbundleError
from vmbundle.guest import boot_record
from vmbundle.guest.boot_record import BootRecord
from vmbundle.guest.display import BASE_PORT
from vmbundle.guest.process import running_pid
from vmbundle.guest.rundir import RunPaths
from vmbundle.settings import HostSettings
from vmbundle.units import format_size
from vmbundle.vm import bundle, storage
from vmbundle.vm.model import VmConfig

# --- list --------------------------------------------------------------------------------


@attrs.frozen
class Row:
    name: str
    fmri: str | None
    state: str
    next_state: str
    display: int | None
    config: VmConfig | None
    bundle: str | None

    def cells(self) -> list[str]:
        return [
            self.name,
            self.state + ("*" if self.next_state != "-" else ""),
            f":{self.display}" if self.display is not None else "-",
            format_size(self.config.ram) if self.config else "?",
            str(self.config.vcpus) if self.config else "?",
            self.bundle or "-",
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fmri": self.fmri,
            "state": self.state,
            "next_state": None if self.next_state == "-" else self.next_state,
            "display": self.display,
            "vnc_port": BASE_PORT + self.display if self.display is not None else None,
            "ram": format_size(self.config.ram) if self.config else None,
            "vcpus": self.config.vcpus if self.config else None,
            "bundle": self.bundle,
        }


HEADERS = ("NAME", "STATE", "DISPLAY", "RAM", "VCPUS", "BUNDLE")
RIGHT_ALIGNED = frozenset({"RAM", "VCPUS"})


def qemu_pid(run: RunPaths) -> int | None:
    try:
        return running_pid(run)
    except OSError:  # a run directory this user may not read
        return None


def running_record(run: RunPaths) -> BootRecord | None:
    """The boot record, only while its QEMU runs (a crash can leave one behind)."""
    record = boot_record.read(run)
    return record if record is not None and qemu_pid(run) is not None else None


def bundles_in_roots(host: HostSettings) -> list[Path]:
    found: list[Path] = []
    for spec in host.bundle_roots:
        try:
            root = storage.resolve_root(spec).path
            entries = sorted(root.iterdir())
        except (VmbundleError, OSError) as exc:
            print(f"vmbundle: bundle root {spec}: {exc}", file=sys.stderr)
            continue
        found += [p for p in entries if (p / bundle.CONFIG_FILE).is_file()]
    return found


def make_row(
    host: HostSettings, name: str, fmri: str | None, state: tuple[str, str], path: str | None
) -> Row:
    record = running_record(RunPaths.for_guest(host.run_dir, name))
    return Row(
        name=name,
        fmri=fmri,
        state=state[0],
        next_state=state[1],
        display=record.display if record else None,
        config=quick_config(path),
        bundle=path,
    )


def rows(host: HostSettings) -> list[Row]:
    states = smf.states()
    paths = smf.bundle_paths()
    out = [
        make_row(host, smf.instance_name(fmri), fmri, state, paths.get(fmri))
        for fmri, state in states.items()
    ]
    # A bundle is imported when an instance points at it, whatever its name: a
    # received copy beside its original shows up as not imported.
    imported = {os.path.realpath(p) for p in paths.values()}
    out += [
        make_row(host, p.name, None, (NOT_IMPORTED, "-"), str(p))
        for p in bundles_in_roots(host)
        if os.path.realpath(p) not in imported
    ]
    return sorted(out, key=lambda r: (r.name, r.fmri is None, r.bundle or ""))


def table(lines: list[list[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart, no trailing blanks."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADERS))]
    out = []
    for line in lines:
        cells = [
            cell.rjust(w) if head in RIGHT_ALIGNED else cell.ljust(w)
            for cell, w, head in zip(line, widths, HEADERS, strict=True)
        ]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def cmd_list(args: argparse.Namespace) -> int:
    found = rows(host_config(args))
    if args.json:
        print(json.dumps([r.to_json() for r in found], indent=2))
    else:
        print(table([list(HEADERS), *(r.cells() for r in found)]))
    return 0


# --- status ------------------------------------------------------------------------------


def run_state(run: RunPaths) -> tuple[str | None, str | None]:
    """(QMP run state, None) or (None, why QMP gave none)."""
    from vmbundle.qemu import qmp  # a socket session, only for a running guest

    try:
        return qmp.run_state(run, QMP_TIMEOUT), None
    except VmbundleError as exc:
        text = str(exc).removeprefix(f"{run.dir.name}: ")
        return None, "not answering" if "did not answer" in text else text


def log_tail(path: str, lines: int = LOG_TAIL_LINES) -> list[str]:
    try:
        with open(path, "rb") as f:
            return tail(f).splitlines()[-lines:]
    except OSError as exc:
        return [f"(cannot read it: {exc.strerror})"]


def started(when: float) -> str:
    return datetime.fromtimestamp(when).astimezone().isoformat(sep=" ", timespec="seconds")


def status_of_instance(host: HostSettings, inst: Instance) -> dict[str, Any]:
    run = RunPaths.for_guest(host.run_dir, inst.name)
    pid = qemu_pid(run)
    record = boot_record.read(run) if pid is not None else None
    state, qmp_error = run_state(run) if pid is not None else (None, None)
    settled_up = inst.state in UP and inst.next_state == "-"
    log = smf.log_file(inst.fmri) if inst.state == "maintenance" else None
    display = record.display if record else None
    return {
        "name": inst.name,
        "fmri": inst.fmri,
        "state": inst.state,
        "next_state": None if inst.next_state == "-" else inst.next_state,
        "reason": None if settled_up else why(inst.fmri),
        "qemu_pid": pid,
        "run_state": state,
        "qmp_error": qmp_error,
        "display": display,
        "vnc_port": BASE_PORT + display if display is not None else None,
        "started": started(record.started) if record else None,
        "pending": list(record.pending) if record else [],
        "bundle": smf.get_property(inst.fmri, smf.BUNDLE_PROPERTY),
        "log": log,
        "log_tail": log_tail(log) if log else [],
    }


def status_of_bundle(host: HostSettings, name: str) -> dict[str, Any]:
    """A bundle in the roots that has no instance yet (just received, say)."""
    try:
        path = bundle.locate(host, name)
    except VmbundleError:
        raise VmbundleError(
            f"{name}: no such guest: no SMF instance, and no bundle of that name in the "
            "bundle roots"
        ) from None
    return {
        "name": name,
        "fmri": None,
        "state": NOT_IMPORTED,
        "next_state": None,
        "reason": f"no SMF instance; import it: vmbundle import {name}",
        "qemu_pid": None,
        "run_state": None,
        "qmp_error": None,
        "display": None,
        "vnc_port": None,
        "started": None,
        "pending": [],
        "bundle": str(path),
        "log": None,
        "log_tail": [],
    }


def status_lines(s: dict[str, Any]) -> list[str]:
    def line(label: str, value: object) -> str:
        return f"{label:<10} {value}"

    state = s["state"] + (f" -> {s['next_state']}" if s["next_state"] else "")
    out = [line("name", s["name"]), line("fmri", s["fmri"] or "-"), line("state", state)]
    if s["reason"]:
        out.append(line("reason", s["reason"]))
    if s["qemu_pid"] is not None:
        qmp = s["run_state"] or s["qmp_error"]
        out.append(line("qemu", f"pid {s['qemu_pid']}, QMP: {qmp}"))
    elif s["fmri"]:
        out.append(line("qemu", "not running"))
    if s["display"] is not None:
        out.append(line("display", f":{s['display']} (VNC port {s['vnc_port']})"))
    if s["started"]:
        out.append(line("started", s["started"]))
    for i, change in enumerate(s["pending"]):
        out.append(line("pending" if i == 0 else "", change))
    out.append(line("bundle", s["bundle"] or "-"))
    if s["log"]:
        out.append(line("log", s["log"]))
        out += [f"  {text}" for text in s["log_tail"]]
    return out


def cmd_status(args: argparse.Namespace) -> int:
    host = host_config(args)
    name = guest_name(args.guest)
    inst = find_instance(name)
    s = status_of_instance(host, inst) if inst else status_of_bundle(host, name)
    if args.json:
        print(json.dumps(s, indent=2))
    else:
        print("\n".join(status_lines(s)))
    return 0
