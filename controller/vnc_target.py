"""Where the web console's proxy finds a guest's VNC server, and what it must do
before a browser may connect there. Pure.

Modern QEMU serves the console a private VNC server on a UNIX socket in the run
directory (`-vnc unix:...,id=web`), which only root can open. The illumos KVM fork
(0.14) has one VNC server, the desktop display on TCP: there the proxy connects to
the display, and for a guest with no password of its own it sets a one-time password
over QMP with each ticket and lets it expire (QMP `set_password`, `expire_password`,
both in 0.14), as Proxmox does, so the display is never open to whoever reaches its
port. A guest with its own password keeps it: the browser asks the user for it.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import attrs

from vmbundle.errors import VmbundleError
from vmbundle.guest.boot_record import BootRecord
from vmbundle.guest.display import BASE_PORT
from vmbundle.guest.rundir import RunPaths

ONE_TIME_SECONDS = 30
# VNC authentication is DES keyed by at most 8 characters of the password.
ONE_TIME_LENGTH = 8


@attrs.frozen
class VncTarget:
    unix: Path | None = None
    host: str | None = None
    port: int | None = None
    one_time_password: bool = False


def vnc_target(name: str, record: BootRecord, run: RunPaths, listen: str) -> VncTarget:
    if record.profile == "modern":
        return VncTarget(unix=run.vnc_socket)
    if record.display is None:
        raise VmbundleError(
            f"{name}: has no VNC display, so no console; set vnc.enabled=true and restart it"
        )
    return VncTarget(
        host=_reachable(listen),
        port=BASE_PORT + record.display,
        # A display with a password of its own (the guest's, or made at start) keeps it.
        one_time_password=record.display_password is None and record.config.vnc.password is None,
    )


def _reachable(listen: str) -> str:
    """The address to connect to a server listening on `listen` from this host."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(listen, listen)


def one_time_password() -> str:
    alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(ONE_TIME_LENGTH))


def password_commands(password: str) -> list[tuple[str, dict[str, Any]]]:
    """The QMP commands that let one browser in within ONE_TIME_SECONDS; a client
    already connected stays (set_password keeps connections by default)."""
    return [
        ("set_password", {"protocol": "vnc", "password": password}),
        ("expire_password", {"protocol": "vnc", "time": f"+{ONE_TIME_SECONDS}"}),
    ]
