"""A guest's SMF instance and its state: finding it, waiting for it to settle,
and saying why it is not where it was sent.

A guest is the instance of svc:/system/vmbundle/vm named as the guest. Only
vmbundle.adapters.smf talks to SMF; this module reads what it says.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import BinaryIO

import attrs

from vmbundle.adapters import smf
from vmbundle.errors import ToolError, UsageError, VmbundleError
from vmbundle.vm.model import NAME_PATTERN

# States in which the restarter may be running or about to run the guest's QEMU.
ACTIVE = ("online", "degraded", "offline")
UP = ("online", "degraded")
# How long a wait for a restart or a start out of maintenance lasts; svcadm -s
# itself is bounded by the methods' timeouts and the adapter's.
WAIT_SECONDS = 900.0
POLL_SECONDS = 0.1
LOG_TAIL_LINES = 10
# How svc.startd marks a start method run in the instance's log.
START_MARK = "Executing start method"


class InstanceMissing(VmbundleError):
    """The guest has no SMF instance (not imported, or forgotten)."""


class NotReached(VmbundleError):
    """The instance settled somewhere other than where it was sent."""


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

    @property
    def active(self) -> bool:
        return self.state in ACTIVE or self.next_state != "-"


def guest_name(arg: str) -> str:
    """The instance name for a GUEST argument: a guest's name, or its bundle's path."""
    name = Path(os.path.abspath(arg)).name if "/" in arg else arg
    # svcadm takes globs and abbreviations too; a strict name keeps `vmbundle stop '*'`
    # from reaching every service on the host.
    if re.fullmatch(NAME_PATTERN, name) is None:
        raise UsageError(f"{arg!r}: not a guest name (letters, digits, _ and -, first a letter)")
    return name


def find(name: str) -> Instance | None:
    fmri = smf.instance_fmri(name)
    found = smf.states().get(fmri)
    return Instance(name, fmri, *found) if found else None


def get(name: str) -> Instance:
    found = find(name)
    if found is None:
        raise InstanceMissing(f"{name}: no SMF instance; import it first: vmbundle import {name}")
    return found


def why(fmri: str) -> str | None:
    """svcs -x's reason, or None when svcs cannot say."""
    try:
        return smf.reason(smf.explain(fmri))
    except ToolError:
        return None


def not_reached(inst: Instance, goal: str) -> NotReached:
    """The error for an instance that did not get to goal: SMF's reason, then what
    the start method said about it (the method names the guest, the field and the fix)."""
    now = find(inst.name)
    state = now.shown_state if now else "gone"
    reason = (why(inst.fmri) if now else None) or "SMF gives no reason"
    lines = [
        f"{inst.name}: {state}, not {goal}: {reason.rstrip('.')} "
        f"(details: vmbundle status {inst.name})"
    ]
    if now is not None and now.state == "maintenance":
        lines += start_method_output(inst.fmri)
    return NotReached("\n".join(lines))


def tail(f: BinaryIO, limit: int = 64 * 1024) -> str:
    """The end of an open file, without reading all of a long log."""
    f.seek(0, os.SEEK_END)
    f.seek(max(0, f.tell() - limit))
    return f.read().decode(errors="replace")


def log_tail(path: str, lines: int = LOG_TAIL_LINES) -> list[str]:
    try:
        with open(path, "rb") as f:
            return tail(f).splitlines()[-lines:]
    except OSError as exc:
        return [f"(cannot read it: {exc.strerror})"]


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


def stamp(fmri: str) -> str | None:
    """The restarter's state timestamp, which changes with every state change."""
    now = smf.restarter_state(fmri)
    return now[2] if now else None


def await_online(inst: Instance, since: str | None) -> None:
    """Wait until the instance has changed state since the timestamp `since` and
    settled online (or degraded); NotReached when it settles in maintenance or disabled."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        now = smf.restarter_state(inst.fmri)
        if now is None:
            raise InstanceMissing(f"{inst.name}: its SMF instance {inst.fmri} went away")
        state, next_state, changed = now
        if changed != since and next_state == "none":
            if state in UP:
                return
            if state in ("maintenance", "disabled"):
                raise not_reached(inst, "online")
        time.sleep(POLL_SECONDS)
    raise NotReached(
        f"{inst.name}: not online after {WAIT_SECONDS:g}s; see vmbundle status {inst.name}"
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


def svcadm_to(
    inst: Instance, subcommand: str, flags: tuple[str, ...], wait: bool, goal: str
) -> None:
    """svcadm enable or disable; with wait, -s, and a guest that does not get to
    goal is reported with SMF's reason."""
    try:
        smf.svcadm(subcommand, inst.fmri, *flags, *(("-s",) if wait else ()))
    except smf.GaveUp:
        raise not_reached(inst, goal) from None
