"""run: boot a guest in the foreground with the start method's boot sequence,
until the guest powers off (or the process is told to stop)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable

from vmbundle.errors import VmbundleError
from vmbundle.guest import boot
from vmbundle.guest.boot import Booted
from vmbundle.ops import inspect
from vmbundle.qemu import qmp
from vmbundle.settings import HostSettings

Say = Callable[[str], None]


def _wait_powered_off(booted: Booted, say: Say) -> int:
    # QEMU runs with -no-shutdown, so a guest that powers itself off leaves QEMU
    # up in the "shutdown" state; in the foreground that means the run is over.
    proc, run = booted.proc, booted.prepared.run
    while True:
        try:
            return proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        try:
            now = qmp.run_state(run)
        except VmbundleError:
            continue  # QEMU is going away, or another client holds the monitor a moment
        if now == "shutdown":
            say(f"{booted.prepared.bundle.name}: the guest powered off")
            with contextlib.suppress(VmbundleError):
                qmp.execute(run, "quit", timeout=5.0)
            return proc.wait(timeout=30)


def run_foreground(settings: HostSettings, guest: str, say: Say) -> int:
    """Boot the guest, say where it is, wait until it powers off, give everything
    back; QEMU's exit status."""
    b = inspect.load(settings, guest)
    booted, undo = boot.boot(settings, b, say)
    with undo:
        prepared = booted.prepared
        where = (
            f"VNC display :{prepared.display} ({settings.vnc_listen}:{5900 + prepared.display})"
            if prepared.display is not None
            else "no VNC display"
        )
        say(
            f"{b.name}: running, QEMU pid {booted.proc.pid}, {where}, "
            f"serial console {prepared.run.serial}"
        )
        return _wait_powered_off(booted, say)
