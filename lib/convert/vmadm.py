"""vm.json <-> SmartOS vmadm JSON for a KVM guest (brand "kvm", vmadm(8)).

What maps: uuid, alias (the name), ram and disk sizes (MiB), vcpus, cpu_type
(qemu64 or host), autoboot, each disk (path, model, the boot flag) and CD-ROM
(media cdrom), each NIC (mac, model, interface netN as its id), the boot order
as vmadm's "order=cd,once=d" (device classes: c disks, d CD-ROMs, n NICs; the
boot disk first among the disks), vnc_port (-1: no display) and vnc_password.

vmadm describes zvols and nic tags of a SmartOS host: a disk's pool, compression
or block size, a NIC's tag, addresses and VLAN have no vmbundle field, and
vmbundle's network backends, cache modes, machine type and power policies none
in vmadm; each is a warning line. The fields `vmadm get` reports about one
host's running instance (state, pid, zone paths, timestamps) are not the guest's
configuration and are read without a word.
"""

from __future__ import annotations

import json
import re
import uuid as uuid_mod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from vmbundle.convert import (
    UNKNOWN_SIZE,
    ConversionError,
    DiskSource,
    Exported,
    Imported,
    devices,
    field_default,
)
from vmbundle.vm import codec
from vmbundle.vm.model import Cdrom, Disk, MiB, Nic, NicBackend, VmConfig, Vnc

FORMAT = "vmadm"
MAX_BYTES = 1 << 20
DISK_MODELS = ("virtio", "ide", "scsi")
NIC_MODELS = ("virtio", "e1000")
CPU_TYPES = ("qemu64", "host")
CLASS_OF = {"disk": "c", "cdrom": "d", "nic": "n"}

# What `vmadm get` says of one host's instance of the guest, not of the guest.
_INSTANCE_STATE = frozenset(
    {
        "type", "state", "zone_state", "zoneid", "zonename", "zonepath", "pid",
        "create_timestamp", "last_modified", "server_uuid", "transition_expire",
        "transition_to", "exit_status", "exit_timestamp", "boot_timestamp",
        "platform_buildstamp", "zfs_filesystem", "zpool", "image_uuid",
    }
)  # fmt: skip
_TOP_READ = frozenset(
    {
        "brand", "alias", "uuid", "ram", "vcpus", "cpu_type", "autoboot", "boot",
        "vnc_port", "vnc_password", "disks", "nics", "disk_driver", "nic_driver",
    }
)  # fmt: skip
_DISK_READ = frozenset({"media", "path", "model", "boot", "size"})
_NIC_READ = frozenset({"mac", "model", "interface"})


# --- export -----------------------------------------------------------------------


def _json(value: object) -> str:
    return json.dumps(value)


