"""The restarter daemon of one devhost: process management and the main loop.

    python -m devhost.smf.startd.daemon [--detach] STATE_DIR

One daemon per state directory (an flock on `<state>/smf/startd.lock` makes
sure). It logs to `<state>/smf/startd.log`, writes `<state>/smf/startd.pid` once
it serves, listens for the svc* commands' nudges on `<state>/smf/startd.sock`
(or a short path under /tmp when that one is too long: devhost.smf.notify), and
reads the repository at least every second. After each pass over the instances it
writes how many it has made to `<state>/smf/startd.passes` (`passes()`), so that a
test can wait until the restarter has looked at what it changed.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from devhost.smf import contracts, notify
from devhost.smf.startd import seed
from devhost.smf.startd.restarter import Restarter

POLL_SECONDS = 1.0
DAEMON_MODULE = "devhost.smf.startd.daemon"


def smf_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "smf"


def pid_file(state_dir: Path) -> Path:
    return smf_dir(state_dir) / "startd.pid"


def log_file(state_dir: Path) -> Path:
    return smf_dir(state_dir) / "startd.log"


def passes_file(state_dir: Path) -> Path:
    return smf_dir(state_dir) / "startd.passes"


def passes(state_dir: Path) -> int:
    """How many passes over the instances the restarter of state_dir has finished,
    counted on across restarts of the daemon. Once it has gone up by two since a
    change, a whole pass that began after the change is done: the restarter has
    acted on it (the methods it started may still run)."""
    try:
        return int(passes_file(state_dir).read_text())
    except (FileNotFoundError, ValueError):
        return 0


def _count_pass(state_dir: Path, done: int) -> None:
    path = passes_file(state_dir)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{done}\n")
    os.replace(tmp, path)


def _shutdown_request(state_dir: Path) -> Path:
    return smf_dir(state_dir) / "startd.shutdown"


def running_pid(state_dir: Path) -> int | None:
    """The pid of the daemon serving state_dir, or None."""
    try:
        pid = int(pid_file(state_dir).read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    st = contracts.proc_stat(pid)
    if st is None or st.state == "Z":
        return None
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    want = str(Path(state_dir).absolute()).encode()
    if DAEMON_MODULE.encode() not in argv or want not in argv:
        return None
    return pid


def spawn(state_dir: Path) -> int:
    """Start the daemon for state_dir, detached, and return its pid once it
    serves; the pid of the one already serving, if any."""
    pid = running_pid(state_dir)
    if pid is not None:
        return pid
    state_dir = Path(state_dir).absolute()
    smf_dir(state_dir).mkdir(parents=True, exist_ok=True)
    with log_file(state_dir).open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", DAEMON_MODULE, "--detach", str(state_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            close_fds=True,
            cwd="/",
        )
    # The first process forks the daemon off and exits once it serves, or died.
    served = proc.wait() == 0
    pid = running_pid(state_dir)
    if not served or pid is None:
        raise RuntimeError(f"the devhost restarter did not start; see {log_file(state_dir)}")
    return pid


def shutdown(state_dir: Path, timeout: float = 120) -> None:
    """Stop every running instance as an illumos shutdown does (stop methods,
    dependents first, then whatever is left in the contracts is killed), then
    stop the daemon."""
    pid = running_pid(state_dir)
    if pid is None:
        return
    _shutdown_request(state_dir).write_text(f"{timeout}\n")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout + 30
    while time.monotonic() < deadline and running_pid(state_dir) == pid:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    if running_pid(state_dir) == pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        contracts.kill_all(state_dir)
        notify.remove(notify.socket_path(state_dir))  # it had no time to
    pid_file(state_dir).unlink(missing_ok=True)


# --- the daemon itself ------------------------------------------------------------------------


def _listen(path: Path, nudged: Callable[[], None], log: logging.Logger) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        notify.prepare(path)
        sock.bind(str(path))
    except OSError as e:
        # Nudges are a speed-up only: polling alone still works.
        log.warning("cannot listen on %s (%s); reading the repository every second", path, e)
        sock.close()
        return None

    def read() -> None:
        while True:
            try:
                sock.recv(64)
            except OSError:
                return
            nudged()

    threading.Thread(target=read, name="nudges", daemon=True).start()
    return sock


def _stop_everything(restarter: Restarter, state_dir: Path, log: logging.Logger) -> None:
    try:
        timeout = float(_shutdown_request(state_dir).read_text())
    except (FileNotFoundError, ValueError):
        timeout = 120.0
    log.info("shutting down: stopping every instance (%ss at most)", timeout)
    deadline = time.monotonic() + timeout
    while not restarter.shutdown_step():
        if time.monotonic() >= deadline:
            log.warning("shutdown timed out; killing what is left")
            break
        restarter.wake.wait(0.1)
        restarter.wake.clear()
    contracts.kill_all(state_dir)
    for t in restarter.threads():
        t.join(timeout=10)
    _shutdown_request(state_dir).unlink(missing_ok=True)


def _ready(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.write(fd, b"ready")
        os.close(fd)


def serve(state_dir: Path, ready_fd: int | None = None) -> int:
    """Run the daemon; ready_fd gets "ready" once it serves (or another does)."""
    log = logging.getLogger("startd")
    smf = smf_dir(state_dir)
    smf.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(smf / "startd.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.info("another restarter serves %s", state_dir)
        deadline = time.monotonic() + 60
        while running_pid(state_dir) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        _ready(ready_fd)
        return 0

    restarter = Restarter(state_dir, log)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        restarter.stopping.set()
        restarter.wake.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    if seed.seed(state_dir):
        log.info("seeded the standard services")
    sock = _listen(notify.socket_path(state_dir), restarter.nudged, log)
    done = passes(state_dir)
    restarter.tick()  # load every instance, adopting the contracts still running
    done += 1
    _count_pass(state_dir, done)
    pid_file(state_dir).write_text(f"{os.getpid()}\n")
    log.info("serving %s as pid %d", state_dir, os.getpid())
    _ready(ready_fd)
    try:
        while not restarter.stopping.is_set():
            restarter.wake.wait(POLL_SECONDS)
            restarter.wake.clear()
            if restarter.stopping.is_set():
                break
            restarter.tick()
            done += 1
            _count_pass(state_dir, done)
        _stop_everything(restarter, state_dir, log)
    finally:
        if sock is not None:
            sock.close()
            notify.remove(notify.socket_path(state_dir))
        pid_file(state_dir).unlink(missing_ok=True)
        log.info("exiting")
    return 0


def main(argv: list[str]) -> int:
    detach = "--detach" in argv
    args = [a for a in argv if a != "--detach"]
    if len(args) != 1:
        print("usage: python -m devhost.smf.startd.daemon [--detach] STATE_DIR", file=sys.stderr)
        return 2
    state_dir = Path(args[0]).absolute()
    ready_fd = None
    if detach:
        r, ready_fd = os.pipe()
        if os.fork() != 0:
            # Exit once the daemon serves (it writes "ready") or has died (EOF).
            os.close(ready_fd)
            os._exit(0 if os.read(r, 16) == b"ready" else 1)
        os.close(r)
        os.setsid()
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(threadName)s: %(message)s",
    )
    return serve(state_dir, ready_fd)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
