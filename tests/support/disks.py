"""Writing a running guest's disks through its own block layer, and reading disk
images back, for tests of what a snapshot or a stream carries."""

from __future__ import annotations

import subprocess
from pathlib import Path

from support.service_host import ServiceHost


def write(host: ServiceHost, name: str, drive: str, pattern: int) -> None:
    """64 KiB of pattern at offset 0 of a drive of the running guest (HMP qemu-io)."""
    # HMP's qemu-io answers nothing on success; holds() reads the result back.
    out = host.qmp(
        name,
        "human-monitor-command",
        {"command-line": f'qemu-io {drive} "write -P {pattern:#x} 0 64k"'},
    )
    assert out == "", out


def holds(disk: Path, pattern: int) -> bool:
    """Whether the qcow2 image's first 64 KiB are all pattern (-U: a running guest's too)."""
    proc = subprocess.run(
        ["qemu-io", "-r", "-U", "-f", "qcow2", "-c", f"read -P {pattern:#x} 0 64k", str(disk)],
        capture_output=True,
        text=True,
    )
    if "Pattern verification failed" in proc.stdout + proc.stderr:
        return False  # said on stderr with status 1 when the data is readable, differing
    assert proc.returncode == 0, f"qemu-io could not read {disk}: {proc.stderr or proc.stdout}"
    return True
