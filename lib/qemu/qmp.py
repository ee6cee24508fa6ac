"""Short QMP sessions on a guest's control monitor, for the CLI and the methods.

QEMU serves one client per monitor and a second client hangs without a greeting,
so sessions on control.qmp take control.lock first, and every connect and
command has a deadline. The controller holds the other monitor (controller.qmp)
with qemu.qmp; these short sessions speak the line protocol directly, because
asyncio and qemu.qmp cost the start method more to import than QEMU takes to
start.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

from vmbundle.errors import VmbundleError
from vmbundle.guest.rundir import RunPaths
from vmbundle.locks import exclusive

T = TypeVar("T")


class QmpError(VmbundleError):
    """QEMU answered a command with an error."""

    def __init__(self, guest: str, command: str, error_class: str, desc: str) -> None:
        self.error_class = error_class
        self.desc = desc
        super().__init__(f"{guest}: QMP {command}: {desc}")


class QmpUnavailable(VmbundleError):
    """The monitor cannot be reached (no socket yet, refused, closed): QEMU is
    starting, going away, or not there."""


class QmpNotAnswering(VmbundleError):
    """The monitor took the connection but QEMU did not answer in time."""


class Session:
    """One negotiated connection; every read is bounded by the session's deadline."""

    def __init__(self, guest: str, sock: socket.socket, deadline: float) -> None:
        self.guest = guest
        self._sock = sock
        self._file = sock.makefile("rb")
        self._deadline = deadline
        self.greeting = self._read()
        self.execute("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self._sock.settimeout(remaining)
        line = self._file.readline()
        if not line:
            raise QmpUnavailable(f"{self.guest}: QMP: QEMU closed the monitor")
        message = json.loads(line)
        if not isinstance(message, dict):
            raise QmpUnavailable(f"{self.guest}: QMP: unexpected message {line[:80]!r}")
        return message

    def execute(
        self, command: str, arguments: dict[str, Any] | None = None, *, fd: int | None = None
    ) -> Any:
        """fd goes along with the command (SCM_RIGHTS), as getfd expects it."""
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        data = json.dumps(request).encode() + b"\r\n"
        if fd is None:
            self._sock.sendall(data)
        else:
            socket.send_fds(self._sock, [data], [fd])
        while True:
            message = self._read()
            if "return" in message:
                return message["return"]
            if "error" in message:
                err = message["error"]
                raise QmpError(self.guest, command, str(err.get("class")), str(err.get("desc")))
            # anything else is an event, which belongs to the controller's monitor

    def close(self) -> None:
        self._file.close()
        self._sock.close()


def with_control(run: RunPaths, fn: Callable[[Session], T], timeout: float = 10.0) -> T:
    """Run fn with a negotiated session on the guest's control monitor."""
    guest = run.dir.name
    deadline = time.monotonic() + timeout
    try:
        with exclusive(run.control_lock, timeout):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                sock.connect(str(run.control_qmp))
                session = Session(guest, sock, deadline)
                try:
                    return fn(session)
                finally:
                    session.close()
            finally:
                sock.close()
    except TimeoutError:
        raise QmpNotAnswering(f"{guest}: QMP did not answer within {timeout:g}s") from None
    except (OSError, ValueError) as exc:
        raise QmpUnavailable(f"{guest}: QMP: {exc}") from None


def execute(
    run: RunPaths, command: str, arguments: dict[str, Any] | None = None, timeout: float = 10.0
) -> Any:
    """One QMP command on the control monitor; its return value."""
    return with_control(run, lambda s: s.execute(command, arguments), timeout)


def run_state(run: RunPaths, timeout: float = 5.0) -> str:
    """The guest's run state, asked with query-status on the control monitor."""
    return run_state_of(execute(run, "query-status", timeout=timeout))


def run_state_of(status: Any) -> str:
    """The run state from a query-status reply. Modern QEMU names it ("running",
    "shutdown", "internal-error"...); the illumos KVM fork (0.14) gives only
    a running flag."""
    if isinstance(status, dict):
        if isinstance(status.get("status"), str):
            return str(status["status"])
        if isinstance(status.get("running"), bool):
            return "running" if status["running"] else "stopped"
    return "unknown"
