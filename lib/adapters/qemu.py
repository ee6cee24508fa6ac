"""Every qemu-system-* process vmbundle starts or signals: a guest's QEMU, and
`-version`. Nothing else in vmbundle execs QEMU or sends it a signal."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence

from vmbundle.adapters.run import run_tool
from vmbundle.errors import ToolMissing


def version_output(binary: str) -> str:
    """What `BINARY -version` prints (both QEMU 7.x and the 0.14.1 fork print to stdout)."""
    return run_tool([binary, "-version"], timeout=30.0).stdout


def spawn(argv: Sequence[str], pass_fds: Sequence[int] = ()) -> subprocess.Popen[bytes]:
    """Start a guest's QEMU. Its stdout and stderr are ours: under SMF, the
    instance's log, so QEMU's own error lands just above the line the method
    prints about it. pass_fds: descriptors QEMU gets under the same numbers."""
    try:
        return subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, close_fds=True, pass_fds=tuple(pass_fds)
        )
    except FileNotFoundError:
        raise ToolMissing(argv, None, f"command not found: {argv[0]}") from None


def end(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """End a QEMU this process started: SIGTERM, then SIGKILL after grace seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def kill(pid: int) -> None:
    """SIGKILL a guest's QEMU that another process started (the stop method's last resort)."""
    os.kill(pid, signal.SIGKILL)
