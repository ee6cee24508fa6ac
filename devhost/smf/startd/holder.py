"""The holder of one process contract (see devhost/smf/contracts.py).

Run as `python -I -S holder.py CONTRACT_DIR`, in a session of its own: it makes
itself a child subreaper, forks the method the way svc.startd's exec_method does
(`/bin/sh -c "exec <method>"`, stdin /dev/null, stdout and stderr appended to the
instance log), and then reaps every process that ends below it until none is
left. Standard library only: it must start fast and must not depend on the
restarter, which it outlives. Sixteen of them start at once in a boot storm, so
it imports only what it uses: no pathlib, contextlib or typing (a third of its
start-up).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PR_SET_CHILD_SUBREAPER = 36
SMF_EXIT_ERR_CONFIG = 96

# The holder must not die of the signals a terminal or a careless kill sends:
# its descendants would escape the contract.
_SHIELDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGPIPE)


def _write_atomic(here: str, name: str, text: str) -> None:
    tmp = os.path.join(here, "." + name)
    try:
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(here, name))
    except OSError:
        pass  # the restarter let go of the contract and removed its directory


def _nudge(sock_path: str) -> None:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"c", sock_path)
    except OSError:
        return  # none listens: the restarter finds the files when it next looks


def startd_line(text: str) -> str:
    """A line as svc.startd writes it into an instance log."""
    return "[ " + time.strftime("%b %e %T") + " " + text + " ]\n"


def _log(fd: int, text: str) -> None:
    try:
        os.write(fd, startd_line(text).encode())
    except OSError:
        return  # no log to say it in; the method runs anyway


def _exec_method(spec: dict[str, Any]) -> None:
    """In the forked child: set the method's context and exec it. Never returns."""
    try:
        for sig in _SHIELDED:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.umask(0o022)
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        log = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        _log(2, spec["banner"])
        if spec.get("need_session"):
            os.setpgid(0, 0)
        creds = spec.get("credentials")
        try:
            if creds:
                os.setgroups(creds["groups"])
                os.setgid(creds["gid"])
                os.setuid(creds["uid"])
        except OSError as e:
            _log(2, "svc.startd could not set context for method: ")
            os.write(2, f"setuid: {e.strerror}\n".encode())
            os._exit(SMF_EXIT_ERR_CONFIG)
        try:
            os.chdir(spec["cwd"])
        except OSError as e:
            _log(2, "svc.startd could not set context for method: ")
            _log(2, f'chdir: {e.strerror} ("{spec["cwd"]}")')
            os._exit(SMF_EXIT_ERR_CONFIG)
        for note in spec.get("notes", ()):
            _log(2, note)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        os.execve("/bin/sh", ["/bin/sh", "-c", "exec " + spec["exec"]], spec["env"])
    finally:
        os._exit(10)  # what exec_method exits with when exec itself fails


def main(here: str) -> int:
    """here: the contract's directory."""
    with open(os.path.join(here, "contract.json")) as f:
        info = json.load(f)
    spec: dict[str, Any] = info["spec"]
    sock = spec.get("nudge", "")

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        return 1
    for sig in _SHIELDED:
        signal.signal(sig, signal.SIG_IGN)

    method_pid = os.fork()
    if method_pid == 0:
        _exec_method(spec)
    _write_atomic(here, "method.pid", f"{method_pid}\n")
    # Written only once the method is our child, so "no descendants" can never
    # be read while the method has not been forked yet.
    with open(f"/proc/{os.getpid()}/stat") as f:
        starttime = f.read().rsplit(")", 1)[1].split()[19]
    _write_atomic(here, "holder", f"{os.getpid()} {starttime}\n")
    _nudge(sock)

    events = 0
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == method_pid:
            _write_atomic(here, "method.status", f"{status}\n")
            _nudge(sock)
        elif os.WIFSIGNALED(status):
            kind = "core" if os.WCOREDUMP(status) else "signal"
            events += 1
            _write_atomic(here, f"event.{events}", f"{kind} {pid} {os.WTERMSIG(status)}\n")
            _nudge(sock)
    _write_atomic(here, "empty", "")
    _nudge(sock)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
