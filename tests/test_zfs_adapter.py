"""vmbundle.adapters.zfs against a real zfs-fuse pool."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
from support.zfs_pool import Pool

from vmbundle.adapters import zfs
from vmbundle.errors import ToolError, VmbundleError

pytestmark = pytest.mark.zfs


@pytest.fixture
def child(zfs_pool: Pool) -> str:
    """A fresh dataset name under the test pool (not created)."""
    return f"{zfs_pool.name}/t{secrets.token_hex(4)}"


def _names() -> set[str]:
    return {d.name for d in zfs.list_filesystems()}


def test_list_has_the_pool_with_its_mountpoint(zfs_pool: Pool) -> None:
    datasets = {d.name: d for d in zfs.list_filesystems()}
    assert datasets[zfs_pool.name].mountpoint == zfs_pool.mountpoint


def test_create_mounts_a_child_under_the_parent(zfs_pool: Pool, child: str) -> None:
    zfs.create(child)
    try:
        path = zfs_pool.mountpoint / child.split("/")[-1]
        assert zfs.Dataset(child, path) in zfs.list_filesystems()
        assert os.path.ismount(path)
        assert zfs.dataset_for_mountpoint(path) == zfs.Dataset(child, path)
    finally:
        zfs.destroy(child, recursive=False)
    assert child not in _names()


def test_dataset_for_mountpoint_of_a_plain_directory_is_none(zfs_pool: Pool) -> None:
    plain = zfs_pool.mountpoint / f"plain{secrets.token_hex(4)}"
    plain.mkdir()
    try:
        assert zfs.dataset_for_mountpoint(plain) is None
    finally:
        plain.rmdir()


def test_mountpoint_none_lists_as_none(child: str) -> None:
    subprocess.run(["zfs", "create", "-o", "mountpoint=none", child], check=True)
    try:
        assert zfs.Dataset(child, None) in zfs.list_filesystems()
    finally:
        zfs.destroy(child, recursive=False)


def test_create_needs_the_parent(child: str) -> None:
    with pytest.raises(ToolError) as caught:
        zfs.create(f"{child}/grandchild")
    assert "parent does not exist" in str(caught.value)
    assert str(caught.value).startswith("zfs: cannot create")


def test_create_refuses_an_existing_dataset(child: str) -> None:
    zfs.create(child)
    try:
        with pytest.raises(ToolError, match="dataset already exists"):
            zfs.create(child)
    finally:
        zfs.destroy(child, recursive=False)


def test_destroy_right_after_writing_retries_while_busy(zfs_pool: Pool, child: str) -> None:
    zfs.create(child)
    # Freshly written files make zfs-fuse answer "dataset is busy" for a moment.
    (zfs_pool.mountpoint / child.split("/")[-1] / "data").write_bytes(os.urandom(4 << 20))
    zfs.destroy(child, recursive=True)
    assert child not in _names()


def test_destroy_with_a_snapshot_needs_recursive(child: str) -> None:
    zfs.create(child)
    subprocess.run(["zfs", "snapshot", f"{child}@s1"], check=True)
    with pytest.raises(ToolError) as caught:
        zfs.destroy(child, recursive=False)
    # zfs's own error is the line shown; the list of snapshots stays in stderr.
    assert str(caught.value) == f"zfs: cannot destroy '{child}': filesystem has children"
    assert f"{child}@s1" in caught.value.stderr
    zfs.destroy(child, recursive=True)
    assert child not in _names()


def test_destroy_of_a_missing_dataset_says_so(child: str) -> None:
    with pytest.raises(ToolError, match="dataset does not exist"):
        zfs.destroy(child, recursive=True)


def test_names_that_look_like_options_are_refused() -> None:
    with pytest.raises(VmbundleError, match="not a ZFS dataset name"):
        zfs.create("-o")


def test_available_with_the_default_and_a_given_binary(zfs_pool: Pool) -> None:
    assert zfs.available()
    given = shutil.which("zfs")
    assert given is not None
    assert zfs.available(binary=given)
    assert any(d.name == zfs_pool.name for d in zfs.list_filesystems(binary=given))


def test_a_missing_binary_is_not_available(tmp_path: Path) -> None:
    assert not zfs.available(binary=str(tmp_path / "zfs"))
    with pytest.raises(ToolError, match="command not found"):
        zfs.list_filesystems(binary=str(tmp_path / "zfs"))


def test_filesystems_under_lists_mounts_and_receive_state(zfs_pool: Pool, child: str) -> None:
    zfs.create(child)
    subprocess.run(["zfs", "create", f"{child}/up"], check=True)
    subprocess.run(["zfs", "create", f"{child}/down"], check=True)
    subprocess.run(["zfs", "create", "-o", "mountpoint=none", f"{child}/none"], check=True)
    subprocess.run(["zfs", "snapshot", f"{child}/up@s1"], check=True)
    subprocess.run(["zfs", "umount", f"{child}/down"], check=True)
    try:
        path = zfs_pool.mountpoint / child.split("/")[-1]
        # A dataset named twice (itself, and under its parent) is listed once.
        found = zfs.filesystems_under([child, f"{child}/up"])

        def fs(name: str, mountpoint: Path | None, mounted: bool) -> zfs.Filesystem:
            return zfs.Filesystem(name, mountpoint, mounted, None, False, False)

        assert sorted(found, key=lambda f: f.name) == [
            fs(child, path, True),
            fs(f"{child}/down", path / "down", False),
            fs(f"{child}/none", None, False),
            fs(f"{child}/up", path / "up", True),
        ]
        assert not any(f.receive_unfinished for f in found)
        # zfs-fuse knows neither column; it was asked once and is not asked again.
        assert zfs._lacking["zfs"] == set(zfs.RECEIVE_COLUMNS)
    finally:
        zfs.destroy(child, recursive=True)


def test_filesystems_under_a_missing_dataset_fails(child: str) -> None:
    with pytest.raises(ToolError, match="dataset does not exist"):
        zfs.filesystems_under([child])
    assert zfs.filesystems_under([]) == []
    with pytest.raises(VmbundleError, match="not a ZFS dataset name"):
        zfs.filesystems_under(["-r"])


def test_the_receive_columns_of_an_illumos_zfs_are_read() -> None:
    # What an illumos `zfs list -o name,mounted,receive_resume_token,inconsistent,
    # mountpoint` prints after an interrupted `zfs receive -s` (no zfs-fuse here).
    out = (
        "tank/vms\tyes\t-\t0\t/tank/vms\n"
        "tank/vms/new\tno\t1-e604ea4bf-e0-789c63a2\t1\t/tank/vms/new\n"
        "tank/vms/old\tyes\t-\t0\t/tank/vms/old\n"
        "tank/vms/old/%recv\tno\t-\t1\t/tank/vms/old/%recv\n"
    )
    found = zfs._parse_filesystems(["zfs"], out, list(zfs.RECEIVE_COLUMNS))
    assert [(f.name, f.resume_token, f.inconsistent, f.receive_unfinished) for f in found] == [
        ("tank/vms", None, False, False),
        ("tank/vms/new", "1-e604ea4bf-e0-789c63a2", True, True),
        ("tank/vms/old", None, False, True),
    ]
