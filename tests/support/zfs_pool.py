"""A throwaway zfs-fuse pool on a sparse file, for tests that need real ZFS.

The zfs-fuse daemon is shared by every test run and every devhost on the host;
devhost.zfspool starts it when none answers and stops it (by pid) when the last
pool is gone, if it was the one to start it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs

from devhost import zfspool


@attrs.frozen
class Pool:
    name: str
    mountpoint: Path


@contextmanager
def zfs_pool(tmp_dir: Path, size: str = "512M") -> Iterator[Pool]:
    """A fresh, uniquely named pool mounted at tmp_dir/mnt; gone again at exit."""
    name = f"vmbt{secrets.token_hex(4)}"
    vdev = tmp_dir / f"{name}.img"
    mountpoint = tmp_dir / "mnt"
    with zfspool.host_lock():
        zfspool.ensure_daemon()
        try:
            zfspool.create_file_pool(name, vdev, _bytes(size), mountpoint)
        except BaseException:
            zfspool.stop_daemon_if_unused()
            raise
    try:
        yield Pool(name, mountpoint)
    finally:
        with zfspool.host_lock():
            try:
                zfspool.destroy_pool(name, vdev)
            finally:
                zfspool.stop_daemon_if_unused()


def _bytes(size: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if size[-1:].upper() in units:
        return int(size[:-1]) * units[size[-1].upper()]
    return int(size)
