"""A running guest's RAM and device state in a file of its bundle, for `vmbundle
snapshot --memory`: QEMU migrates the guest into the file, so one ZFS snapshot then
holds the disks, vm.json and the memory of one instant; the next start of a bundle
that has the file (a rollback to such a snapshot) resumes the guest from it.

The file reaches QEMU as a descriptor (QMP getfd, then `migrate fd:NAME`; at start,
`-incoming fd:N`), never as a path or a command: no shell sees the bundle's path.
Migration runs live; QEMU stops the guest only for the last round, flushes the
disks, and leaves it stopped ("postmigrate") until the caller has taken the snapshot
and says `cont`.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from vmbundle.errors import VmbundleError
from vmbundle.guest.rundir import RunPaths
from vmbundle.qemu import qmp

STATE_FILE = "memory.vmstate"
FD_NAME = "vmbundle-memory"
# QEMU's default of 32 MiB/s would take a minute over 2 GiB of RAM: the file is local.
BANDWIDTH = 8 << 30
SAVE_SECONDS = 600.0


class SaveFailed(VmbundleError):
    """QEMU could not write the guest's memory to the file."""


def state_path(bundle_path: Path) -> Path:
    return bundle_path / STATE_FILE


def save(run: RunPaths, bundle_path: Path) -> float:
    """Write the running guest's state into the bundle; it is stopped when this
    returns. The seconds QEMU had it stopped for the last round (its downtime)."""
    path = state_path(bundle_path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        status = qmp.with_control(run, lambda s: _migrate(s, fd), timeout=SAVE_SECONDS)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    if status.get("status") != "completed":
        path.unlink(missing_ok=True)
        why = status.get("error-desc") or status.get("status")
        raise SaveFailed(f"{run.dir.name}: QEMU could not save the guest's memory: {why}")
    _durable(path)
    return float(status.get("downtime", 0)) / 1000


def _migrate(session: qmp.Session, fd: int) -> dict[str, Any]:
    session.execute("getfd", {"fdname": FD_NAME}, fd=fd)
    try:
        session.execute("migrate-set-parameters", {"max-bandwidth": BANDWIDTH})
    except qmp.QmpError:
        session.execute("migrate_set_speed", {"value": BANDWIDTH})  # QEMU before 2.8
    session.execute("migrate", {"uri": f"fd:{FD_NAME}"})
    while True:
        status: dict[str, Any] = session.execute("query-migrate")
        if status.get("status") in ("completed", "failed", "cancelled"):
            return status
        time.sleep(0.02)


def _durable(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_for_resume(bundle_path: Path) -> int | None:
    """A descriptor of the saved state for `-incoming fd:N` (QEMU gets it through
    pass_fds), or None when the bundle has none."""
    try:
        return os.open(state_path(bundle_path), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None


def discard(bundle_path: Path) -> None:
    """Once the guest runs from it: the next start boots afresh."""
    with contextlib.suppress(FileNotFoundError):
        state_path(bundle_path).unlink()
