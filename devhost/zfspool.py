"""The zfs-fuse daemon and a devhost's own file-backed pool.

zfs-fuse is one daemon per machine (one control socket, /var/run/zfs/zfs_socket),
shared by every devhost and every test pool. Whoever needs it starts it if none
answers; it is stopped, by its pid, only when it was started by this code (its pid
file is ours) and no pool at all is imported any more, so the last user of a
daemon that devhost started stops it, whichever devhost or test that is. A daemon
started any other way is never stopped. A host-wide lock orders these decisions
against pool creation, so that no pool is created on a daemon that is stopping.

Each devhost has one pool, named from its state directory, on a sparse file in
`<state>/vdev/`, with `<pool>/vms` (the bundle root) and `<pool>/iso` mounted under
`<state>/zfs/`. `down` exports it; the next `up` imports it again.

zfs-fuse (0.7.0, pool version 23) differs from illumos ZFS in ways that matter
here; see devhost/README.md.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import attrs

DAEMON = "zfs-fuse"
DEFAULT_POOL_SIZE = 8 << 30
STATE_RECORD = "zfs-fuse.pid"  # in a state dir: this devhost started the daemon

# zfs-fuse refuses a destroy or export for a moment after writes ("busy"); the pause
# before each retry grows, to about 6 s in all.
BUSY_PAUSES = (0.1, 0.25, 0.5, 1.0, 2.0, 2.0)
ANSWER_TIMEOUT = 30.0
STOP_TIMEOUT = 60.0  # zfs-fuse takes about 5 s to exit, longer with pools mounted
# Our pools stay out of /var/lib/zfs/zpool.cache: a daemon killed with one imported
# would otherwise bring it back at its next start, after its files are deleted, as
# a faulted pool that keeps every later daemon from being stopped.
NO_CACHE = "cachefile=none"
# Debian's /etc/zfs/zfsrc lets the kernel trust FUSE names and attributes for an
# hour, and zfs-fuse keeps a file's pages cached across opens: after a receive, a
# replaced file's name still led to the old, deleted file (ENOENT), and a file
# changed in place read as it was before. illumos has neither cache.
KERNEL_CACHE_OFF = (
    "--fuse-attr-timeout", "0", "--fuse-entry-timeout", "0", "--disable-page-cache",
)  # fmt: skip


class ZfsError(RuntimeError):
    pass


# --- commands -----------------------------------------------------------------------


def _run(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
    )


def _check(*argv: str) -> str:
    done = _run(*argv)
    if done.returncode != 0:
        raise ZfsError(f"{' '.join(argv)}: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def _retry_busy(*argv: str) -> subprocess.CompletedProcess[str]:
    done = _run(*argv)
    for pause in BUSY_PAUSES:
        if done.returncode == 0 or "busy" not in (done.stderr + done.stdout):
            break
        time.sleep(pause)
        done = _run(*argv)
    return done


def imported_pools() -> list[str]:
    """Names of every imported pool; empty when the daemon does not answer."""
    try:
        done = _run("zpool", "list", "-H", "-o", "name", timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return []
    return done.stdout.split() if done.returncode == 0 else []


def daemon_answers() -> bool:
    try:
        done = _run("zpool", "list", "-H", "-o", "name", timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False
    # "no pools available" goes to stdout with status 0; no daemon is status 1.
    return done.returncode == 0


# --- the daemon ---------------------------------------------------------------------


def host_dir() -> Path:
    """Where the machine-wide pid file and lock live (not in any one state dir, as
    the daemon outlives the devhost that started it)."""
    for candidate in (Path("/run/devhost"), Path(tempfile.gettempdir()) / f"devhost-{os.getuid()}"):
        try:
            candidate.mkdir(mode=0o755, parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate, os.W_OK):
            return candidate
    raise ZfsError("no writable directory for the zfs-fuse pid file")


def daemon_pidfile() -> Path:
    return host_dir() / "zfs-fuse.pid"


@contextmanager
def host_lock(name: str = "zfs-fuse.lock") -> Iterator[None]:
    """Serialise starting, stopping and pool creation across processes (another
    name: another machine-wide daemon's decisions, such as the tests' libvirtd)."""
    fd = os.open(host_dir() / name, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _is_daemon(pid: int) -> bool:
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return False
    return comm == DAEMON


def devhost_daemon_pid() -> int | None:
    """The pid of a running zfs-fuse that this code started, if there is one."""
    try:
        pid = int(daemon_pidfile().read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _is_daemon(pid) else None


def ensure_daemon() -> int | None:
    """Start zfs-fuse unless a daemon answers (hold host_lock()); its pid if this
    call started it, None if one was already there."""
    if daemon_answers():
        return None
    pidfile = daemon_pidfile()
    # zfs-fuse leaves its pid file behind and then refuses to start, silently.
    if pidfile.exists() and devhost_daemon_pid() is None:
        pidfile.unlink()
    errors = pidfile.with_suffix(".err")
    with open(errors, "w") as err:
        # No pipes: the daemon would hold them open and a captured run would never end.
        started = subprocess.run(
            [DAEMON, "--pidfile", str(pidfile), "--no-kstat-mount", *KERNEL_CACHE_OFF],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            timeout=60, check=False,
        )  # fmt: skip
    message = errors.read_text().strip()
    errors.unlink()
    if started.returncode != 0:
        # A second daemon exits 1 without a word: someone outside our lock (an older
        # checkout, a person) may have just started one.
        time.sleep(1.0)
        if daemon_answers():
            return None
        raise ZfsError(f"{DAEMON} did not start (status {started.returncode}) {message}".strip())
    deadline = time.monotonic() + ANSWER_TIMEOUT
    while not daemon_answers():
        if time.monotonic() > deadline:
            pid = devhost_daemon_pid()
            if pid is not None:
                _stop(pid)
            raise ZfsError(f"{DAEMON} started but zpool list does not answer")
        time.sleep(0.1)
    pid = devhost_daemon_pid()
    if pid is None:
        raise ZfsError(f"{DAEMON} answers but {pidfile} does not name it")
    return pid


def stop_daemon_if_unused() -> int | None:
    """Stop the daemon if this code started it and no pool is imported (hold
    host_lock()); the pid stopped, if any."""
    pid = devhost_daemon_pid()
    if pid is None or imported_pools():
        return None
    _stop(pid)
    daemon_pidfile().unlink(missing_ok=True)
    return pid


def _stop(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        if not _is_daemon(pid):
            return
        time.sleep(0.1)
    raise ZfsError(f"{DAEMON} (pid {pid}) did not stop within {STOP_TIMEOUT:.0f} s")


# --- a devhost's pool ---------------------------------------------------------------


@attrs.frozen
class DevhostPool:
    name: str
    vdev: Path  # the sparse file
    root: Path  # the pool's own mountpoint
    vms: Path  # <pool>/vms: the bundle root
    iso: Path  # <pool>/iso: the ISO directory

    @property
    def datasets(self) -> tuple[str, str]:
        return f"{self.name}/vms", f"{self.name}/iso"


def pool_for(state_dir: Path) -> DevhostPool:
    state = Path(state_dir).absolute()
    digest = hashlib.sha256(str(state).encode()).hexdigest()
    root = state / "zfs"
    return DevhostPool(
        f"dh{digest[:10]}", state / "vdev" / "pool.img", root, root / "vms", root / "iso"
    )


def started_daemon_pid(state_dir: Path) -> int | None:
    """The daemon this devhost started, while it runs."""
    try:
        pid = int((Path(state_dir) / STATE_RECORD).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _is_daemon(pid) else None


def pool_up(state_dir: Path, size: int = DEFAULT_POOL_SIZE) -> DevhostPool:
    """Start the daemon if needed; create the devhost's pool, or import it again."""
    pool = pool_for(state_dir)
    with host_lock():
        started = ensure_daemon()
        if started is not None:
            (Path(state_dir) / STATE_RECORD).write_text(f"{started}\n")
        if pool.name not in imported_pools():
            if pool.vdev.exists():
                _check(
                    "zpool", "import", "-f", "-o", NO_CACHE, "-d", str(pool.vdev.parent), pool.name
                )
            else:
                _create(pool, size)
    _wait_mounted(pool)
    return pool


