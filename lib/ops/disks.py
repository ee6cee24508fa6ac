"""disk add, remove and resize, each under the bundle's lock from the choice of id
and file to vm.json written back, so disks added at once each get their own."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import attrs

from vmbundle import locks
from vmbundle.adapters import qemu_img
from vmbundle.errors import GuestRunning, UsageError, VmbundleError, faults_of
from vmbundle.guest import boot_record
from vmbundle.guest.process import running_pid
from vmbundle.guest.rundir import RunPaths
from vmbundle.ops import edit
from vmbundle.ops.edit import Refreshed
from vmbundle.qemu import profile as qemu_profile
from vmbundle.qemu import qmp
from vmbundle.settings import HostSettings
from vmbundle.units import format_size
from vmbundle.vm import bundle, codec
from vmbundle.vm.bundle import Bundle
from vmbundle.vm.checks import check_document
from vmbundle.vm.model import Disk

# Called with a rising percentage while an image is copied in.
Progress = qemu_img.ProgressCallback


@attrs.frozen
class DiskAdded:
    name: str
    disk: Disk
    refreshed: Refreshed | None = None
    """The running guest's refresh, which attaches the disk live."""


@attrs.frozen
class DiskRemoved:
    name: str
    file: str
    disk: Disk | None
    """The disk taken out of vm.json; None when only a left image was deleted."""
    refreshed: Refreshed | None
    deleted: bool
    """Whether the image went too (--delete, once no QEMU has it open)."""


@attrs.frozen
class DiskResized:
    name: str
    disk: str
    size: int
    how: str
    """"live" (through QMP, the guest sees it at once), "offline", or "unchanged"."""


def make_image(
    target: Path,
    source: Path | None,
    size: int | None,
    fmt: str,
    settings: HostSettings,
    progress: Progress | None,
    source_format: str | None = None,
) -> int:
    """Make the disk's image at target, empty or a copy of source (read as
    source_format, else as qemu-img finds it); its virtual size."""
    if source is None:
        assert size is not None
        qemu_img.create(target, fmt, size, binary=settings.qemu_img)
        return size
    if source_format is None:
        source_format = qemu_img.info(source, binary=settings.qemu_img).format
    qemu_img.convert(source, source_format, target, fmt, progress, binary=settings.qemu_img)
    if size is not None and size != qemu_img.info(target, binary=settings.qemu_img).virtual_size:
        qemu_img.resize(target, size, fmt, binary=settings.qemu_img)
    return qemu_img.info(target, binary=settings.qemu_img).virtual_size


def add(
    settings: HostSettings,
    guest: str,
    *,
    size: int | None,
    source: Path | None,
    fmt: str,
    bus: str,
    cache: str,
    progress: Progress | None = None,
) -> DiskAdded:
    """A new disk: an empty image of size, or a copy of source (resized to size if given)."""
    path = bundle.locate(settings, guest)
    name = path.name
    if source is None and size is None:
        raise UsageError(f"{name}: give a SIZE, or --from IMAGE")
    with locks.bundle(settings.run_dir, name), faults_of(name):
        b = bundle.load(path, settings)
        disk_id = _free_disk_id(b)
        file = f"{disk_id}.{'qcow2' if fmt == 'qcow2' else 'img'}"
        target = b.disk_path(file)
        if os.path.lexists(target):
            raise VmbundleError(
                f"{name}: {file} already exists in the bundle; remove it or pick another"
            )
        new = Disk(id=disk_id, file=file, size=size or 1 << 20, format=fmt, bus=bus, cache=cache)
        # A bad --bus, --format or --cache is refused before any image is made.
        check_document(_with_disk(b, new), path, settings, disks_made=False)
        try:
            made = make_image(target, source, size, fmt, settings, progress)
            new = attrs.evolve(new, size=made)
            cfg = check_document(_with_disk(b, new), path, settings)
            bundle.save(path, cfg)
        except BaseException:
            _remove(target)
            raise
    return DiskAdded(name, new, edit.refresh_if_running(settings, Bundle(path, cfg)))


def _free_disk_id(b: Bundle) -> str:
    """The first diskN free in vm.json whose image file is free too: a disk taken
    out of vm.json may keep its image in the bundle (disk remove without --delete)."""
    n = 0
    while True:
        disk_id = f"disk{n}"
        taken = disk_id in b.config.device_ids() or any(
            os.path.lexists(b.disk_path(f"{disk_id}.{ext}")) for ext in ("qcow2", "img")
        )
        if not taken:
            return disk_id
        n += 1


IMAGE_SUFFIXES = (".qcow2", ".img", ".raw")


