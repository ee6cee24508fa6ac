"""Whether a guest's QEMU is running, asked of the pid file QEMU itself locks.

QEMU takes a write lock on its -pidfile for as long as it lives (lockf), so a
lock test cannot be fooled by a stale file or a recycled pid.
"""

from __future__ import annotations

import errno
import fcntl
import os

from vmbundle.guest.rundir import RunPaths


def running_pid(run: RunPaths) -> int | None:
    """QEMU's pid when the guest's QEMU is alive, else None."""
    try:
        fd = os.open(run.pidfile, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            text = os.read(fd, 32).decode(errors="replace").strip()
            return int(text) if text.isdigit() else None
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
