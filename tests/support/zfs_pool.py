"""A throwaway zfs-fuse pool on a sparse file, for tests that need real ZFS.

The zfs-fuse daemon is shared by every test run on the host (other checkouts
too), so it is started only when none answers, and stopped only by the run that
started it, by its pid, once no pool at all is left.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs


@attrs.frozen
class Pool:
    name: str
    mountpoint: Path


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def _daemon_answers() -> bool:
    try:
        return _run("zpool", "list", "-H", "-o", "name").returncode == 0
    except FileNotFoundError:
        return False


def _start_daemon(pidfile: Path) -> int:
    """Start zfs-fuse (it daemonizes itself) and wait until it answers; its pid."""
    errors = pidfile.with_suffix(".err")
    with open(errors, "w") as err:
        # No pipes: the daemon would hold them open and a captured run would never end.
        started = subprocess.run(
            ["zfs-fuse", "--pidfile", str(pidfile), "--no-kstat-mount"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, timeout=60,
            check=False,
        )  # fmt: skip
    message = errors.read_text().strip()
    errors.unlink()
    if started.returncode != 0:
        raise RuntimeError(f"zfs-fuse did not start: {message}")
    deadline = time.monotonic() + 20
    while not _daemon_answers():
        if time.monotonic() > deadline:
            if pidfile.exists():
                _stop_daemon(int(pidfile.read_text().strip()))
            raise RuntimeError("zfs-fuse started but zpool list does not answer")
        time.sleep(0.2)
    return int(pidfile.read_text().strip())


def _stop_daemon(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise RuntimeError(f"zfs-fuse (pid {pid}) did not stop")


def _destroy_pool(name: str) -> None:
    # Like `zfs destroy`, `zpool destroy` can find a just-written dataset busy.
    for _ in range(10):
        done = _run("zpool", "destroy", name)
        if done.returncode == 0 or "no such pool" in done.stderr:
            return
        time.sleep(0.5)
    done = _run("zpool", "destroy", "-f", name)
    if done.returncode != 0:
        raise RuntimeError(f"cannot destroy test pool {name}: {done.stderr.strip()}")


@contextmanager
def zfs_pool(tmp_dir: Path, size: str = "512M") -> Iterator[Pool]:
    """A fresh, uniquely named pool mounted at tmp_dir/mnt; gone again at exit."""
    started_pid = None
    pidfile = tmp_dir / "zfs-fuse.pid"
    if not _daemon_answers():
        started_pid = _start_daemon(pidfile)
    name = f"vmbt{secrets.token_hex(4)}"
    vdev = tmp_dir / f"{name}.img"
    mountpoint = tmp_dir / "mnt"
    try:
        with open(vdev, "wb") as f:
            f.truncate(_bytes(size))
        made = _run("zpool", "create", "-m", str(mountpoint), name, str(vdev))
        if made.returncode != 0:
            raise RuntimeError(f"zpool create {name}: {made.stderr.strip()}")
        try:
            yield Pool(name, mountpoint)
        finally:
            _destroy_pool(name)
    finally:
        vdev.unlink(missing_ok=True)
        if started_pid is not None:
            left = _run("zpool", "list", "-H", "-o", "name").stdout.split()
            if not left:
                _stop_daemon(started_pid)
                pidfile.unlink(missing_ok=True)  # zfs-fuse leaves it behind


def _bytes(size: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if size[-1:].upper() in units:
        return int(size[:-1]) * units[size[-1].upper()]
    return int(size)
