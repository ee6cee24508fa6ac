"""A real libvirtd for the interchange tests, on a host without systemd.

libvirtd (and virtlogd, which keeps each domain's QEMU log) is one daemon per
machine, shared by every test run, like zfs-fuse (devhost.zfspool). A run that
finds none answering starts both and records their pids in the host directory;
each run holds a lease (a file named by its pid) while it uses the daemon; the
last run to let go stops the daemons, by those recorded pids, if this code
started them. A libvirtd started any other way is never stopped. A host-wide
lock orders these decisions. Domains are named uniquely per run, so runs side
by side never touch each other's.
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

from devhost.zfspool import host_dir, host_lock
from vmbundle.guest.process import pid_alive

URI = "qemu:///system"
DAEMONS = ("virtlogd", "libvirtd")  # virtlogd first: libvirtd hands it each QEMU's log
ANSWER_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
LOCK = "vmbundle-test-libvirt.lock"


def virsh(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["virsh", "-c", URI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"virsh {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done


def answers() -> bool:
    try:
        return virsh("version", check=False, timeout=15).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _pidfile(daemon: str) -> Path:
    return host_dir() / f"vmbundle-test-{daemon}.pid"


def _leases() -> Path:
    path = host_dir() / "vmbundle-test-libvirt.leases"
    path.mkdir(exist_ok=True)
    return path


def _our_pid(daemon: str) -> int | None:
    """The pid of a running daemon this code started, if there is one."""
    try:
        pid = int(_pidfile(daemon).read_text().strip())
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError):
        return None
    return pid if comm == daemon else None


def _start() -> None:
    for daemon in DAEMONS:
        if _our_pid(daemon) is not None:
            continue
        pidfile = _pidfile(daemon)
        pidfile.unlink(missing_ok=True)
        # -d: the daemon forks and writes its own pid; no pipes, which it would hold open.
        subprocess.run(
            [daemon, "-d", "-p", str(pidfile)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
            timeout=60,
        )
    deadline = time.monotonic() + ANSWER_TIMEOUT
    while not answers():
        if time.monotonic() > deadline:
            _stop_ours()
            raise RuntimeError(f"libvirtd started but virsh -c {URI} does not answer")
        time.sleep(0.2)


def _stop_ours() -> None:
    for daemon in reversed(DAEMONS):
        pid = _our_pid(daemon)
        if pid is None:
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _our_pid(daemon) == pid and time.monotonic() < deadline:
            time.sleep(0.1)
        if _our_pid(daemon) == pid:
            os.kill(pid, signal.SIGKILL)
        _pidfile(daemon).unlink(missing_ok=True)


@contextmanager
def libvirt_daemon() -> Iterator[str]:
    """A libvirtd that answers at URI for the with-block (started if none does)."""
    lease = _leases() / str(os.getpid())
    with host_lock(LOCK):
        if not answers():
            _start()
        lease.touch()
    try:
        yield URI
    finally:
        with host_lock(LOCK):
            lease.unlink(missing_ok=True)
            # A run killed without letting go leaves its lease; its pid tells.
            live = [p for p in _leases().iterdir() if p.name.isdigit() and pid_alive(int(p.name))]
            for stale in set(_leases().iterdir()) - set(live):
                stale.unlink(missing_ok=True)
            if not live:
                _stop_ours()


def domain_name(prefix: str) -> str:
    """A name no other run uses at the same time."""
    return f"{prefix}-{os.getpid()}-{secrets.token_hex(3)}"


@contextmanager
def defined(xml_file: Path, name: str) -> Iterator[str]:
    """The domain of xml_file defined in libvirt for the with-block; destroyed (if it
    runs) and undefined after, whatever happens."""
    # A fresh libvirtd probes QEMU first (over a minute under TCG on this kind of host).
    virsh("define", str(xml_file), timeout=240)
    try:
        yield name
    finally:
        if virsh("domstate", name, check=False).stdout.strip() == "running":
            virsh("destroy", name, check=False)
        virsh("undefine", name, check=False)
