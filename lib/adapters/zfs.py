"""The `zfs` command lines: listing filesystems, creating and destroying datasets,
and the snapshots, rollbacks and clones of a bundle.

Only options that both illumos ZFS and zfs-fuse 0.7.0 (pool version 23) have are
used: no `zfs list -p`, no `zfs create -p`, no `zfs rename` (zfs-fuse always
answers "dataset is busy" to it).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import attrs

from vmbundle.adapters.run import run_tool
from vmbundle.errors import ToolError, ToolMissing, VmbundleError

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


@attrs.frozen
class Snapshot:
    name: str  # dataset@snap
    used: str  # as zfs prints it: 12K, 1.5M
    creation: str  # as zfs prints it: Tue Dec  1 18:25 2026

    @property
    def short(self) -> str:
        return self.name.partition("@")[2]


def snapshot(name: str, *, binary: str = DEFAULT_BINARY) -> None:
    """`zfs snapshot dataset@snap`: every file of the dataset at one instant."""
    _run([binary, "snapshot", _checked_name(name)])


def snapshots(dataset: str, *, binary: str = DEFAULT_BINARY) -> list[Snapshot]:
    """The snapshots of dataset itself (not of its children), oldest first."""
    argv = [binary, "list", "-H", "-o", "name,used,creation", "-s", "creation"]
    out = _run([*argv, "-t", "snapshot", "-r", _checked_name(dataset)])
    found = []
    for line in out.splitlines():
        name, used, creation = line.split("\t")
        if name.startswith(f"{dataset}@"):
            found.append(Snapshot(name, used, creation))
    return found


def rollback(name: str, *, discard_newer: bool, binary: str = DEFAULT_BINARY) -> None:
    """`zfs rollback [-r] dataset@snap`; -r destroys the snapshots taken after it."""
    _run([binary, "rollback", *(["-r"] if discard_newer else []), _checked_name(name)])


def clone(origin: str, target: str, *, binary: str = DEFAULT_BINARY) -> None:
    """`zfs clone dataset@snap target`: a new filesystem sharing the snapshot's blocks."""
    _run([binary, "clone", _checked_name(origin), _checked_name(target)])


def readonly(dataset: str, *, binary: str = DEFAULT_BINARY) -> bool:
    """`zfs get -H -o value readonly DATASET`: whether a replication tool (or an
    operator) made the dataset read-only, as replication targets often are."""
    out = _run([binary, "get", "-H", "-o", "value", "readonly", _checked_name(dataset)])
    return out.strip() == "on"


def make_writable(dataset: str, *, binary: str = DEFAULT_BINARY) -> None:
    """`zfs set readonly=off DATASET`."""
    _run([binary, "set", "readonly=off", _checked_name(dataset)])


def send(
    snapshot: str, out_fd: int, *, incremental_from: str | None = None, binary: str = DEFAULT_BINARY
) -> None:
    """`zfs send [-i FROM] dataset@snap`, the stream written to out_fd as it comes."""
    inc = ["-i", _checked_name(incremental_from)] if incremental_from else []
    _stream(
        [binary, "send", *inc, _checked_name(snapshot)], stdin=subprocess.DEVNULL, stdout=out_fd
    )


def receive(into: str, in_fd: int, *, force: bool, binary: str = DEFAULT_BINARY) -> str:
    """`zfs receive -v -e [-F] ROOT` from in_fd: the stream's filesystem lands under
    ROOT by the last element of its name. -F first rolls the target back to its last
    snapshot (an incremental onto a replica that was mounted, and so touched). The
    snapshot received, as zfs -v names it."""
    argv = [binary, "receive", "-v", "-e", *(["-F"] if force else []), _checked_name(into)]
    out = _stream(argv, stdin=in_fd, stdout=subprocess.PIPE)
    found = re.search(r" into (\S+@\S+)", out)
    if found is None:
        raise ToolError(argv, 0, f"zfs receive named no snapshot it made: {out.strip()!r}")
    return found.group(1)


def _stream(argv: list[str], *, stdin: int, stdout: int) -> str:
    """Run zfs on a stream, with no timeout (a stream takes as long as it takes)."""
    try:
        proc = subprocess.run(argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, text=True)
    except FileNotFoundError as exc:
        raise ToolMissing(argv, None, f"command not found: {argv[0]}") from exc
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise ToolError(argv, proc.returncode, "\n".join(lines[1:] + lines[:1]))
    return proc.stdout or ""


def available(*, binary: str = DEFAULT_BINARY) -> bool:
    """Whether the zfs command exists and answers (with zfs-fuse: the daemon runs)."""
    try:
        _run([binary, "list", "-H", "-o", "name", "-t", "filesystem"], timeout=30.0)
    except ToolError:
        return False
    return True


