"""The nudge the svc* commands give the restarter after they change the repository.

svc.startd learns of changes through the repository; the emulated one also polls,
so a lost nudge only delays it. A datagram on `<state>/smf/startd.sock`.
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path


def socket_path(state_dir: Path) -> Path:
    return Path(state_dir) / "smf" / "startd.sock"


def nudge(state_dir: Path) -> None:
    # No restarter listening (yet) is fine: it reads the repository when it starts.
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s, contextlib.suppress(OSError):
        s.sendto(b"!", str(socket_path(state_dir)))