def remove(settings: HostSettings, guest: str, disk: str, *, delete: bool) -> DiskRemoved:
    """Take a disk (by id) out of vm.json, a running guest letting go of it live,
    and with delete its image too, unless a running QEMU still has it open.
    With delete, disk may also name an image left in the bundle by an earlier
    remove (like disk1.qcow2), which then goes."""
    path = bundle.locate(settings, guest)
    name = path.name
    with locks.bundle(settings.run_dir, name), faults_of(name):
        b = bundle.load(path, settings)
        found = next((d for d in b.config.disks if d.id == disk), None)
        if found is None:
            file = _left_image(b, disk, delete)
            if _attached(settings, name, file):
                raise GuestRunning(
                    f"{name}: {file} is still attached to the running guest; delete it once "
                    f"the guest has let go of it (vmbundle status {name})"
                )
            b.disk_path(file).unlink()
            return DiskRemoved(name, file, None, None, deleted=True)
        doc = codec.unstructure(
            attrs.evolve(b.config, disks=tuple(d for d in b.config.disks if d.id != disk))
        )
        cfg = check_document(doc, path, settings)
        bundle.save(path, cfg)
    refreshed = edit.refresh_if_running(settings, Bundle(path, cfg))
    deleted = False
    if delete and not _attached(settings, name, found.file):
        with locks.bundle(settings.run_dir, name), faults_of(name):
            b.disk_path(found.file).unlink(missing_ok=True)
        deleted = True
    return DiskRemoved(name, found.file, found, refreshed, deleted)


def _left_image(b: Bundle, file: str, delete: bool) -> str:
    """file, checked to be an image in the bundle that vm.json no longer names."""
    ids = ", ".join(d.id for d in b.config.disks) or "none"
    leftover = (
        delete
        and file.endswith(IMAGE_SUFFIXES)
        and "/" not in file
        and not file.startswith(".")
        and b.disk_path(file).is_file()
        and not b.disk_path(file).is_symlink()
        and not any(d.file == file for d in b.config.disks)
    )
    if not leftover:
        raise UsageError(
            f"{b.name}: no disk {file!r}; disks: {ids} (with --delete, also an image the "
            "bundle keeps from an earlier remove, like disk1.qcow2)"
        )
    return file


def _attached(settings: HostSettings, name: str, file: str) -> bool:
    run = RunPaths.for_guest(settings.run_dir, name)
    record = boot_record.read(run)
    if running_pid(run) is None:
        return False
    # No record (a boot vmbundle did not write): assume QEMU has every image open.
    return record is None or any(d.file == file for d in record.config.disks)


def _with_disk(b: Bundle, disk: Disk) -> dict[str, object]:
    doc: dict[str, object] = codec.unstructure(
        attrs.evolve(b.config, disks=(*b.config.disks, disk))
    )
    return doc


def _remove(target: Path) -> None:
    # A half-made image goes; on a file system gone read-only it cannot, and the
    # fault that stopped the add is the one to report.
    with contextlib.suppress(OSError):
        target.unlink(missing_ok=True)


def resize(
    settings: HostSettings, guest: str, disk_id: str, size: int, *, allow_shrink: bool
) -> DiskResized:
    """Set a disk's size: live through QMP when the guest runs, else with qemu-img."""
    path = bundle.locate(settings, guest)
    name = path.name
    with locks.bundle(settings.run_dir, name), faults_of(name):
        b = bundle.load(path, settings)
        index = next((i for i, d in enumerate(b.config.disks) if d.id == disk_id), None)
        if index is None:
            ids = ", ".join(d.id for d in b.config.disks) or "none"
            raise UsageError(f"{name}: no disk {disk_id!r}; disks: {ids}")
        disk = b.config.disks[index]
        if size < disk.size and not allow_shrink:
            raise UsageError(
                f"{name}: {disk.id}: {format_size(size)} is smaller than {format_size(disk.size)}; "
                "shrinking loses what the guest keeps at the end of the disk: add --allow-shrink"
            )
        if size == disk.size:
            return DiskResized(name, disk.id, size, "unchanged")
        disks = list(b.config.disks)
        disks[index] = attrs.evolve(disk, size=size)
        new_cfg = attrs.evolve(b.config, disks=tuple(disks))
        run = RunPaths.for_guest(settings.run_dir, name)
        if running_pid(run) is not None:
            # A running QEMU holds the image's write lock; the resize goes through it,
            # and the guest sees the new capacity at once.
            profile = qemu_profile.probe(settings.qemu_binary, settings.run_dir)
            if profile.name != "modern":
                raise GuestRunning(
                    f"{name}: this QEMU cannot resize a disk live; stop the guest first"
                )
            _resize_live(run, disk.id, size)
            how = "live"
        else:
            qemu_img.resize(
                b.disk_path(disk.file),
                size,
                disk.format,
                allow_shrink=allow_shrink,
                binary=settings.qemu_img,
            )
            how = "offline"
        cfg = check_document(codec.unstructure(new_cfg), path, settings)
        bundle.save(path, cfg)
    return DiskResized(name, disk.id, size, how)


def _resize_live(run: RunPaths, disk_id: str, size: int) -> None:
    # A boot's disk is a -drive backend named drive-ID; one attached live is a
    # block node of that name, which block_resize takes as node-name.
    drive = f"drive-{disk_id}"
    try:
        qmp.execute(run, "block_resize", {"device": drive, "size": size})
    except qmp.QmpError as exc:
        try:
            qmp.execute(run, "block_resize", {"node-name": drive, "size": size})
        except qmp.QmpError:
            raise exc from None
