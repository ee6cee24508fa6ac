"""create and destroy: a bundle's whole life on disk."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import attrs

from vmbundle.adapters import qemu_img, smf
from vmbundle.errors import GuestRunning, ToolMissing, UsageError, VmbundleError, faults_of
from vmbundle.guest import prepare
from vmbundle.guest.process import running_pid
from vmbundle.guest.rundir import RunPaths
from vmbundle.ops import disks, lifecycle
from vmbundle.ops.lifecycle import Imported
from vmbundle.settings import HostSettings
from vmbundle.vm import bundle, codec, storage
from vmbundle.vm.bundle import Bundle
from vmbundle.vm.checks import check_document
from vmbundle.vm.model import VmConfig


@attrs.frozen
class Created:
    bundle: Bundle
    dataset: str | None
    """The bundle's own ZFS dataset; None for a plain directory."""
    imported: Imported | None


def with_boot_order(cfg: VmConfig, order: list[str] | None) -> VmConfig:
    """A new guest's config with its boot order (device ids, first first; default:
    the disks, then the CD-ROMs) as boot indexes, and a MAC for every NIC."""
    if order is None:
        order = [d.id for d in cfg.disks] + [c.id for c in cfg.cdroms]
    unknown = [x for x in order if x not in cfg.device_ids()]
    if unknown:
        raise UsageError(
            f"{cfg.name}: --boot: no device {unknown[0]!r}; devices: {', '.join(cfg.device_ids())}"
        )
    rank = {dev: i for i, dev in enumerate(order)}
    return prepare.with_macs(
        attrs.evolve(
            cfg,
            disks=tuple(attrs.evolve(d, boot_index=rank.get(d.id)) for d in cfg.disks),
            cdroms=tuple(attrs.evolve(c, boot_index=rank.get(c.id)) for c in cfg.cdroms),
            nics=tuple(attrs.evolve(n, boot_index=rank.get(n.id)) for n in cfg.nics),
        )
    )


def _root(settings: HostSettings, given: str | None) -> storage.BundleRoot:
    spec = given or (settings.bundle_roots[0] if settings.bundle_roots else None)
    if spec is None:
        raise UsageError(
            "no bundle root: give --root, or set bundles.roots in the host configuration"
        )
    return storage.resolve_root(spec)


@attrs.frozen
class ImageSource:
    """An image a new disk is copied from (converted to the disk's format)."""

    path: Path
    format: str | None  # None: as qemu-img finds it
    progress: disks.Progress | None = None


def create(
    settings: HostSettings,
    cfg: VmConfig,
    root_spec: str | None,
    *,
    import_instance: bool,
    images: Mapping[str, ImageSource] | None = None,
) -> Created:
    """Make the bundle of cfg (its directory or dataset, its disks, vm.json), and
    with import_instance its disabled SMF instance. A disk named in images (by id)
    is a copy of that image, the others are new and empty. Everything is checked
    before anything is made; a failure while making it takes away what was made."""
    images = images or {}
    root = _root(settings, root_spec)
    # Everything `validate` checks, but the disks, before anything is made.
    cfg = check_document(codec.unstructure(cfg), root.path / cfg.name, settings, disks_made=False)
    prepare.check_runnable(Bundle(root.path / cfg.name, cfg), settings)
    if import_instance:
        # Before anything is made, so a taken name changes nothing.
        lifecycle.refuse_imported(cfg.name)
    with faults_of(cfg.name):
        path = storage.create_bundle_dir(root, cfg.name)
        try:
            made_disks = []
            for disk in cfg.disks:
                image = images.get(disk.id)
                if image is None:
                    qemu_img.create(
                        path / disk.file, disk.format, disk.size, binary=settings.qemu_img
                    )
                    made_disks.append(disk)
                    continue
                size = disks.make_image(
                    path / disk.file,
                    image.path,
                    None,
                    disk.format,
                    settings,
                    image.progress,
                    source_format=image.format,
                )
                # A copy is as large as its image, whatever the config guessed.
                made_disks.append(attrs.evolve(disk, size=size))
            cfg = attrs.evolve(cfg, disks=tuple(made_disks))
            bundle.save(path, cfg)
            made = bundle.load(path, settings)
        except BaseException:
            storage.destroy_bundle_dir(root, cfg.name)
            raise
    # A failed import keeps the bundle: it is whole, and vmbundle import retries.
    imported = lifecycle.add_instance(made) if import_instance else None
    dataset = f"{root.dataset}/{cfg.name}" if root.dataset else None
    return Created(made, dataset, imported)


def _refuse_imported_bundle(path: Path) -> None:
    """An SMF instance that names the bundle would be left pointing at nothing."""
    try:
        named = smf.bundle_paths()
    except ToolMissing:
        return  # no svcprop: a host without SMF has no instances
    for fmri, value in named.items():
        if value == str(path):
            raise VmbundleError(
                f"{path.name}: {fmri} names this bundle; remove the instance first: "
                f"vmbundle forget {smf.instance_name(fmri)}"
            )


def destroy(settings: HostSettings, guest: str, *, confirmed: bool) -> str:
    """Delete a stopped guest's bundle and every disk in it; the guest's name."""
    path = bundle.locate(settings, guest)
    name = path.name
    if not confirmed:
        raise UsageError(f"{name}: destroy deletes the bundle and every disk in it; add --yes")
    pid = running_pid(RunPaths.for_guest(settings.run_dir, name))
    if pid is not None:
        raise GuestRunning(f"{name}: running (QEMU pid {pid}); stop it first")
    _refuse_imported_bundle(path)
    with faults_of(name):
        storage.destroy_bundle_dir(storage.resolve_root(str(path.parent)), name)
    return name
