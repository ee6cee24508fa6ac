"""export and import-config: a guest as libvirt domain XML or SmartOS vmadm JSON,
and a new bundle from either.

An import reads each disk image from where the document says (after checking
that it is an image file or a block device), copies or converts it with
qemu-img into the new bundle under a name of vmbundle's own choosing, keeps the
MACs, and finds the ISOs in the configured ISO directories. Nothing from the
document decides where anything is written. Everything is checked before the
bundle is made, and a failure while making it takes the bundle away again.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

import attrs

from vmbundle.adapters import qemu_img
from vmbundle.convert import ConversionError, Exported, Imported
from vmbundle.convert import libvirt as libvirt_format
from vmbundle.convert import vmadm as vmadm_format
from vmbundle.errors import ToolError, UsageError, VmbundleError
from vmbundle.guest import prepare
from vmbundle.ops import create
from vmbundle.ops.create import Created, ImageSource
from vmbundle.ops.disks import Progress
from vmbundle.settings import HostSettings
from vmbundle.vm import bundle
from vmbundle.vm.model import NAME_PATTERN, KiB, MiB, VmConfig

FORMATS = ("libvirt", "vmadm")
MAX_DOCUMENT_BYTES = 1 << 20
# A format name as qemu-img -f takes it ("raw", "qcow2", "vmdk"): never an option.
_IMAGE_FORMAT = re.compile(r"[a-z][a-z0-9_-]{0,15}")

ProgressFor = Callable[[str, Path], Progress | None]
"""Given a disk id and its source, the callback for that copy's progress (or None)."""


@attrs.frozen
class ConfigImported:
    created: Created
    warnings: tuple[str, ...]


def export(settings: HostSettings, guest: str, fmt: str) -> Exported:
    """The guest's configuration in fmt, with a warning for each field fmt cannot hold."""
    b = bundle.load(bundle.locate(settings, guest), settings)
    if fmt == "libvirt":
        accel = prepare.choose_accel(settings.accelerator)
        return libvirt_format.export(b.config, b.path, "kvm" if accel == "kvm" else "qemu")
    if fmt == "vmadm":
        return vmadm_format.export(b.config, b.path)
    raise UsageError(f"{fmt!r}: not a format vmbundle exports ({', '.join(FORMATS)})")


def import_config(
    settings: HostSettings,
    document: Path,
    fmt: str,
    name: str,
    root_spec: str | None,
    progress_for: ProgressFor | None = None,
) -> ConfigImported:
    """A new bundle named name from a libvirt or vmadm document."""
    if re.fullmatch(NAME_PATTERN, name) is None:
        raise UsageError(
            f"{name!r}: not a guest name (letters, digits, _ and -, first a letter, at most 63)"
        )
    if fmt not in FORMATS:
        raise UsageError(f"{fmt!r}: not a format vmbundle imports ({', '.join(FORMATS)})")
    data = _read_document(name, document)
    parse = libvirt_format.parse if fmt == "libvirt" else vmadm_format.parse
    converted = parse(data, name)
    warnings = list(converted.warnings)
    cfg = _with_isos(settings, converted.config, warnings)
    cfg, images = _with_images(settings, cfg, converted, document.parent, progress_for)
    cfg = prepare.with_macs(cfg)  # MACs the document gives are kept; the others made once
    created = create.create(settings, cfg, root_spec, import_instance=False, images=images)
    return ConfigImported(created, tuple(warnings))


