"""Where the controller listens, and the nudge the methods give it.

The controller's files sit in `<run_dir>/_controller/` (mode 0700): a guest's name
begins with a letter, so no guest's run directory can be this one. The methods
import this module on their fast path, so it imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import NamedTuple

DIR_NAME = "_controller"


class ControllerPaths(NamedTuple):
    # Not attrs, for the start method's quick path (as vmbundle.guest.rundir.RunPaths).
    dir: Path

    @classmethod
    def under(cls, run_dir: Path) -> ControllerPaths:
        return cls(run_dir / DIR_NAME)

    @property
    def api_socket(self) -> Path:
        """The local HTTP API (root only: the directory is 0700, the socket 0600)."""
        return self.dir / "api.sock"

    @property
    def web_url(self) -> Path:
        """Where the web console is, as it bound (its port may be any free one)."""
        return self.dir / "web.url"

    @property
    def nudge_socket(self) -> Path:
        """A datagram socket: any datagram wakes the reconcile loop at once."""
        return self.dir / "nudge.sock"


def nudge(run_dir: Path, guest: str) -> None:
    """Tell a running controller that the guest's state just changed, so it need
    not wait for its next look at SMF. One datagram, never blocking; no
    controller, no harm: it looks at everything when it starts."""
    path = ControllerPaths.under(run_dir).nudge_socket
    with (
        contextlib.suppress(OSError),
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s,
    ):
        s.setblocking(False)
        s.sendto(guest.encode()[:255], str(path))
