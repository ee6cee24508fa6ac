"""The refresh method: live changes through QMP, the rest recorded as pending.
svc.startd keeps the instance's state whatever this exits with."""

from __future__ import annotations

from collections.abc import Callable

from vmbundle import settings
from vmbundle.adapters import smf
from vmbundle.guest import boot_record
from vmbundle.guest import refresh as refreshing
from vmbundle.guest.process import running_pid
from vmbundle.guest.rundir import RunPaths
from vmbundle.service import instance
from vmbundle.vm import bundle


def refresh(fmri: str, bundle_read: smf.PropertyRead, say: Callable[[str], None]) -> int:
    name = smf.instance_name(fmri)
    host_settings = settings.load(None)
    run = RunPaths.for_guest(host_settings.run_dir, name)
    record = boot_record.read(run)
    if record is None or running_pid(run) is None:
        bundle_read.value()
        say(f"{name}: not running; the new configuration applies at the next start")
        return 0
    path = instance.bundle_path(fmri, name, bundle_read.value())
    refreshing.refresh(
        host_settings, run, record, path, lambda p: bundle.load(p, host_settings).config, say
    )
    return 0
