"""The `zfs` command lines: listing filesystems, creating and destroying datasets.

Only options that both illumos ZFS and zfs-fuse 0.7.0 (pool version 23) have are
used: no `zfs list -p`, no `zfs create -p`, no `zfs rename` (zfs-fuse always
answers "dataset is busy" to it).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import attrs

from vmbundle.adapters.run import run_tool
from vmbundle.errors import ToolError, VmbundleError

DEFAULT_BINARY = "zfs"

# zfs-fuse refuses to destroy a dataset for a moment after files in it were
# written ("dataset is busy"); it cleared within 0.1 s when measured. The pauses
# before each retry grow, to about 4 s in all.
BUSY_PAUSES = (0.1, 0.25, 0.5, 1.0, 2.0)

# mountpoint values that are not a directory.
_NOT_MOUNTED = ("legacy", "none", "-")


@attrs.frozen
class Dataset:
    name: str
    mountpoint: Path | None  # None for mountpoint=legacy or none


def _checked_name(name: str) -> str:
    # A name is the last argument; one starting with "-" would be read as an option.
    if not name or name.startswith("-") or name.startswith("/"):
        raise VmbundleError(f"{name!r}: not a ZFS dataset name")
    return name


def _run(argv: list[str], timeout: float = 60.0) -> str:
    """Run zfs; its stdout. On failure a ToolError whose one line is zfs's error."""
    proc = run_tool(argv, timeout=timeout, check=False)
    if proc.returncode != 0:
        # zfs prints its error ("cannot destroy 'x': filesystem has children") first and
        # details after; ToolError shows the last line, so the error goes last.
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise ToolError(argv, proc.returncode, "\n".join(lines[1:] + lines[:1]))
    return proc.stdout


def list_filesystems(*, binary: str = DEFAULT_BINARY) -> list[Dataset]:
    """Every ZFS filesystem on the host, in the order zfs lists them."""
    argv = [binary, "list", "-H", "-o", "name,mountpoint", "-t", "filesystem"]
    out = _run(argv)
    datasets = []
    for line in out.splitlines():
        # A name cannot hold a tab, a mountpoint can: split at the first one only.
        name, tab, mountpoint = line.partition("\t")
        if not tab or not name or not mountpoint:
            raise ToolError(argv, 0, f"unexpected line in zfs list output: {line!r}")
        mount = None if mountpoint in _NOT_MOUNTED else Path(mountpoint)
        datasets.append(Dataset(name, mount))
    return datasets


def dataset_for_mountpoint(path: Path, *, binary: str = DEFAULT_BINARY) -> Dataset | None:
    """The filesystem whose mountpoint is path (symbolic links resolved), if any.

    This reads the mountpoint property only; whether it is mounted now is the
    caller's question (os.path.ismount).
    """
    real = os.path.realpath(path)
    for dataset in list_filesystems(binary=binary):
        if dataset.mountpoint is not None and os.path.realpath(dataset.mountpoint) == real:
            return dataset
    return None


def create(name: str, *, binary: str = DEFAULT_BINARY) -> None:
    """Create filesystem `name`; its parent must exist (no -p: parents are not guessed)."""
    _run([binary, "create", _checked_name(name)])


def destroy(name: str, recursive: bool, *, binary: str = DEFAULT_BINARY) -> None:
    """Destroy dataset `name`, with its children and snapshots when recursive."""
    argv = [binary, "destroy", *(["-r"] if recursive else []), _checked_name(name)]
    for pause in BUSY_PAUSES:
        try:
            _run(argv)
            return
        except ToolError as exc:
            if "dataset is busy" not in exc.stderr:
                raise
        time.sleep(pause)
    _run(argv)


def available(*, binary: str = DEFAULT_BINARY) -> bool:
    """Whether the zfs command exists and answers (with zfs-fuse: the daemon runs)."""
    try:
        _run([binary, "list", "-H", "-o", "name", "-t", "filesystem"], timeout=30.0)
    except ToolError:
        return False
    return True
