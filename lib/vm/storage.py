"""Where bundles live: a bundle root, and one directory (or ZFS dataset) per bundle.

A bundle root is configured as an absolute directory or as a ZFS dataset name
("tank/vms", no leading slash). When the root directory is a dataset's
mountpoint, each bundle becomes its own child dataset, so that it can be
snapshotted, sent and destroyed on its own.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import attrs

from vmbundle.adapters import zfs
from vmbundle.errors import VmbundleError


@attrs.frozen
class BundleRoot:
    path: Path
    dataset: str | None  # set when path is the mountpoint of this mounted dataset


def resolve_root(spec: str, *, zfs_binary: str = zfs.DEFAULT_BINARY) -> BundleRoot:
    """The directory and (if any) dataset of a configured bundle root."""
    if spec.startswith("/"):
        path = Path(os.path.normpath(spec))
        if not os.path.ismount(path) or not zfs.available(binary=zfs_binary):
            return BundleRoot(path, None)
        found = zfs.dataset_for_mountpoint(path, binary=zfs_binary)
        return BundleRoot(path, found.name if found else None)
    if not zfs.available(binary=zfs_binary):
        raise VmbundleError(
            f"bundle root {spec!r} is a ZFS dataset name, but zfs does not answer here"
        )
    by_name = {d.name: d for d in zfs.list_filesystems(binary=zfs_binary)}
    dataset = by_name.get(spec.rstrip("/"))
    if dataset is None:
        raise VmbundleError(f"bundle root {spec!r}: no such ZFS filesystem")
    if dataset.mountpoint is None or not os.path.ismount(dataset.mountpoint):
        raise VmbundleError(
            f"bundle root {spec!r}: the dataset is not mounted; mount it (zfs mount {dataset.name})"
        )
    return BundleRoot(dataset.mountpoint, dataset.name)


def _bundle_path(root: BundleRoot, name: str) -> Path:
    # One path component, so that nothing outside the root is ever made or removed.
    if not name or "/" in name or name in (".", ".."):
        raise VmbundleError(f"{name!r}: not a bundle name")
    return root.path / name


def create_bundle_dir(root: BundleRoot, name: str, *, zfs_binary: str = zfs.DEFAULT_BINARY) -> Path:
    """Make the empty directory of a new bundle: a child dataset when the root is one."""
    path = _bundle_path(root, name)
    if not root.path.is_dir():
        raise VmbundleError(f"bundle root {root.path} does not exist or is not a directory")
    if os.path.lexists(path):
        raise VmbundleError(f"{name}: {path} already exists; pick another name or destroy it")
    if root.dataset is None:
        os.mkdir(path, 0o755)
        return path
    child = f"{root.dataset}/{name}"
    if any(d.name == child for d in zfs.list_filesystems(binary=zfs_binary)):
        raise VmbundleError(f"{name}: dataset {child} already exists; pick another name")
    zfs.create(child, binary=zfs_binary)
    if bundle_dataset(path, zfs_binary=zfs_binary) != child:
        # An odd mountpoint inherited from above, say; a bundle must be where it is looked for.
        zfs.destroy(child, recursive=True, binary=zfs_binary)
        raise VmbundleError(
            f"{name}: dataset {child} was not mounted at {path}; check the mountpoint of {root.dataset}"
        )
    return path


def destroy_bundle_dir(
    root: BundleRoot, name: str, *, zfs_binary: str = zfs.DEFAULT_BINARY
) -> None:
    """Remove a bundle directory and everything in it (a dataset with its snapshots)."""
    path = _bundle_path(root, name)
    if path.is_symlink() or not path.is_dir():
        raise VmbundleError(f"{name}: {path} is not a bundle directory")
    dataset = bundle_dataset(path, zfs_binary=zfs_binary)
    if dataset is not None:
        # Only the root's own child: `zfs destroy -r` of a dataset mounted there by
        # some other arrangement could take far more than a bundle with it.
        if root.dataset is None or dataset != f"{root.dataset}/{name}":
            raise VmbundleError(
                f"{name}: {path} is dataset {dataset}, not a child of the bundle root's dataset; "
                "destroy it with zfs yourself"
            )
        zfs.destroy(dataset, recursive=True, binary=zfs_binary)
        return
    if os.path.ismount(path):
        raise VmbundleError(f"{name}: {path} is a mount point; unmount it first")
    shutil.rmtree(path)


def bundle_dataset(path: Path, *, zfs_binary: str = zfs.DEFAULT_BINARY) -> str | None:
    """The dataset a bundle directory is, when it is the mountpoint of a mounted one."""
    if not os.path.ismount(path) or not zfs.available(binary=zfs_binary):
        return None
    found = zfs.dataset_for_mountpoint(path, binary=zfs_binary)
    return found.name if found else None