# What an unfinished receive looks like, as far as `zfs list` can tell.
#
# Seen on zfs-fuse 0.7.0 (pool version 23), with `zfs send POOL/vms/src@s1 | head -c
# 4000000` into `zfs recv POOL/vms/cut1` (an 8 MB stream, the pipe held open for a
# few seconds after the cut): while the stream flows, `zfs list -t all -r` shows
# POOL/vms/cut1 with mounted=no and no directory at its mountpoint; once the stream
# breaks ("invalid backup stream") the dataset is gone again. An incremental
# receive (`zfs send -i s1 src@s2 | head -c ... | zfs recv -F POOL/vms/copy`) keeps
# the old contents mounted and unchanged throughout, lists no `%recv` child
# (`zfs list POOL/vms/copy/%recv`: "dataset does not exist"), and after the cut
# the dataset is as it was at @s1. zfs-fuse has neither `zfs recv -s` ("invalid
# option 's'") nor the properties receive_resume_token and inconsistent ("bad
# property list: invalid property 'receive_resume_token'").
#
# illumos has both (illumos-gate 9c3fd1216f, zfs(8) receive -s): an interrupted
# `zfs receive -s` leaves the new dataset, or for an incremental stream the target,
# with a receive_resume_token other than "-"; the partial state of an incremental
# one is the hidden child TARGET/%recv, which `zfs list` does not show (names with
# % are hidden), so its token on the target is what tells. The columns a `zfs`
# lacks are learned from its answer and then left out.
RECEIVE_COLUMNS = ("receive_resume_token", "inconsistent")
_lacking: dict[str, set[str]] = {}  # zfs binary -> the RECEIVE_COLUMNS it refused
_INVALID_PROPERTY = re.compile(r"invalid property '([^']+)'")


@attrs.frozen
class Filesystem:
    name: str
    mountpoint: Path | None  # None for mountpoint=legacy or none
    mounted: bool
    resume_token: str | None  # an interrupted `zfs receive -s`; None when there is none
    inconsistent: bool  # partly received (where zfs shows the property)
    receiving_child: bool  # a NAME/%recv child was listed (a zfs that shows hidden ones)

    @property
    def receive_unfinished(self) -> bool:
        return self.resume_token is not None or self.inconsistent or self.receiving_child


def filesystems_under(datasets: Sequence[str], *, binary: str = DEFAULT_BINARY) -> list[Filesystem]:
    """Every filesystem in the given datasets, themselves included, with its mount and
    receive state, in one `zfs list -r` (two or three the first time, while learning
    which receive columns this zfs knows). Each filesystem once, in zfs's order."""
    if not datasets:
        return []
    names = [_checked_name(d) for d in datasets]
    while True:
        extra = [c for c in RECEIVE_COLUMNS if c not in _lacking.setdefault(binary, set())]
        columns = ["name", "mounted", *extra, "mountpoint"]
        argv = [binary, "list", "-H", "-r", "-t", "filesystem", "-o", ",".join(columns), *names]
        try:
            out = _run(argv)
        except ToolError as exc:
            refused = _INVALID_PROPERTY.search(exc.stderr)
            if refused is None or refused.group(1) not in extra:
                raise
            _lacking[binary].add(refused.group(1))
            continue
        return _parse_filesystems(argv, out, extra)


def _parse_filesystems(argv: list[str], out: str, extra: list[str]) -> list[Filesystem]:
    rows: dict[str, dict[str, str]] = {}
    for line in out.splitlines():
        # The mountpoint goes last: the one column that can hold a tab.
        fields = line.split("\t", len(extra) + 2)
        if len(fields) != len(extra) + 3 or not fields[0]:
            raise ToolError(argv, 0, f"unexpected line in zfs list output: {line!r}")
        name, mounted, *values, mountpoint = fields
        rows.setdefault(
            name,
            {"mounted": mounted, "mountpoint": mountpoint, **dict(zip(extra, values, strict=True))},
        )
    hidden_children = {n.rpartition("/")[0] for n in rows if n.endswith("/%recv")}
    found = []
    for name, row in rows.items():
        if "%" in name:
            continue
        token = row.get("receive_resume_token", "-")
        mountpoint = row["mountpoint"]
        found.append(
            Filesystem(
                name=name,
                mountpoint=None if mountpoint in _NOT_MOUNTED else Path(mountpoint),
                mounted=row["mounted"] == "yes",
                resume_token=None if token in ("-", "") else token,
                inconsistent=row.get("inconsistent", "-") not in ("-", "0", "off", "no"),
                receiving_child=name in hidden_children,
            )
        )
    return found
