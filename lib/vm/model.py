"""The guest's configuration, as `vm.json` (schema version 1) holds it.

Each field declares its JSON kind and a line of documentation (vmbundle.vm.fields);
vmbundle.vm.codec loads, checks and writes these classes, and `vmbundle schema`
prints them as a JSON Schema. Sizes are held in bytes.
"""

from __future__ import annotations

import attrs

from vmbundle.vm.fields import (
    Bool,
    Choice,
    Int,
    ListOf,
    Nullable,
    Obj,
    Size,
    Str,
    spec,
)

SCHEMA_VERSION = 1

KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40

# An SMF instance name, so the guest's name can be its instance's name as it is.
NAME_PATTERN = r"[A-Za-z][A-Za-z0-9_-]{0,62}"
DEVICE_ID = Str(
    r"[a-z][a-z0-9_-]{0,30}", 31, "an id like disk0 (a-z, 0-9, _ and -, first a letter)"
)
BOOT_INDEX = Nullable(Int(0, 99))

DISK_FORMATS = ("qcow2", "raw")
DISK_BUSES = ("virtio", "scsi", "sata", "ide")
CDROM_BUSES = ("ide", "sata", "scsi")
CACHE_MODES = ("writeback", "none", "writethrough", "directsync", "unsafe")
NIC_MODELS = ("virtio", "e1000")
NIC_BACKENDS = ("user", "vnic", "tap", "bridge")


@attrs.frozen
class Disk:
    id: str = spec(DEVICE_ID, "Device id, unique among the guest's disks, CD-ROMs and NICs.")
    file: str = spec(
        Str(hint="a path inside the bundle, like disk0.qcow2"),
        "Image file, relative to the bundle.",
    )
    size: int = spec(Size(1 * MiB, 64 * TiB), "Virtual size of the image, like 20G.")
    format: str = spec(Choice(DISK_FORMATS), "Image format.", default="qcow2")
    bus: str = spec(Choice(DISK_BUSES), "How the guest sees the disk.", default="virtio")
    cache: str = spec(
        Choice(CACHE_MODES),
        "QEMU cache mode. writeback (QEMU's own default) honours the guest's flushes.",
        default="writeback",
    )
    boot_index: int | None = spec(
        BOOT_INDEX, "Place in the boot order, lowest first.", default=None
    )


@attrs.frozen
class Cdrom:
    id: str = spec(DEVICE_ID, "Device id, unique among the guest's disks, CD-ROMs and NICs.")
    iso: str | None = spec(
        Nullable(Str(max_len=1024, hint="an ISO path")),
        "ISO image: relative to the bundle, or an absolute path in a configured ISO "
        "directory; null for an empty drive.",
        default=None,
    )
    bus: str = spec(Choice(CDROM_BUSES), "How the guest sees the drive.", default="ide")
    boot_index: int | None = spec(
        BOOT_INDEX, "Place in the boot order, lowest first.", default=None
    )


@attrs.frozen
class NicBackend:
    type: str = spec(
        Choice(NIC_BACKENDS),
        "user: QEMU's user-mode network; vnic: an illumos VNIC (illumos KVM QEMU); "
        "tap: a Linux tap device; bridge: a Linux bridge through qemu-bridge-helper.",
    )
    name: str | None = spec(
        Nullable(Str(r"[A-Za-z][A-Za-z0-9_.-]{0,30}", 31, "a link name like vnic0")),
        "The VNIC, tap or bridge; null for user.",
        default=None,
    )


@attrs.frozen
class Nic:
    id: str = spec(DEVICE_ID, "Device id, unique among the guest's disks, CD-ROMs and NICs.")
    model: str = spec(Choice(NIC_MODELS), "Emulated network card.", default="virtio")
    mac: str | None = spec(
        Nullable(
            Str(
                r"[0-9a-f]{2}(:[0-9a-f]{2}){5}",
                17,
                "a MAC address like 52:54:00:12:34:56 (lower case)",
            )
        ),
        "MAC address; generated once when missing, then kept.",
        default=None,
    )
    backend: NicBackend = spec(
        Obj(NicBackend), "Where the NIC's traffic goes.", factory=lambda: NicBackend("user")
    )
    boot_index: int | None = spec(
        BOOT_INDEX, "Place in the boot order (PXE), lowest first.", default=None
    )


