"""list and status: what the operator sees of every guest and of one.

Read-only: they ask SMF (through vmbundle.adapters.smf), the bundles and the run
directories, and change nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from vmbundle.adapters import smf
from vmbundle.errors import NoSuchGuest, VmbundleError
from vmbundle.guest import boot_record
from vmbundle.guest.boot_record import BootRecord
from vmbundle.guest.display import BASE_PORT
from vmbundle.guest.process import running_pid
from vmbundle.guest.rundir import RunPaths
from vmbundle.ops import ownership
from vmbundle.ops.lifecycle import quick_config
from vmbundle.service import state
from vmbundle.service.state import UP, Instance
from vmbundle.settings import HostSettings
from vmbundle.units import format_size
from vmbundle.vm import bundle, owner, storage
from vmbundle.vm.model import VmConfig
from vmbundle.vm.owner import Host

NOT_IMPORTED = "not-imported"
QMP_TIMEOUT = 5.0


@attrs.frozen
class Row:
    name: str
    fmri: str | None
    state: str
    next_state: str
    display: int | None
    config: VmConfig | None
    bundle: str | None
    home: str  # "" for this host's guest; else whose (vmbundle.ops.ownership.home_of)

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
            "home": self.home or None,
        }


def qemu_pid(run: RunPaths) -> int | None:
    try:
        return running_pid(run)
    except OSError:  # a run directory this user may not read
        return None


def running_record(run: RunPaths) -> BootRecord | None:
    """The boot record, only while its QEMU runs (a crash can leave one behind)."""
    record = boot_record.read(run)
    return record if record is not None and qemu_pid(run) is not None else None


def bundles_in_roots(settings: HostSettings, warn: Callable[[str], None]) -> list[Path]:
    found: list[Path] = []
    for spec in settings.bundle_roots:
        try:
            root = storage.resolve_root(spec).path
            entries = sorted(root.iterdir())
        except (VmbundleError, OSError) as exc:
            warn(f"vmbundle: bundle root {spec}: {exc}")
            continue
        found += [p for p in entries if (p / bundle.CONFIG_FILE).is_file()]
    return found


def _row(
    settings: HostSettings,
    name: str,
    fmri: str | None,
    now: tuple[str, str],
    path: str | None,
    me: Host | None,
) -> Row:
    record = running_record(RunPaths.for_guest(settings.run_dir, name))
    return Row(
        name=name,
        fmri=fmri,
        state=now[0],
        next_state=now[1],
        display=record.display if record else None,
        config=quick_config(path),
        bundle=path,
        home=ownership.home_of(Path(path), me) if path else "",
    )


def rows(settings: HostSettings, warn: Callable[[str], None]) -> list[Row]:
    """Every guest with an instance, and every bundle in the roots without one."""
    states = smf.states()
    paths = smf.bundle_paths()
    me = this_host_or_none(warn)
    out = [
        _row(settings, smf.instance_name(fmri), fmri, now, paths.get(fmri), me)
        for fmri, now in states.items()
    ]
    # A bundle is imported when an instance points at it, whatever its name: a
    # received copy beside its original shows up as not imported.
    imported = {os.path.realpath(p) for p in paths.values()}
    out += [
        _row(settings, p.name, None, (NOT_IMPORTED, "-"), str(p), me)
        for p in bundles_in_roots(settings, warn)
        if os.path.realpath(p) not in imported
    ]
    return sorted(out, key=lambda r: (r.name, r.fmri is None, r.bundle or ""))


def this_host_or_none(warn: Callable[[str], None]) -> Host | None:
    """This host, or None (and a line said) where hostid fails: the listing goes on
    without telling replicas apart."""
    try:
        return owner.this_host()
    except VmbundleError as exc:
        warn(f"vmbundle: cannot tell this host's guests from replicas: {exc}")
        return None


def run_state(run: RunPaths) -> tuple[str | None, str | None]:
    """(QMP run state, None) or (None, why QMP gave none)."""
    from vmbundle.qemu import qmp  # a socket session, only for a running guest

    try:
        return qmp.run_state(run, QMP_TIMEOUT), None
    except qmp.QmpNotAnswering:
        return None, "not answering"
    except VmbundleError as exc:
        return None, str(exc).removeprefix(f"{run.dir.name}: ")


def started(when: float) -> str:
    return datetime.fromtimestamp(when).astimezone().isoformat(sep=" ", timespec="seconds")


def _panicked(name: str, record: BootRecord | None) -> str:
    """A guest QEMU holds paused after a panic: the controller left it so."""
    why = "the guest panicked; QEMU holds it paused"
    if record is not None and record.config.on_crash == "preserve":
        why += " for inspection (on_crash=preserve)"
    return f"{why}; to boot it again: vmbundle restart {name}"


def _room(record: BootRecord | None) -> dict[str, Any] | None:
    """What the running guest has and can grow to without a restart."""
    if record is None:
        return None
    cap = record.capacity
    return {
        "vcpus": record.config.vcpus,
        "ram": record.config.ram,
        "plugged_ram": record.plugged_ram,
        "max_vcpus": cap.max_vcpus if cap else record.config.vcpus,
        "max_ram": cap.max_ram if cap else record.config.ram,
        "dimms": len(record.dimms),
        "slots": cap.slots if cap else 0,
    }


def _of_instance(settings: HostSettings, inst: Instance) -> dict[str, Any]:
    run = RunPaths.for_guest(settings.run_dir, inst.name)
    pid = qemu_pid(run)
    record = boot_record.read(run) if pid is not None else None
    now, qmp_error = run_state(run) if pid is not None else (None, None)
    settled_up = inst.state in UP and inst.next_state == "-"
    log = smf.log_file(inst.fmri) if inst.state == "maintenance" else None
    display = record.display if record else None
    return {
        "name": inst.name,
        "fmri": inst.fmri,
        "state": inst.state,
        "next_state": None if inst.next_state == "-" else inst.next_state,
        "reason": _panicked(inst.name, record)
        if now == "guest-panicked"
        else (None if settled_up else state.why(inst.fmri)),
        "qemu_pid": pid,
        "run_state": now,
        "qmp_error": qmp_error,
        "display": display,
        "vnc_port": BASE_PORT + display if display is not None else None,
        "display_auth": record.display_auth if record else None,
        "started": started(record.started) if record else None,
        "live": list(record.live) if record else [],
        "pending": list(record.pending) if record else [],
        "room": _room(record),
        "bundle": smf.get_property(inst.fmri, smf.BUNDLE_PROPERTY),
        "log": log,
        "log_tail": state.log_tail(log) if log else [],
    }


def _of_bundle(settings: HostSettings, name: str) -> dict[str, Any]:
    """A bundle in the roots that has no instance yet (just received, say)."""
    try:
        path = bundle.locate(settings, name)
    except VmbundleError:
        raise NoSuchGuest(
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
        "display_auth": None,
        "started": None,
        "live": [],
        "pending": [],
        "room": None,
        "bundle": str(path),
        "log": None,
        "log_tail": [],
    }


def status(settings: HostSettings, guest: str) -> dict[str, Any]:
    """One guest as `vmbundle status --json` shows it."""
    name = state.guest_name(guest)
    inst = state.find(name)
    return _of_instance(settings, inst) if inst else _of_bundle(settings, name)


def display_password(settings: HostSettings, guest: str) -> str:
    """The running guest's desktop display password (its vnc.password or the one made
    at its start), from the run directory: 0600, so for root alone."""
    name = state.guest_name(guest)
    run = RunPaths.for_guest(settings.run_dir, name)
    if qemu_pid(run) is None:
        raise VmbundleError(f"{name}: not running, so its display has no password now")
    try:
        return run.vnc_password.read_text()
    except FileNotFoundError:
        raise VmbundleError(
            f"{name}: its display has no password (vmbundle status {name})"
        ) from None
    except PermissionError:
        raise VmbundleError(f"{name}: only root may read its display password") from None
