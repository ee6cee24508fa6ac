"""Stopping a guest whose QEMU runs in the background: the stop method's steps.

ACPI power button over the control monitor, a wait of up to the guest's stop
timeout, then QMP `quit`, then SIGKILL. QEMU runs with -no-shutdown, so a guest
that has powered off leaves QEMU up in the "shutdown" state; that counts as off.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from vmbundle.adapters import qemu
from vmbundle.errors import VmbundleError
from vmbundle.guest.process import pid_alive, running_pid
from vmbundle.guest.rundir import RunPaths
from vmbundle.qemu import qmp

QUIT_WAIT = 15.0
KILL_WAIT = 15.0

Say = Callable[[str], None]


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _powered_off(run: RunPaths, pid: int) -> bool:
    if not pid_alive(pid):
        return True
    try:
        state = qmp.run_state(run)
    except VmbundleError:
        return not pid_alive(pid)
    # the illumos KVM fork reports only running or not: a stopped guest is off
    return state in ("shutdown", "stopped")


def stop(run: RunPaths, stop_timeout: int, say: Say) -> str:
    """Stop the guest's QEMU and return how it went: "not running",
    "powered off", "quit" or "killed"."""
    name = run.dir.name
    pid = running_pid(run)
    if pid is None:
        return "not running"
    with contextlib.suppress(OSError):
        run.stopping.touch()
    if not _powered_off(run, pid) and run.force_off.exists():
        say(f"{name}: forced off: quitting QEMU without asking the guest")
        outcome = "quit"
    elif not _powered_off(run, pid):
        try:
            qmp.execute(run, "system_powerdown", timeout=10.0)
            say(f"{name}: ACPI power button pressed; waiting up to {stop_timeout}s")
        except VmbundleError as exc:
            say(f"{name}: could not press the power button ({exc}); quitting QEMU")
            stop_timeout = 0
        started = time.monotonic()
        deadline = started + stop_timeout
        while time.monotonic() < deadline and not _powered_off(run, pid):
            time.sleep(0.5)
        if _powered_off(run, pid):
            say(f"{name}: the guest powered off after {time.monotonic() - started:.1f}s")
            outcome = "powered off"
        else:
            say(f"{name}: the guest did not power off within {stop_timeout}s; quitting QEMU")
            outcome = "quit"
    else:
        outcome = "powered off"
    if pid_alive(pid):
        # QEMU may close the monitor before it answers
        with contextlib.suppress(VmbundleError):
            qmp.execute(run, "quit", timeout=5.0)
    if _gone_within(pid, QUIT_WAIT):
        return outcome
    say(f"{name}: QEMU (pid {pid}) did not quit within {QUIT_WAIT:g}s; killing it")
    qemu.kill(pid)
    if not _gone_within(pid, KILL_WAIT):
        raise VmbundleError(f"{name}: QEMU (pid {pid}) survived SIGKILL for {KILL_WAIT:g}s")
    return "killed"
