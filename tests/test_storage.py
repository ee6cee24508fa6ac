"""vmbundle.vm.storage: bundle roots as plain directories and as zfs-fuse datasets."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.zfs_pool import Pool

from vmbundle.adapters import zfs
from vmbundle.errors import VmbundleError
from vmbundle.vm import storage


def _names() -> set[str]:
    return {d.name for d in zfs.list_filesystems()}


# Plain directories: no zfs involved.


def test_a_plain_directory_root(tmp_path: Path) -> None:
    root = storage.resolve_root(str(tmp_path))
    assert root == storage.BundleRoot(tmp_path, None)
    path = storage.create_bundle_dir(root, "web01")
    assert path == tmp_path / "web01"
    assert stat.S_IMODE(path.stat().st_mode) & 0o755 == stat.S_IMODE(path.stat().st_mode)
    assert storage.bundle_dataset(path) is None
    (path / "disk0.qcow2").write_bytes(b"x")
    storage.destroy_bundle_dir(root, "web01")
    assert not path.exists()


def test_a_trailing_slash_is_the_same_root(tmp_path: Path) -> None:
    assert storage.resolve_root(f"{tmp_path}/").path == tmp_path


def test_an_existing_bundle_is_refused(tmp_path: Path) -> None:
    root = storage.resolve_root(str(tmp_path))
    storage.create_bundle_dir(root, "web01")
    (tmp_path / "web01" / "vm.json").write_text("{}")
    with pytest.raises(VmbundleError, match="already exists"):
        storage.create_bundle_dir(root, "web01")
    assert (tmp_path / "web01" / "vm.json").exists()


def test_a_missing_root_is_refused(tmp_path: Path) -> None:
    root = storage.resolve_root(str(tmp_path / "nothere"))
    with pytest.raises(VmbundleError, match="does not exist"):
        storage.create_bundle_dir(root, "web01")


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../outside"])
def test_names_outside_the_root_are_refused(tmp_path: Path, name: str) -> None:
    root = storage.resolve_root(str(tmp_path / "root"))
    (tmp_path / "root").mkdir()
    (tmp_path / "outside").mkdir()
    with pytest.raises(VmbundleError, match="not a bundle name"):
        storage.create_bundle_dir(root, name)
    with pytest.raises(VmbundleError, match="not a bundle name"):
        storage.destroy_bundle_dir(root, name)
    assert (tmp_path / "outside").is_dir()


def test_destroy_refuses_what_is_not_a_bundle_directory(tmp_path: Path) -> None:
    root = storage.resolve_root(str(tmp_path))
    with pytest.raises(VmbundleError, match="not a bundle directory"):
        storage.destroy_bundle_dir(root, "nothere")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(VmbundleError, match="not a bundle directory"):
        storage.destroy_bundle_dir(root, "link")
    assert (tmp_path / "elsewhere").is_dir()


# Dataset roots on zfs-fuse.


@pytest.fixture
def root_dataset(zfs_pool: Pool) -> Iterator[str]:
    """A fresh dataset under the test pool to hold bundles."""
    name = f"{zfs_pool.name}/vms{secrets.token_hex(4)}"
    zfs.create(name)
    yield name
    zfs.destroy(name, recursive=True)


@pytest.mark.zfs
def test_a_root_given_by_dataset_name_or_by_mountpoint(zfs_pool: Pool, root_dataset: str) -> None:
    mountpoint = zfs_pool.mountpoint / root_dataset.split("/")[-1]
    expected = storage.BundleRoot(mountpoint, root_dataset)
    assert storage.resolve_root(root_dataset) == expected
    assert storage.resolve_root(str(mountpoint)) == expected
    assert storage.resolve_root(f"{mountpoint}/") == expected


@pytest.mark.zfs
def test_a_plain_directory_inside_a_dataset_is_a_plain_root(zfs_pool: Pool) -> None:
    plain = zfs_pool.mountpoint / f"plain{secrets.token_hex(4)}"
    plain.mkdir()
    try:
        assert storage.resolve_root(str(plain)) == storage.BundleRoot(plain, None)
    finally:
        plain.rmdir()


@pytest.mark.zfs
def test_a_bundle_in_a_dataset_root_is_its_own_dataset(root_dataset: str) -> None:
    root = storage.resolve_root(root_dataset)
    path = storage.create_bundle_dir(root, "web01")
    child = f"{root_dataset}/web01"
    assert path == root.path / "web01"
    assert os.path.ismount(path)
    assert storage.bundle_dataset(path) == child
    (path / "disk0.img").write_bytes(os.urandom(1 << 20))
    storage.destroy_bundle_dir(root, "web01")
    assert child not in _names()
    assert not path.exists()


@pytest.mark.zfs
def test_an_existing_bundle_dataset_is_refused(root_dataset: str) -> None:
    root = storage.resolve_root(root_dataset)
    storage.create_bundle_dir(root, "web01")
    with pytest.raises(VmbundleError, match="already exists"):
        storage.create_bundle_dir(root, "web01")
    # A dataset of that name, mounted elsewhere, is in the way too.
    subprocess.run(["zfs", "create", "-o", "mountpoint=none", f"{root_dataset}/db01"], check=True)
    with pytest.raises(VmbundleError, match=f"dataset {root_dataset}/db01 already exists"):
        storage.create_bundle_dir(root, "db01")
    assert not (root.path / "db01").exists()


@pytest.mark.zfs
def test_destroy_takes_the_snapshots_with_the_bundle(root_dataset: str) -> None:
    root = storage.resolve_root(root_dataset)
    path = storage.create_bundle_dir(root, "web01")
    (path / "vm.json").write_text("{}")
    subprocess.run(["zfs", "snapshot", f"{root_dataset}/web01@before"], check=True)
    (path / "disk0.img").write_bytes(os.urandom(1 << 20))
    storage.destroy_bundle_dir(root, "web01")
    listed = subprocess.run(
        ["zfs", "list", "-H", "-o", "name", "-t", "all", "-r", root_dataset],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert listed == [root_dataset]


@pytest.mark.zfs
def test_a_plain_bundle_directory_in_a_dataset_root_is_removed(root_dataset: str) -> None:
    root = storage.resolve_root(root_dataset)
    (root.path / "old01").mkdir()
    (root.path / "old01" / "vm.json").write_text("{}")
    storage.destroy_bundle_dir(root, "old01")
    assert not (root.path / "old01").exists()


@pytest.mark.zfs
def test_destroy_refuses_a_dataset_that_is_not_the_roots_child(
    tmp_path: Path, root_dataset: str
) -> None:
    stranger = f"{root_dataset}/stranger"
    subprocess.run(
        ["zfs", "create", "-o", f"mountpoint={tmp_path / 'web01'}", stranger], check=True
    )
    with pytest.raises(VmbundleError, match="not a child of the bundle root's dataset"):
        storage.destroy_bundle_dir(storage.resolve_root(str(tmp_path)), "web01")
    assert stranger in _names()
    assert storage.resolve_root(str(tmp_path)) == storage.BundleRoot(tmp_path, None)


@pytest.mark.zfs
def test_unknown_and_unmounted_dataset_roots_are_refused(zfs_pool: Pool, root_dataset: str) -> None:
    with pytest.raises(VmbundleError, match="no such ZFS filesystem"):
        storage.resolve_root(f"{zfs_pool.name}/nothere")
    unmounted = f"{root_dataset}/unmounted"
    subprocess.run(["zfs", "create", "-o", "mountpoint=none", unmounted], check=True)
    with pytest.raises(VmbundleError, match="not mounted"):
        storage.resolve_root(unmounted)
