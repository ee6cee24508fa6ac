"""The start method's own path: the bundle its instance names, checked, booted
(vmbundle.guest.boot), and success only once QMP reports the guest running. QEMU
stays behind in the service's contract. With the controller running, the quick
path (vmbundle.method.quick) comes first."""

from __future__ import annotations

from collections.abc import Callable

from vmbundle.adapters import smf
from vmbundle.guest import boot
from vmbundle.service import instance
from vmbundle.settings import HostSettings
from vmbundle.vm import bundle


def start(
    fmri: str, bundle_value: str | None, host_settings: HostSettings, say: Callable[[str], None]
) -> int:
    name = smf.instance_name(fmri)
    path = instance.bundle_path(fmri, name, bundle_value)
    booted, _kept = boot.boot(host_settings, bundle.load(path, host_settings), say, fmri=fmri)
    display = booted.prepared.display
    where = f"VNC display :{display}" if display is not None else "no VNC display"
    say(f"{name}: running, QEMU pid {booted.proc.pid}, {where}")
    return 0
