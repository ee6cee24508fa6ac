"""Reading a guest's serial console from a test: QEMU's own socket when no
controller runs, else the controller's fan-out socket (ServiceHost.serial)."""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path


class SerialLog:
    """Collects what the guest writes to its serial console, from the moment of connect."""

    def __init__(self, path: Path, timeout: float = 30.0, scrollback: Path | None = None) -> None:
        self._scrollback = scrollback
        deadline = time.monotonic() + timeout
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        while True:
            try:
                self._sock.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        self._text = ""
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                data = self._sock.recv(4096)
            except OSError:
                data = b""
            with self._cond:
                if not data:
                    self._cond.notify_all()
                    return
                self._text += data.decode(errors="replace").replace("\r", "")
                self._cond.notify_all()

    @property
    def text(self) -> str:
        with self._cond:
            return self._text

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern, re.MULTILINE)
        with self._cond:
            while True:
                m = rx.search(self._text)
                if m:
                    return m
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    raise AssertionError(
                        f"no {pattern!r} on the serial console{self._earlier(rx)}; "
                        f"got:\n{self._text[-3000:]}"
                    )
                self._cond.wait(left)

    def _earlier(self, rx: re.Pattern[str]) -> str:
        """Said when the guest wrote it before this client connected: the
        controller's scrollback has it, the live stream cannot."""
        if self._scrollback is None:
            return ""
        try:
            past = self._scrollback.read_bytes().decode(errors="replace").replace("\r", "")
        except OSError:
            return ""
        return (
            " (it is in the scrollback: the guest wrote it before this client connected)"
            if rx.search(past)
            else ""
        )

    def ended(self, timeout: float) -> bool:
        """Whether the other end closed the connection, waiting up to timeout."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def send(self, line: str) -> None:
        """Write line and a newline to the guest's serial console (the test guest takes
        commands this way: see tests/guest/init)."""
        self._sock.sendall(line.encode() + b"\n")

    def close(self) -> None:
        self._sock.close()
