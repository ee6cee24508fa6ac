"""The run directory: what belongs to one boot of a guest, never to its bundle.

`<run_dir>/<name>/` holds QEMU's pid file, its two QMP monitors, the serial
console (QEMU's socket, which the controller holds, and the controller's own
fan-out socket and scrollback), the private VNC socket for the web console and a
small state file.
Tests and devhosts point run_dir elsewhere, so every path derives from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

# QEMU refuses UNIX socket paths of 108 bytes or more (sun_path).
MAX_SOCKET_PATH = 107


class RunPaths(NamedTuple):
    # A NamedTuple, not an attrs class: the start method's quick path imports this
    # module, and attrs alone costs it some 15 ms of the time a bare QEMU is held to.
    dir: Path

    @classmethod
    def for_guest(cls, run_dir: Path, name: str) -> RunPaths:
        return cls(run_dir / name)

    @property
    def pidfile(self) -> Path:
        return self.dir / "qemu.pid"

    @property
    def controller_qmp(self) -> Path:
        """Held open by the controller for events and the web's requests."""
        return self.dir / "controller.qmp"

    @property
    def control_qmp(self) -> Path:
        """Short sessions by the methods and the CLI, one at a time under control_lock."""
        return self.dir / "control.qmp"

    @property
    def control_lock(self) -> Path:
        return self.dir / "control.lock"

    @property
    def serial(self) -> Path:
        """QEMU's serial port: a server socket that takes one client at a time, the
        controller while it runs (see serial_shared)."""
        return self.dir / "console.sock"

    @property
    def serial_shared(self) -> Path:
        """The controller's fan-out of the serial console (0600): every client gets
        the guest's output from the moment it connects, and its input goes to the guest."""
        return self.dir / "serial-shared.sock"

    @property
    def serial_log(self) -> Path:
        """The controller's scrollback of the serial console (0600, bounded)."""
        return self.dir / "serial.log"

    @property
    def vnc_socket(self) -> Path:
        """The web console's private VNC server (modern QEMU only)."""
        return self.dir / "vnc.sock"

    @property
    def vnc_password(self) -> Path:
        """The VNC password, read by QEMU at start (mode 0600), never on its command line."""
        return self.dir / "vnc-password"

    @property
    def stopping(self) -> Path:
        """Made by the stop method before it presses the power button, so the
        controller tells a stop SMF asked for from a guest powering itself off."""
        return self.dir / "stopping"

    @property
    def force_off(self) -> Path:
        """Made by a force off (`vmbundle stop --force`, the web console's Force off)
        before its disable: the stop method then quits QEMU without asking the guest."""
        return self.dir / "force-off"

    @property
    def state(self) -> Path:
        return self.dir / "state.json"

    def sockets(self) -> tuple[Path, ...]:
        return (
            self.controller_qmp,
            self.control_qmp,
            self.serial,
            self.vnc_socket,
            self.serial_shared,
        )

    def too_long(self) -> list[Path]:
        return [p for p in self.sockets() if len(str(p).encode()) > MAX_SOCKET_PATH]
