"""A start the controller prepares and the start method runs (design.md, "Boot
storm"). The controller has every module imported, this host's identity known
and the ledger at hand, so for the method's pid it does what
vmbundle.guest.boot.take does (the owner check, memory admission, the run
directory, display and argv, the owner record) and answers with the argv, the
boot record to write once QEMU runs, and the lines for the log. The method then
only execs QEMU and waits for QMP (vmbundle.method.quick).

What only the method's own path does is answered NotHandedOff, and the method
then boots the guest itself: resuming a memory snapshot (QEMU inherits the
state's descriptor), the 0.14 fork's display password (set over QMP once QEMU
runs) and boot_once (forgotten in vm.json once the guest runs).
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from typing import Any

from vmbundle import settings as settings_file
from vmbundle.errors import VmbundleError
from vmbundle.guest import boot, memory_state, running
from vmbundle.memory.arc import ArcBackend
from vmbundle.service import instance
from vmbundle.settings import HostSettings
from vmbundle.vm import bundle


class NotHandedOff(VmbundleError):
    """This start is the method's own to do; the line says why."""


def plan(
    settings: HostSettings,
    name: str,
    fmri: str,
    bundle_value: str | None,
    pid: int,
    arc_view: ArcBackend | None,
) -> dict[str, Any]:
    """Take what guest name's start needs, held for process pid; the answer the
    method runs it by. Raises as the start method would (the same lines and
    exit codes), or NotHandedOff with nothing taken. arc_view: the controller's
    shared view of the ARC (vmbundle.memory.arc_view)."""
    # Each start reads the host configuration, as the method's own path does: an
    # administrator's edit since the controller started counts from the next start.
    settings = settings_file.load(settings.source)
    path = instance.bundle_path(fmri, name, bundle_value)
    b = bundle.load(path, settings)
    if memory_state.state_path(b.path).exists():
        raise NotHandedOff(f"{name}: it resumes from a memory snapshot")
    if b.config.boot_once is not None:
        raise NotHandedOff(f"{name}: boot_once is set")
    lines: list[str] = []
    with ExitStack() as undo:
        until = time.monotonic() + running.BOOT_SECONDS
        prepared = boot.take(
            settings, b, lines.append, undo, until=until, owner_pid=pid, arc_view=arc_view
        )
        if boot.needs_password_over_qmp(prepared):
            raise NotHandedOff(f"{name}: the 0.14 fork takes its display password over QMP")
        warning = boot.display_warning(settings, prepared)
        record = boot.record_of(prepared, fmri, qemu_pid=0, started=0.0)
        undo.pop_all()
    return {
        "argv": list(prepared.argv),
        "run": str(prepared.run.dir),
        "display": prepared.display,
        "record": record.to_json().decode(),
        "lines": [*lines, *([warning] if warning else [])],
    }
