"""import, forget, start, stop, restart: a guest as an SMF instance.

A guest is the instance of svc:/system/vmbundle/vm named as the guest, whose
config/bundle names its bundle. These commands only ask SMF (through
vmbundle.adapters.smf) and read bundles and run directories; the methods do the
work, so a guest started here is the same as one started with svcadm.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import BinaryIO

import attrs

from vmbundle.adapters import smf
from vmbundle.cli.common import host_config
from vmbundle.errors import ConfigError, ToolError, UsageError, VmbundleError
from vmbundle.vm import bundle, codec
from vmbundle.vm.bundle import Bundle
from vmbundle.vm.model import NAME_PATTERN, VmConfig

# States in which the restarter may be running or about to run the guest's QEMU.
ACTIVE = ("online", "degraded", "offline")
UP = ("online", "degraded")
# How long --wait waits for a restart or a start out of maintenance; svcadm -s
# itself is bounded by the methods' timeouts and the adapter's.
WAIT_SECONDS = 900.0
POLL_SECONDS = 0.1
# svcadm -s gave up: 3 for the instance itself (maintenance, disabled by
# someone else), 4 for its dependencies (svcadm(8)).
SVCADM_GAVE_UP = (3, 4)
LOG_TAIL_LINES = 10
QMP_TIMEOUT = 5.0
NOT_IMPORTED = "not-imported"
# How svc.startd marks a start method run in the instance's log.
START_MARK = "Executing start method"


@attrs.frozen
class Instance:
    name: str
    fmri: str
    state: str
    next_state: str
    """The state it is moving to, or "-" as svcs prints it when it is not moving."""

    @property
    def shown_state(self) -> str:
        # svcs marks a transition with "*" when the NSTATE column is not shown.
        return self.state + ("*" if self.next_state != "-" else "")


# --- finding the instance ----------------------------------------------------------------


def guest_name(arg: str) -> str:
    """The instance name for a GUEST argument: a guest's name, or its bundle's path."""
    name = Path(os.path.abspath(arg)).name if "/" in arg else arg
    # svcadm takes globs and abbreviations too; a strict name keeps `vmbundle stop '*'`
    # from reaching every service on the host.
    if re.fullmatch(NAME_PATTERN, name) is None:
        raise UsageError(f"{arg!r}: not a guest name (letters, digits, _ and -, first a letter)")
    return name


def find_instance(name: str) -> Instance | None:
    fmri = smf.instance_fmri(name)
    found = smf.states().get(fmri)
    return Instance(name, fmri, *found) if found else None


def instance(name: str) -> Instance:
    found = find_instance(name)
    if found is None:
        raise VmbundleError(f"{name}: no SMF instance; import it first: vmbundle import {name}")
    return found


def why(fmri: str) -> str | None:
    """svcs -x's reason, or None when svcs cannot say."""
    try:
        return smf.reason(smf.explain(fmri))
    except ToolError:
        return None


def not_reached(inst: Instance, goal: str) -> VmbundleError:
    """The error for an instance that did not get to goal: SMF's reason, then what
    the start method said about it (the method names the guest, the field and the fix)."""
    now = find_instance(inst.name)
    state = now.shown_state if now else "gone"
    reason = (why(inst.fmri) if now else None) or "SMF gives no reason"
    lines = [
        f"{inst.name}: {state}, not {goal}: {reason.rstrip('.')} "
        f"(details: vmbundle status {inst.name})"
    ]
    if now is not None and now.state == "maintenance":
        lines += start_method_output(inst.fmri)
    return VmbundleError("\n".join(lines))


def tail(f: BinaryIO, limit: int = 64 * 1024) -> str:
    """The end of an open file, without reading all of a long log."""
    f.seek(0, os.SEEK_END)
    f.seek(max(0, f.tell() - limit))
    return f.read().decode(errors="replace")


def start_method_output(fmri: str) -> list[str]:
    """What the last start method printed, from the instance's log (svc.startd's
    own lines there are bracketed); nothing when the log cannot be read."""
    try:
        with open(smf.log_file(fmri), "rb") as f:
            lines = tail(f).splitlines()
    except (ToolError, OSError):
        return []
    starts = [i for i, line in enumerate(lines) if line.startswith("[ ") and START_MARK in line]
    after = lines[starts[-1] + 1 :] if starts else []
    return [line for line in after if line and not line.startswith("[ ")][-LOG_TAIL_LINES:]