def _create(pool: DevhostPool, size: int) -> None:
    create_file_pool(pool.name, pool.vdev, size, pool.root)
    try:
        for dataset in pool.datasets:
            _check("zfs", "create", dataset)
    except ZfsError:
        destroy_pool(pool.name, pool.vdev)
        raise


def create_file_pool(name: str, vdev: Path, size: int, mountpoint: Path) -> None:
    """A new pool on a new sparse file (hold host_lock(), with the daemon up)."""
    vdev.parent.mkdir(parents=True, exist_ok=True)
    with open(vdev, "xb") as f:
        f.truncate(size)
    made = _run("zpool", "create", "-o", NO_CACHE, "-m", str(mountpoint), name, str(vdev))
    if made.returncode != 0:
        vdev.unlink(missing_ok=True)
        raise ZfsError(f"zpool create {name}: {made.stderr.strip()}")


def _wait_mounted(pool: DevhostPool, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not (os.path.ismount(pool.vms) and os.path.ismount(pool.iso)):
        if time.monotonic() > deadline:
            raise ZfsError(f"{pool.name}: {pool.vms} and {pool.iso} are not mounted")
        time.sleep(0.05)


def pool_down(state_dir: Path) -> list[str]:
    """Export the devhost's pool; stop the daemon if it is unused and ours. What was
    done, one line each."""
    pool = pool_for(state_dir)
    done: list[str] = []
    with host_lock():
        if pool.name in imported_pools():
            exported = _retry_busy("zpool", "export", pool.name)
            if exported.returncode != 0:
                exported = _run("zpool", "export", "-f", pool.name)
            if exported.returncode != 0:
                raise ZfsError(f"zpool export {pool.name}: {exported.stderr.strip()}")
            done.append(f"exported pool {pool.name}")
        stopped = stop_daemon_if_unused()
        if stopped is not None:
            done.append(f"stopped {DAEMON} (pid {stopped})")
    # Still running means still in use by others; whoever is last stops it.
    (Path(state_dir) / STATE_RECORD).unlink(missing_ok=True)
    return done


def destroy_pool(name: str, vdev: Path | None = None) -> None:
    """Destroy a pool (retrying while zfs-fuse finds it busy) and remove its file."""
    done = _retry_busy("zpool", "destroy", name)
    if done.returncode != 0 and "no such pool" not in done.stderr:
        done = _run("zpool", "destroy", "-f", name)
        if done.returncode != 0:
            raise ZfsError(f"zpool destroy {name}: {done.stderr.strip()}")
    if vdev is not None:
        vdev.unlink(missing_ok=True)


def pool_health(name: str) -> str | None:
    """ONLINE, DEGRADED, ... for an imported pool; None when it is not imported."""
    try:
        done = _run("zpool", "list", "-H", "-o", "name,health", timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    for line in done.stdout.splitlines():
        fields: Sequence[str] = line.split("\t")
        if fields[0] == name and len(fields) > 1:
            return fields[1]
    return None
