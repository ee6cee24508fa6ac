"""devhost.zfspool: a devhost's own pool on the shared zfs-fuse daemon."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.zfs_pool import Pool, zfs_pool

from devhost import zfspool

pytestmark = pytest.mark.zfs

SMALL = 256 << 20


def test_pool_is_named_from_the_state_dir(tmp_path: Path) -> None:
    a = zfspool.pool_for(tmp_path / "a")
    assert a == zfspool.pool_for(tmp_path / "a")
    assert a.name != zfspool.pool_for(tmp_path / "b").name
    assert a.name.startswith("dh") and len(a.name) == 12
    assert a.vdev == tmp_path / "a" / "vdev" / "pool.img"
    assert a.vms == tmp_path / "a" / "zfs" / "vms" and a.iso == tmp_path / "a" / "zfs" / "iso"


def test_pool_up_creates_vms_and_iso_mounted_under_the_state_dir(
    tmp_path: Path, zfs_daemon: Pool
) -> None:
    state = tmp_path / "s"
    state.mkdir()
    try:
        pool = zfspool.pool_up(state, SMALL)
        assert os.path.ismount(pool.vms) and os.path.ismount(pool.iso)
        assert zfspool.pool_health(pool.name) == "ONLINE"
        assert pool.vdev.stat().st_blocks * 512 < SMALL  # sparse
        # The daemon was there already: this devhost did not start it.
        assert zfspool.started_daemon_pid(state) is None
    finally:
        zfspool.pool_down(state)
        zfspool.pool_for(state).vdev.unlink(missing_ok=True)


def test_pool_down_exports_and_pool_up_imports_it_again(tmp_path: Path, zfs_daemon: Pool) -> None:
    state = tmp_path / "s"
    state.mkdir()
    try:
        pool = zfspool.pool_up(state, SMALL)
        (pool.iso / "boot.iso").write_bytes(b"iso")
        done = zfspool.pool_down(state)
        assert done == [f"exported pool {pool.name}"]
        assert pool.name not in zfspool.imported_pools()
        assert zfspool.pool_health(pool.name) is None
        again = zfspool.pool_up(state, SMALL)
        assert (again.iso / "boot.iso").read_bytes() == b"iso"
        # pool_up of an imported pool changes nothing.
        assert zfspool.pool_up(state, SMALL) == again
    finally:
        zfspool.pool_down(state)
        zfspool.pool_for(state).vdev.unlink(missing_ok=True)


def test_pool_down_without_a_pool_does_nothing(tmp_path: Path, zfs_daemon: Pool) -> None:
    assert zfspool.pool_down(tmp_path) == []


def test_pool_down_waits_out_a_busy_export(tmp_path: Path, zfs_daemon: Pool) -> None:
    state = tmp_path / "s"
    state.mkdir()
    pool = zfspool.pool_up(state, SMALL)
    try:
        # Fresh writes make zfs-fuse report "busy" for a moment.
        for i in range(20):
            (pool.vms / f"f{i}").write_bytes(os.urandom(65536))
        assert zfspool.pool_down(state) == [f"exported pool {pool.name}"]
    finally:
        zfspool.pool_down(state)
        pool.vdev.unlink(missing_ok=True)


def test_test_pools_share_the_daemon_and_leave_it_to_its_last_user(
    tmp_path: Path, zfs_daemon: Pool
) -> None:
    (tmp_path / "a").mkdir()
    with zfs_pool(tmp_path / "a", "64M") as inner:
        assert {inner.name, zfs_daemon.name} <= set(zfspool.imported_pools())
    assert inner.name not in zfspool.imported_pools()
    assert zfspool.daemon_answers()  # the session's pool still uses it
    assert not (tmp_path / "a" / f"{inner.name}.img").exists()