def await_online(inst: Instance, since: str | None) -> None:
    """Wait until the instance has changed state since the timestamp `since` and
    settled online (or degraded); fail when it settles in maintenance or disabled."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        now = smf.restarter_state(inst.fmri)
        if now is None:
            raise VmbundleError(f"{inst.name}: its SMF instance {inst.fmri} went away")
        state, next_state, stamp = now
        if stamp != since and next_state == "none":
            if state in UP:
                return
            if state in ("maintenance", "disabled"):
                raise not_reached(inst, "online")
        time.sleep(POLL_SECONDS)
    raise VmbundleError(
        f"{inst.name}: not online after {WAIT_SECONDS:g}s; see vmbundle status {inst.name}"
    )


def state_stamp(fmri: str) -> str | None:
    now = smf.restarter_state(fmri)
    return now[2] if now else None


# --- the bundle behind an instance ------------------------------------------------------


def quick_config(path: str | Path | None) -> VmConfig | None:
    """vm.json read without the slow checks of its disks; None when unreadable or invalid."""
    if not path:
        return None
    try:
        return codec.structure(bundle.read_document(Path(path)))
    except (ConfigError, codec.ConfigProblems):
        return None


def autostart(fmri: str) -> bool:
    """The guest's autostart; False when vm.json cannot be read (the start method
    reports that problem into SMF, and a temporary enable is the safe guess)."""
    try:
        path = smf.get_property(fmri, smf.BUNDLE_PROPERTY)
    except ToolError:
        return False
    cfg = quick_config(path)
    return cfg is not None and cfg.autostart


# --- import and forget -------------------------------------------------------------------


def refuse_imported(name: str) -> None:
    """Refuse a name that already has an instance, naming the bundle it points at."""
    found = find_instance(name)
    if found is None:
        return
    where = smf.get_property(found.fmri, smf.BUNDLE_PROPERTY) or "no bundle set"
    raise VmbundleError(
        f"{name}: already imported as {found.fmri} ({where}); "
        f"to import another bundle under this name, forget it first: vmbundle forget {name}"
    )


def settled_state(fmri: str, timeout: float = 5.0) -> str:
    """The state of a new instance once the restarter has taken it in."""
    deadline = time.monotonic() + timeout
    while True:
        now = smf.restarter_state(fmri)
        if now is not None and now[1] == "none":
            return now[0]
        if time.monotonic() > deadline:
            return now[0] if now else "uninitialized"
        time.sleep(POLL_SECONDS)


def add_instance(b: Bundle) -> dict[str, str]:
    """Make the disabled instance of a checked bundle; refuse_imported came first."""
    fmri = smf.instance_fmri(b.name)
    try:
        smf.add_instance(b.name, str(b.path))
    except ToolError as exc:
        # svccfg stops at the first failing line, which may leave a half-made
        # instance; never remove one someone else made in the meantime.
        if "already exists" not in exc.stderr and find_instance(b.name) is not None:
            smf.delete_instance(fmri)
        if "doesn't match any" in exc.stderr:
            raise VmbundleError(
                f"{b.name}: cannot make {fmri}: the service {smf.VM_SERVICE} is not installed; "
                "install it: vmbundle smf install"
            ) from None
        raise VmbundleError(f"{b.name}: cannot make {fmri}: {exc}") from None
    return {"name": b.name, "fmri": fmri, "bundle": str(b.path), "state": settled_state(fmri)}


def report_import(made: dict[str, str], as_json: bool) -> None:
    if as_json:
        print(json.dumps(made))
        return
    name = made["name"]
    print(
        f"{name}: imported as {made['fmri']} ({made['state']}); start it with vmbundle start {name}"
    )


def cmd_import(args: argparse.Namespace) -> int:
    host = host_config(args)
    path = bundle.locate(host, args.guest)
    refuse_imported(path.name)
    # Fully checked (disks too): a bad bundle never becomes an instance.
    report_import(add_instance(bundle.load(path, host)), args.json)
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    inst = instance(guest_name(args.guest))
    if inst.state in ACTIVE or inst.next_state != "-":
        raise VmbundleError(
            f"{inst.name}: {inst.shown_state}; stop it first: vmbundle stop {inst.name} --wait"
        )
    path = smf.get_property(inst.fmri, smf.BUNDLE_PROPERTY)
    smf.delete_instance(inst.fmri)
    kept = f"its bundle stays at {path}" if path else "it named no bundle"
    print(f"{inst.name}: {inst.fmri} deleted; {kept}; vmbundle import brings it back")
    return 0


# --- start, stop, restart ----------------------------------------------------------------


def cmd_start(args: argparse.Namespace) -> int:
    inst = instance(guest_name(args.guest))
    persistent = autostart(inst.fmri)
    # Without autostart the enable is temporary, so the guest stays off after a reboot.
    flags = () if persistent else ("-t",)
    if inst.state == "maintenance":
        # The operator asked for the guest to run; clearing is what they would do
        # next by hand, and the start method reports again if the cause remains.
        since = state_stamp(inst.fmri)
        smf.svcadm("enable", inst.fmri, *flags)
        smf.svcadm("clear", inst.fmri)
        print(f"{inst.name}: was in maintenance; cleared it", file=sys.stderr)
        if args.wait:
            await_online(inst, since)
    else:
        svcadm_to(inst, "enable", flags, args.wait, "online")
    until = "" if persistent else " (until the host reboots: autostart is false)"
    if args.wait:
        print(f"{inst.name}: online{until}")
    else:
        print(f"{inst.name}: starting{until}; vmbundle status {inst.name} shows when it is online")
    return 0


def svcadm_to(
    inst: Instance, subcommand: str, flags: tuple[str, ...], wait: bool, goal: str
) -> None:
    """svcadm enable or disable; with wait, -s, and a guest that does not get
    to goal (svcadm exits 3 or 4) is reported with SMF's reason."""
    try:
        smf.svcadm(subcommand, inst.fmri, *flags, *(("-s",) if wait else ()))
    except ToolError as exc:
        if wait and exc.returncode in SVCADM_GAVE_UP:
            raise not_reached(inst, goal) from None
        raise


def cmd_stop(args: argparse.Namespace) -> int:
    inst = instance(guest_name(args.guest))
    # Temporary: a guest with autostart still comes back when the host boots.
    svcadm_to(inst, "disable", ("-t",), args.wait, "disabled")
    if args.wait or (inst.state, inst.next_state) == ("disabled", "-"):
        print(f"{inst.name}: disabled")
    else:
        print(f"{inst.name}: stopping; vmbundle status {inst.name} shows when it is disabled")
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    inst = instance(guest_name(args.guest))
    if inst.state not in UP:
        # svc.startd ignores a restart of an instance that is not running.
        raise VmbundleError(
            f"{inst.name}: {inst.shown_state}, not running; start it: vmbundle start {inst.name}"
        )
    since = state_stamp(inst.fmri)
    smf.svcadm("restart", inst.fmri)
    if args.wait:
        await_online(inst, since)
        print(f"{inst.name}: online again")
    else:
        print(f"{inst.name}: restarting")
    return 0
