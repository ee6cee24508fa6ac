"""What the controller does when a guest powers off, reboots or panics: vm.json's
on_poweroff, on_reboot and on_crash, applied to QMP events and to the run state
found when it attaches. Pure: an event in, a reaction out.

QEMU runs with -no-shutdown, so a guest that powered itself off leaves QEMU in the
`shutdown` state: disabling the instance (the default) makes the stop method
quit it, and the instance shows disabled, not restarted, not in maintenance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from vmbundle.vm.model import VmConfig

# What the controller can do about a guest.
DISABLE = "disable"  # svcadm disable -t: the stop method quits QEMU
RESTART = "restart"  # svcadm restart: a new QEMU
RESET = "reset"  # system_reset, then cont: the same QEMU boots again
PRESERVE = "preserve"  # leave it paused for inspection


@attrs.frozen
class Reaction:
    action: str
    why: str


def _poweroff(cfg: VmConfig, why: str) -> Reaction:
    return Reaction(DISABLE if cfg.on_poweroff == "disable" else RESTART, why)


def _crash(cfg: VmConfig, why: str) -> Reaction:
    action = {"restart": RESET, "disable": DISABLE, "preserve": PRESERVE}[cfg.on_crash]
    return Reaction(action, why)


def reboot_is_shutdown(cfg: VmConfig) -> bool:
    """Whether QEMU should be told (set-action reboot=shutdown) to stop a rebooting
    guest instead of resetting it, so on_reboot=disable sees it before it boots again."""
    return cfg.on_reboot == "disable"


def on_event(cfg: VmConfig, event: str, data: Mapping[str, Any]) -> Reaction | None:
    """The reaction to one QMP event, None for events that ask for none."""
    by_guest = data.get("guest") is True
    if event == "SHUTDOWN" and by_guest:
        cause = data.get("reason")
        if cause == "guest-reset":
            return Reaction(DISABLE, "the guest rebooted (on_reboot=disable)")
        if cause == "guest-panic":
            return _crash(cfg, f"the guest panicked (on_crash={cfg.on_crash})")
        return _poweroff(cfg, f"the guest powered itself off (on_poweroff={cfg.on_poweroff})")
    if event == "RESET" and by_guest and cfg.on_reboot == "disable":
        # A QEMU without set-action resets before anyone can stop it.
        return Reaction(DISABLE, "the guest rebooted (on_reboot=disable)")
    if event == "GUEST_PANICKED":
        return _crash(cfg, f"the guest panicked (on_crash={cfg.on_crash})")
    # A SHUTDOWN the host asked for (quit, a signal) is the stop method's or SMF's.
    return None


def on_status(cfg: VmConfig, status: str) -> Reaction | None:
    """The reaction to a run state found on attaching: what happened while the
    controller was not looking is settled as if it had seen the event."""
    if status == "shutdown":
        return _poweroff(cfg, f"found powered off (on_poweroff={cfg.on_poweroff})")
    if status == "guest-panicked":
        return _crash(cfg, f"found panicked (on_crash={cfg.on_crash})")
    return None