def export(cfg: VmConfig, bundle: Path) -> Exported:
    """cfg as a vmadm create payload, its files named by absolute paths in the
    bundle; a warning for each field vmadm has no place for."""
    warnings: list[str] = []

    def left_out(field: str, value: object) -> None:
        warnings.append(f"{cfg.name}: vmadm has no field for {field}={value}; left out")

    doc: dict[str, Any] = {
        "brand": "kvm",
        "alias": cfg.name,
        "uuid": cfg.uuid,
        "ram": -(-cfg.ram // MiB),
        "vcpus": cfg.vcpus,
    }
    if cfg.cpu in CPU_TYPES:
        doc["cpu_type"] = cfg.cpu
    else:
        left_out("cpu", cfg.cpu)
    doc["autoboot"] = cfg.autostart
    boot_disk = min(
        (d for d in cfg.disks if d.boot_index is not None),
        key=lambda d: d.boot_index or 0,
        default=None,
    )
    disks: list[dict[str, Any]] = []
    for i, disk in enumerate(cfg.disks):
        entry: dict[str, Any] = {"media": "disk", "path": str(bundle / disk.file)}
        entry["size"] = -(-disk.size // MiB)
        if disk.bus in DISK_MODELS:
            entry["model"] = disk.bus
        else:
            left_out(f"disks[{i}].bus", disk.bus)
        if disk is boot_disk:
            entry["boot"] = True
        if disk.cache != field_default(Disk, "cache"):
            left_out(f"disks[{i}].cache", disk.cache)
        disks.append(entry)
    for i, cd in enumerate(cfg.cdroms):
        if cd.iso is None:
            left_out(f"cdroms[{i}]", "an empty drive")
            continue
        iso = cd.iso if cd.iso.startswith("/") else str(bundle / cd.iso)
        entry = {"media": "cdrom", "path": iso}
        if cd.bus in DISK_MODELS:
            entry["model"] = cd.bus
        else:
            left_out(f"cdroms[{i}].bus", cd.bus)
        disks.append(entry)
    doc["disks"] = disks
    nics = []
    for i, nic in enumerate(cfg.nics):
        entry = {"interface": nic.id, "model": nic.model}
        if nic.mac is not None:
            entry["mac"] = nic.mac
        b = nic.backend
        left_out(f"nics[{i}].backend", f"{b.type}:{b.name}" if b.name else b.type)
        nics.append(entry)
    doc["nics"] = nics
    order, once = _boot_string(cfg, boot_disk)
    doc["boot"] = f"order={order}" + (f",once={once}" if once else "")
    doc["vnc_port"] = 0 if cfg.vnc.enabled else -1
    if cfg.vnc.password is not None:
        doc["vnc_password"] = cfg.vnc.password

    # What vmadm cannot say exactly: compare with what an import of doc gives back.
    back = _boot_indexes(cfg, order, [d is boot_disk for d in cfg.disks])
    if back != {d.id: d.boot_index for d in devices(cfg)}:
        left_out("the exact boot order (boot_index)", f"exported as boot={doc['boot']}")
    if cfg.boot_once is not None and _once_device(cfg, once, boot_disk) != cfg.boot_once:
        left_out("boot_once", cfg.boot_once)
    for i, disk in enumerate(cfg.disks):
        if disk.id != f"disk{i}":
            left_out(f"disks[{i}].id", disk.id)
    for i, cd in enumerate(c for c in cfg.cdroms if c.iso is not None):
        if cd.id != f"cd{i}":
            left_out(f"cdroms[{i}].id", cd.id)
    for name in (
        "description",
        "machine",
        "stop_timeout",
        "on_poweroff",
        "on_reboot",
        "on_crash",
        "max_vcpus",
        "max_ram",
        "unplug_timeout",
    ):
        value = getattr(cfg, name)
        if value != field_default(VmConfig, name):
            left_out(name, _json(value))
    return Exported(json.dumps(doc, indent=2) + "\n", tuple(warnings))


def _boot_string(cfg: VmConfig, boot_disk: Disk | None) -> tuple[str, str | None]:
    """vmadm's order (device classes, first first) and once (a class or None)."""
    devices: list[tuple[int, str]] = []
    devices += [(d.boot_index, "c") for d in cfg.disks if d.boot_index is not None]
    devices += [(c.boot_index, "d") for c in cfg.cdroms if c.boot_index is not None]
    devices += [(n.boot_index, "n") for n in cfg.nics if n.boot_index is not None]
    order = "".join(dict.fromkeys(cls for _, cls in sorted(devices)))
    once = None
    if cfg.boot_once is not None:
        kinds = {d.id: "c" for d in cfg.disks} | {c.id: "d" for c in cfg.cdroms}
        once = (kinds | {n.id: "n" for n in cfg.nics}).get(cfg.boot_once)
    return order or "cd", once


def _boot_indexes(cfg: VmConfig, order: str, boot_flags: list[bool]) -> dict[str, int | None]:
    """Device id -> boot_index as an import gives them: the classes in order, each
    class's devices in document order, the boot disk first among the disks."""
    disks = [d for d, flag in zip(cfg.disks, boot_flags, strict=True) if flag]
    disks += [d for d, flag in zip(cfg.disks, boot_flags, strict=True) if not flag]
    by_class: dict[str, list[str]] = {
        "c": [d.id for d in disks],
        "d": [c.id for c in cfg.cdroms],
        "n": [n.id for n in cfg.nics],
    }
    ranked = [dev for cls in dict.fromkeys(order) for dev in by_class.get(cls, [])]
    out: dict[str, int | None] = {d.id: None for d in devices(cfg)}
    out.update({dev: i for i, dev in enumerate(ranked)})
    return out


def _once_device(cfg: VmConfig, once: str | None, boot_disk: Disk | None) -> str | None:
    """The device vmadm's once= class names: the boot disk, or the class's first."""
    first = {
        "c": boot_disk or (cfg.disks[0] if cfg.disks else None),
        "d": cfg.cdroms[0] if cfg.cdroms else None,
        "n": cfg.nics[0] if cfg.nics else None,
    }.get(once or "")
    return first.id if first is not None else None


# --- import -----------------------------------------------------------------------


class _Reader:
    def __init__(self, name: str) -> None:
        self.name = name
        self.warnings: list[str] = []

    def fail(self, where: str, problem: str) -> ConversionError:
        return ConversionError(f"{self.name}: {FORMAT} {where}: {problem}")

    def left_out(self, where: str, value: object, why: str = "") -> None:
        if value in (None, "", [], {}):
            return  # an empty field says nothing that is lost
        self.warnings.append(
            f"{self.name}: vmbundle has no field for {FORMAT} {where}={_json(value)}; left out{why}"
        )

    def integer(self, doc: dict[str, Any], key: str, where: str, low: int, default: int) -> int:
        value = doc.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise self.fail(
                where, f"{_json(value)} is not a whole number of at least {low}; correct it"
            )
        return value

    def choice(
        self, doc: dict[str, Any], key: str, where: str, allowed: tuple[str, ...], default: str
    ) -> str:
        value = doc.get(key, default)
        if value not in allowed:
            raise self.fail(
                where,
                f"{_json(value)} is not one vmbundle has; change it to one of {', '.join(allowed)}",
            )
        return str(value)


def parse(data: bytes, name: str, new_uuid: Callable[[], str] | None = None) -> Imported:
    """The guest a vmadm JSON document (a create payload or `vmadm get`) describes, named name."""
    r = _Reader(name)
    if len(data) > MAX_BYTES:
        raise ConversionError(f"{name}: the {FORMAT} JSON is larger than {MAX_BYTES} bytes")
    try:
        doc = json.loads(data.decode("utf-8"), object_pairs_hook=codec.reject_duplicate_keys)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConversionError(
            f"{name}: not valid {FORMAT} JSON ({exc}); give a payload as vmadm get prints it"
        ) from None
    if not isinstance(doc, dict):
        raise ConversionError(f"{name}: {FORMAT} JSON must be an object, as vmadm get prints it")
    brand = doc.get("brand")
    if brand != "kvm":
        raise r.fail("brand", f"{_json(brand)} is not a KVM guest; only brand kvm can be imported")
    uuid = doc.get("uuid")
    if uuid is not None:
        if (
            not isinstance(uuid, str)
            or re.fullmatch(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", uuid) is None
        ):
            raise r.fail("uuid", f"{_json(uuid)} is not a UUID; correct it or remove it")
        uuid = uuid.lower()
    ram = r.integer(doc, "ram", "ram", 32, 256) * MiB  # 256 MiB: vmadm's default
    vcpus = r.integer(doc, "vcpus", "vcpus", 1, 1)
    cpu = r.choice(doc, "cpu_type", "cpu_type", CPU_TYPES, "qemu64")
    autoboot = doc.get("autoboot", False)
    if not isinstance(autoboot, bool):
        raise r.fail("autoboot", f"{_json(autoboot)} is not true or false; correct it")
    disk_model = r.choice(doc, "disk_driver", "disk_driver", DISK_MODELS, "virtio")
    nic_model = r.choice(doc, "nic_driver", "nic_driver", NIC_MODELS, "virtio")
    disks, cdroms, sources, boot_flags = _disks(r, doc, disk_model)
    nics = _nics(r, doc, nic_model)
    vnc = _vnc(r, doc)
    for key, value in doc.items():
        if key not in _TOP_READ and key not in _INSTANCE_STATE:
            r.left_out(key, value)
    cfg = VmConfig(
        schema_version=1,
        name=name,
        uuid=uuid or (new_uuid() if new_uuid else str(uuid_mod.uuid4())),
        ram=ram,
        vcpus=vcpus,
        cpu=cpu,
        disks=tuple(disks),
        cdroms=tuple(cdroms),
        nics=tuple(nics),
        vnc=vnc,
        autostart=autoboot,
    )
    order, once = _parse_boot(r, doc.get("boot", "order=cd"))
    ranks = _boot_indexes(cfg, order, boot_flags)
    boot_disk = next((d for d, flag in zip(cfg.disks, boot_flags, strict=True) if flag), None)
    cfg = attrs.evolve(
        cfg,
        disks=tuple(attrs.evolve(d, boot_index=ranks[d.id]) for d in cfg.disks),
        cdroms=tuple(attrs.evolve(c, boot_index=ranks[c.id]) for c in cfg.cdroms),
        nics=tuple(attrs.evolve(n, boot_index=ranks[n.id]) for n in cfg.nics),
        boot_once=_once_device(cfg, once, boot_disk),
    )
    return Imported(cfg, tuple(sources), tuple(r.warnings))


def _parse_boot(r: _Reader, boot: Any) -> tuple[str, str | None]:
    if not isinstance(boot, str):
        raise r.fail("boot", f"{_json(boot)} is not a boot string; write it like order=cd,once=d")
    order, once = "", None
    for part in filter(None, boot.split(",")):
        key, _, value = part.partition("=")
        if key not in ("order", "once") or re.fullmatch(r"[cdn]{1,3}", value) is None:
            raise r.fail(
                "boot",
                f"{part!r} is not order= or once= of c, d and n; write it like order=cd,once=d",
            )
        if key == "order":
            order = value
        else:
            once = value[0]
    return order, once


def _disks(
    r: _Reader, doc: dict[str, Any], default_model: str
) -> tuple[list[Disk], list[Cdrom], list[DiskSource], list[bool]]:
    entries = doc.get("disks", [])
    if not isinstance(entries, list):
        raise r.fail("disks", "must be a list of disk objects")
    disks: list[Disk] = []
    cdroms: list[Cdrom] = []
    sources: list[DiskSource] = []
    flags: list[bool] = []
    for i, entry in enumerate(entries):
        where = f"disks[{i}]"
        if not isinstance(entry, dict):
            raise r.fail(where, "must be an object")
        media = r.choice(entry, "media", f"{where}.media", ("disk", "cdrom"), "disk")
        path = entry.get("path")
        if path is not None and (not isinstance(path, str) or not path):
            raise r.fail(f"{where}.path", f"{_json(path)} is not a path; correct it")
        for key, value in entry.items():
            if key not in _DISK_READ:
                r.left_out(f"{where}.{key}", value)
        if media == "cdrom":
            bus = r.choice(entry, "model", f"{where}.model", ("ide", "scsi"), "ide")
            cdroms.append(Cdrom(id=f"cd{len(cdroms)}", iso=path, bus=bus))
            continue
        bus = r.choice(entry, "model", f"{where}.model", DISK_MODELS, default_model)
        boot = entry.get("boot", False)
        if not isinstance(boot, bool):
            raise r.fail(f"{where}.boot", f"{_json(boot)} is not true or false; correct it")
        disk_id = f"disk{len(disks)}"
        if path is None:
            if "image_uuid" in entry:
                raise r.fail(
                    where,
                    "its image_uuid names a SmartOS image vmbundle cannot fetch; give the image file as path",
                )
            size = r.integer(entry, "size", f"{where}.size", 1, 0)
            sources.append(DiskSource(disk_id, None, None))
            byte_size = size * MiB
        else:
            sources.append(DiskSource(disk_id, path, None))
            byte_size = UNKNOWN_SIZE  # the image's own size, once it is read
        disks.append(Disk(id=disk_id, file=f"{disk_id}.qcow2", size=byte_size, bus=bus))
        flags.append(boot)
    if sum(flags) > 1:
        raise r.fail("disks", "more than one disk says boot: true; keep it on one")
    return disks, cdroms, sources, flags


def _nics(r: _Reader, doc: dict[str, Any], default_model: str) -> list[Nic]:
    entries = doc.get("nics", [])
    if not isinstance(entries, list):
        raise r.fail("nics", "must be a list of NIC objects")
    nics: list[Nic] = []
    taken: set[str] = set()
    for i, entry in enumerate(entries):
        where = f"nics[{i}]"
        if not isinstance(entry, dict):
            raise r.fail(where, "must be an object")
        mac = entry.get("mac")
        if mac is not None:
            if (
                not isinstance(mac, str)
                or re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", mac) is None
            ):
                raise r.fail(
                    f"{where}.mac",
                    f"{_json(mac)} is not a MAC address; write it like 52:54:00:12:34:56",
                )
            mac = mac.lower()
        model = r.choice(entry, "model", f"{where}.model", NIC_MODELS, default_model)
        wanted = entry.get("interface")
        nic_id = f"net{i}"
        if (
            isinstance(wanted, str)
            and re.fullmatch(r"net[0-9]{1,3}", wanted)
            and wanted not in taken
        ):
            nic_id = wanted
        taken.add(nic_id)
        for key, value in entry.items():
            if key not in _NIC_READ:
                why = (
                    " (the NIC uses the user-mode network; set its backend with vmbundle set)"
                    if key == "nic_tag"
                    else ""
                )
                r.left_out(f"{where}.{key}", value, why)
        nics.append(Nic(id=nic_id, model=model, mac=mac, backend=NicBackend("user")))
    return nics


def _vnc(r: _Reader, doc: dict[str, Any]) -> Vnc:
    port = doc.get("vnc_port", 0)
    if isinstance(port, bool) or not isinstance(port, int) or port < -1:
        raise r.fail("vnc_port", f"{_json(port)} is not a port, 0 or -1; correct it")
    password = doc.get("vnc_password") or None
    if password is not None and (
        not isinstance(password, str) or re.fullmatch(r"[!-~]{1,8}", password) is None
    ):
        raise r.fail("vnc_password", "a VNC password is 1 to 8 printable characters; shorten it")
    if port > 0:
        r.warnings.append(
            f"{r.name}: vmadm vnc_port={port}: vmbundle gives displays from its own range; left out"
        )
    return Vnc(enabled=port != -1, password=password)
