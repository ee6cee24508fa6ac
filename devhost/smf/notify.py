"""The nudge the svc* commands give the restarter after they change the repository.

svc.startd learns of changes through the repository; the emulated one also polls,
so a lost nudge only delays it. A datagram on `<state>/smf/startd.sock`, or, when
that path is too long for a UNIX socket (sun_path holds 108 bytes with its NUL),
on `startd.sock` in `/tmp/dh-smf-<hash>`, a directory of the restarter's own
(mode 0700), the hash being 10 hex digits of the SHA-256 of the absolute state path.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from pathlib import Path

SOCKET_NAME = "startd.sock"
SUN_PATH_MAX = 108  # sizeof (sockaddr_un.sun_path), the terminating NUL included
SHORT_DIR_PREFIX = "/tmp/dh-smf-"


def socket_path(state_dir: Path) -> Path:
    """Where the restarter of state_dir listens (the daemon and every nudge agree)."""
    state_dir = Path(state_dir).absolute()
    natural = state_dir / "smf" / SOCKET_NAME
    if len(os.fsencode(natural)) < SUN_PATH_MAX:
        return natural
    import hashlib

    digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:10]
    return Path(SHORT_DIR_PREFIX + digest) / SOCKET_NAME


def is_short(path: Path) -> bool:
    """Whether path is in a directory of its own under /tmp (made by prepare())."""
    return str(path.parent).startswith(SHORT_DIR_PREFIX)


def prepare(path: Path) -> None:
    """Make the socket's directory ready for the daemon to bind in: its own
    directory under /tmp is created 0700 and must be this user's, not a link and
    not open to others (OSError otherwise). A stale socket is removed."""
    if is_short(path):
        with contextlib.suppress(FileExistsError):
            path.parent.mkdir(mode=0o700)
        st = path.parent.lstat()
        if (
            not stat.S_ISDIR(st.st_mode)
            or st.st_uid != os.getuid()
            or stat.S_IMODE(st.st_mode) & 0o077
        ):
            raise PermissionError(f"{path.parent} is not a private directory of this user")
    path.unlink(missing_ok=True)


def remove(path: Path) -> None:
    """Remove the socket, and its own directory under /tmp if it has one."""
    path.unlink(missing_ok=True)
    if is_short(path):
        with contextlib.suppress(OSError):
            path.parent.rmdir()


def nudge(state_dir: Path) -> None:
    # No restarter listening (yet) is fine: it reads the repository when it starts.
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s, contextlib.suppress(OSError):
        s.sendto(b"!", str(socket_path(state_dir)))
