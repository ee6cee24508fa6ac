"""Converters between vm.json and other hypervisors' guest descriptions: libvirt
domain XML (libvirt.py) and SmartOS vmadm JSON (vmadm.py).

Pure: no file, tool or host is touched. An export returns the document and a
warning line for each field the other format cannot hold; an import returns the
config, where each disk's image comes from, and a warning line for each field
vmbundle cannot hold. Nothing is dropped without its line. Input that cannot be
converted raises ConversionError with one line naming the guest, the field and
the fix.
"""

from __future__ import annotations

import attrs

from vmbundle.errors import VmbundleError
from vmbundle.vm.model import Cdrom, Disk, MiB, Nic, VmConfig

# Until an imported disk's image is inspected its size is unknown; the operation
# sets the image's real size before anything is checked or made.
UNKNOWN_SIZE = MiB


class ConversionError(VmbundleError):
    """The document cannot become a guest (or a guest cannot become the document)."""


@attrs.frozen
class Exported:
    document: str
    warnings: tuple[str, ...]


@attrs.frozen
class DiskSource:
    """Where an imported disk's image comes from."""

    disk_id: str
    path: str | None
    """The image as the document names it, not yet checked; None: a new empty image."""
    format: str | None
    """The image's format as the document declares it; None: qemu-img finds out."""


@attrs.frozen
class Imported:
    config: VmConfig
    """Disks are named <id>.qcow2 in the new bundle; a disk with a source has UNKNOWN_SIZE."""
    sources: tuple[DiskSource, ...]
    warnings: tuple[str, ...]


def devices(cfg: VmConfig) -> list[Disk | Cdrom | Nic]:
    """Every device with a boot index: disks, CD-ROMs, NICs."""
    return [*cfg.disks, *cfg.cdroms, *cfg.nics]


def field_default(cls: type, name: str) -> object:
    """A model field's default: what an import gives a field its document lacks."""
    default = attrs.fields_dict(cls)[name].default
    factory = getattr(default, "factory", None)
    return factory() if callable(factory) else default