@attrs.frozen
class Vnc:
    enabled: bool = spec(Bool(), "Give the guest a VNC display.", default=True)
    password: str | None = spec(
        Nullable(Str(r"[!-~]{1,8}", 8, "1 to 8 printable characters (VNC uses only 8)")),
        "VNC password for desktop clients; null for none.",
        default=None,
    )


@attrs.frozen
class VmConfig:
    schema_version: int = spec(
        Int(SCHEMA_VERSION, SCHEMA_VERSION), "Version of this file's layout."
    )
    name: str = spec(
        Str(
            NAME_PATTERN,
            63,
            "a name like web01 (letters, digits, _ and -, first a letter, at most 63)",
        ),
        "The guest's name: its bundle's name and its SMF instance's name.",
    )
    uuid: str = spec(
        Str(
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", 36, "a lower-case UUID"
        ),
        "The guest's identity, given to it through SMBIOS.",
    )
    ram: int = spec(Size(32 * MiB, 4 * TiB, MiB), "Guest memory, like 2G.")
    vcpus: int = spec(Int(1, 255), "Virtual CPUs.")
    max_vcpus: int | None = spec(
        Nullable(Int(1, 255)),
        "Most vCPUs a refresh can give the running guest (QEMU's maxcpus); null: twice "
        "vcpus, within the host's CPUs.",
        default=None,
    )
    max_ram: int | None = spec(
        Nullable(Size(32 * MiB, 4 * TiB, MiB)),
        "Most memory a refresh can give the running guest (QEMU's maxmem); null: twice "
        "ram, at most 512G.",
        default=None,
    )
    description: str = spec(Str(max_len=1024), "Free text for the operator.", default="")
    machine: str = spec(
        Str(r"pc|q35|pc-i440fx-[0-9.]+|pc-q35-[0-9.]+", 32, "pc, q35 or a versioned pc/q35 type"),
        "QEMU machine type.",
        default="pc",
    )
    cpu: str = spec(
        Str(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", 64, "a QEMU CPU model like qemu64"),
        "QEMU CPU model. host works only where the host's CPU allows it.",
        default="qemu64",
    )
    disks: tuple[Disk, ...] = spec(
        ListOf(Disk, 16), "Disks, in the order the guest sees them.", default=()
    )
    cdroms: tuple[Cdrom, ...] = spec(ListOf(Cdrom, 4), "CD-ROM drives.", default=())
    nics: tuple[Nic, ...] = spec(ListOf(Nic, 8), "Network cards.", default=())
    boot_once: str | None = spec(
        Nullable(DEVICE_ID),
        "A device to boot from first on the next start only, then forgotten.",
        default=None,
    )
    vnc: Vnc = spec(Obj(Vnc), "The guest's display.", factory=Vnc)
    stop_timeout: int = spec(
        Int(1, 600),
        "Seconds to wait for the guest to power off after the ACPI power button before QEMU is told to quit.",
        default=120,
    )
    on_poweroff: str = spec(
        Choice(("disable", "restart")),
        "When the guest powers itself off: disable its SMF instance (temporarily), or start it again.",
        default="disable",
    )
    on_reboot: str = spec(
        Choice(("restart", "disable")),
        "When the guest reboots: let it, or treat it as a power-off.",
        default="restart",
    )
    on_crash: str = spec(
        Choice(("restart", "disable", "preserve")),
        "When the guest panics: start it again, disable it, or keep it paused for inspection.",
        default="restart",
    )
    autostart: bool = spec(Bool(), "Start the guest when the host boots.", default=False)
    unplug_timeout: int = spec(
        Int(1, 600),
        "Seconds a refresh waits for the guest to let go of a disk, NIC or memory it takes "
        "out; past that the removal stays pending.",
        default=20,
    )

    def device_ids(self) -> list[str]:
        return [d.id for d in self.disks] + [c.id for c in self.cdroms] + [n.id for n in self.nics]

    def free_device_id(self, prefix: str) -> str:
        """The first free id like disk2 or cd1 (ids are shared by disks, CD-ROMs and NICs)."""
        taken = set(self.device_ids())
        n = 0
        while f"{prefix}{n}" in taken:
            n += 1
        return f"{prefix}{n}"