def _read_document(name: str, document: Path) -> bytes:
    try:
        with open(document, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise VmbundleError(f"{name}: {document} is not a file; give the exported document")
            data = f.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise VmbundleError(
            f"{name}: cannot read {document}: {exc.strerror}; give the exported document"
        ) from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise VmbundleError(f"{name}: {document} is larger than {MAX_DOCUMENT_BYTES} bytes")
    return data


def _with_isos(settings: HostSettings, cfg: VmConfig, warnings: list[str]) -> VmConfig:
    """Each CD-ROM's ISO as a path in a configured ISO directory: the one named, if
    it is in one, else the file of the same name in the first directory that has it."""
    dirs = [Path(os.path.realpath(d)) for d in settings.iso_dirs]
    cdroms = []
    for i, cd in enumerate(cfg.cdroms):
        if cd.iso is None:
            cdroms.append(cd)
            continue
        given = Path(cd.iso)
        real = Path(os.path.realpath(given)) if given.is_absolute() else None
        if real is not None and real.is_file() and any(real.is_relative_to(d) for d in dirs):
            cdroms.append(cd)
            continue
        found = next(
            (d / given.name for d in dirs if given.name and (d / given.name).is_file()), None
        )
        if found is None:
            where = ", ".join(map(str, settings.iso_dirs)) or "none configured"
            raise ConversionError(
                f"{cfg.name}: cdroms[{i}] ({cd.id}): the ISO {cd.iso} is in no ISO directory "
                f"({where}); copy {given.name} into one"
            )
        warnings.append(f"{cfg.name}: cdroms[{i}] ({cd.id}): {cd.iso} taken from {found}")
        cdroms.append(attrs.evolve(cd, iso=str(found)))
    return attrs.evolve(cfg, cdroms=tuple(cdroms))


def _with_images(
    settings: HostSettings,
    cfg: VmConfig,
    converted: Imported,
    base: Path,
    progress_for: ProgressFor | None,
) -> tuple[VmConfig, dict[str, ImageSource]]:
    """cfg with each copied disk's real size, and the images to copy, each checked."""
    sizes: dict[str, int] = {}
    images: dict[str, ImageSource] = {}
    index = {d.id: i for i, d in enumerate(cfg.disks)}
    for source in converted.sources:
        if source.path is None:
            continue  # a new empty disk of the size the document gives
        where = f"{cfg.name}: disks[{index[source.disk_id]}] ({source.disk_id})"
        path = Path(os.path.abspath(base / source.path))
        _check_source(where, path)
        fmt = source.format
        if fmt is not None and _IMAGE_FORMAT.fullmatch(fmt) is None:
            raise ConversionError(f"{where}: {fmt!r} is not an image format; correct it")
        try:
            found = qemu_img.info(path, binary=settings.qemu_img)
        except ToolError as exc:
            raise ConversionError(
                f"{where}: qemu-img cannot read {path}: {exc.stderr or exc}"
            ) from None
        if fmt is not None and fmt != found.format and fmt != "raw":
            raise ConversionError(
                f"{where}: {path} is {found.format}, but the document says {fmt}; correct it"
            )
        if found.virtual_size < MiB or found.virtual_size % KiB:
            raise ConversionError(
                f"{where}: {path} holds {found.virtual_size} bytes, not a disk of whole KiB "
                "and at least 1M; is it the right file?"
            )
        # An image declared raw is read as raw, whatever its first bytes look like
        # (as the guest saw it); the copy's own size goes into vm.json.
        sizes[source.disk_id] = found.virtual_size
        images[source.disk_id] = ImageSource(
            path, fmt or found.format, progress_for(source.disk_id, path) if progress_for else None
        )
    disks = tuple(attrs.evolve(d, size=sizes.get(d.id, d.size)) for d in cfg.disks)
    return attrs.evolve(cfg, disks=disks), images


def _check_source(where: str, path: Path) -> None:
    """An image to read: a regular file or a block device (a zvol), nothing else."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ConversionError(
            f"{where}: the image {path} does not exist; correct its path in the document"
        ) from None
    except OSError as exc:
        raise ConversionError(f"{where}: cannot read the image {path}: {exc.strerror}") from None
    # illumos zvols are read through /dev/zvol/rdsk, character devices.
    zvol = stat.S_ISCHR(st.st_mode) and str(path).startswith("/dev/zvol/")
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode) or zvol):
        raise ConversionError(
            f"{where}: {path} is not an image file or a block device; name the image itself"
        )
    if not os.access(path, os.R_OK):
        raise ConversionError(f"{where}: the image {path} cannot be read (permission denied)")
