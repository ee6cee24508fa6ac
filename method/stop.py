"""The stop method: ACPI power-off, then quit, then SIGKILL; then the display,
the run directory and the guest's memory go back, and the owner record is released.
It needs nothing from vm.json, so a guest whose vm.json broke while it ran still stops."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vmbundle import settings
from vmbundle.adapters import smf
from vmbundle.guest import boot_record, prepare, shutdown
from vmbundle.guest.rundir import RunPaths
from vmbundle.memory import admission
from vmbundle.vm import owner

# vm.json's default, for a run directory that lost its boot record.
DEFAULT_STOP_TIMEOUT = 120


def stop(fmri: str, say: Callable[[str], None]) -> int:
    name = smf.instance_name(fmri)
    host_settings = settings.load(None)
    run = RunPaths.for_guest(host_settings.run_dir, name)
    record = boot_record.read(run)
    timeout = record.config.stop_timeout if record is not None else DEFAULT_STOP_TIMEOUT
    outcome = shutdown.stop(run, timeout, say)
    if outcome == "not running":
        say(f"{name}: QEMU is not running")
    prepare.finish(name, run, host_settings)
    admission.release(host_settings, name, say)
    if record is not None:
        owner.release_or_say(host_settings.run_dir, Path(record.bundle), name, say)
    return 0
