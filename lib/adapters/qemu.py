"""The qemu-system-* command lines that are not a guest itself."""

from __future__ import annotations

from vmbundle.adapters.run import run_tool


def version_output(binary: str) -> str:
    """What `BINARY -version` prints (both QEMU 7.x and the 0.14.1 fork print to stdout)."""
    return run_tool([binary, "-version"], timeout=30.0).stdout
