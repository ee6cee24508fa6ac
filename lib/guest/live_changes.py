"""What a refresh can change in a running guest, and what must wait for a restart.

Pure: it compares the configuration QEMU runs with (the boot record's) with the
one in vm.json now, within what the running boot left room for (its Room: the
QEMU profile, vmbundle.qemu.capacity, the memory plugged so far), and gives the
steps that bring the guest there live and, for everything else, one pending
line that says why it waits.

Live in modern QEMU (7.0 and later):
- an ISO put in, swapped or taken out of an existing drive;
- a virtio disk, or a SCSI disk where the boot has the virtio-scsi controller,
  added or taken out; a NIC added or taken out;
- vCPUs raised, up to the boot's max_vcpus (lowering waits: a vCPU cannot be
  taken from a running guest without its OS's consent, which QEMU cannot ask);
- ram raised (a DIMM of whole 128M steps, then the balloon for the rest) up to
  the boot's max_ram and memory slots, and lowered through the balloon;
- policies (stop and unplug timeouts, power-off and crash handling, autostart,
  description, boot_once), read when they are needed, so they take effect at
  once; a disk's size is grown live by `vmbundle disk resize`, which also
  writes it.

The illumos KVM fork (0.14.1) changes only CD-ROM media live. Its QMP does have
device_add, device_del, netdev_add and balloon (qmp-commands.hx in
TritonDataCenter/illumos-kvm-cmd), but no blockdev-add (a disk needs HMP
drive_add), no vCPU (HMP cpu_set only) or memory hotplug, and its balloon frees
no host memory on illumos (hw/virtio-balloon.c madvises only on Linux);
SmartOS vmadm itself changes no device of a running VM (VM.js refuses
add_disks and remove_disks unless the VM is stopped). So there the rest stays
pending, with that reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from vmbundle.qemu.capacity import DIMM_STEP, Capacity
from vmbundle.units import format_size
from vmbundle.vm import codec
from vmbundle.vm.model import Disk, Nic, VmConfig

# Read when needed (by the stop method, the controller, the next start, a
# refresh), so a changed value needs nothing from QEMU.
_READ_WHEN_NEEDED = (
    "description",
    "stop_timeout",
    "unplug_timeout",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "autostart",
    "boot_once",
)
_SIZES = ("ram", "size", "max_ram")
FORK_REASON = "the illumos KVM fork (0.14.1) changes only CD-ROM media live"
OLD_BOOT_REASON = "this boot started before vmbundle made live changes; restart it once"


@attrs.frozen
class MediaChange:
    cdrom: str
    """The CD-ROM's id in vm.json."""
    iso: str | None
    """The ISO as vm.json gives it (relative to the bundle or absolute); None to eject."""


@attrs.frozen
class AddDisk:
    disk: Disk


@attrs.frozen
class RemoveDisk:
    disk: Disk


@attrs.frozen
class AddNic:
    nic: Nic


@attrs.frozen
class RemoveNic:
    nic: Nic


@attrs.frozen
class AddCpus:
    now: int
    wanted: int


@attrs.frozen
class SetRam:
    now: int
    """The memory the guest is meant to hold now (the balloon's target)."""
    wanted: int
    dimm: int
    """Bytes to plug first as one DIMM; 0: the balloon alone moves."""


Step = AddDisk | RemoveDisk | AddNic | RemoveNic | AddCpus | SetRam


def path_of(step: Step) -> str:
    """The vm.json path a step changes, as pending lines name it."""
    if isinstance(step, AddDisk | RemoveDisk):
        return f"disks.{step.disk.id}"
    if isinstance(step, AddNic | RemoveNic):
        return f"nics.{step.nic.id}"
    return "vcpus" if isinstance(step, AddCpus) else "ram"


def apply(cfg: VmConfig, step: Step) -> VmConfig:
    """cfg once step is done."""
    if isinstance(step, AddDisk):
        return attrs.evolve(cfg, disks=(*cfg.disks, step.disk))
    if isinstance(step, RemoveDisk):
        return attrs.evolve(cfg, disks=tuple(d for d in cfg.disks if d.id != step.disk.id))
    if isinstance(step, AddNic):
        return attrs.evolve(cfg, nics=(*cfg.nics, step.nic))
    if isinstance(step, RemoveNic):
        return attrs.evolve(cfg, nics=tuple(n for n in cfg.nics if n.id != step.nic.id))
    if isinstance(step, AddCpus):
        return attrs.evolve(cfg, vcpus=step.wanted)
    return attrs.evolve(cfg, ram=step.wanted)


@attrs.frozen
class Room:
    """What the running boot left room for."""

    profile: str
    capacity: Capacity | None
    plugged_ram: int
    """The boot's memory plus the DIMMs plugged since."""
    dimms: int = 0
    """DIMM slots taken."""


@attrs.frozen
class LivePlan:
    media: tuple[MediaChange, ...]
    steps: tuple[Step, ...]
    """Removals first (they free PCI places and memory), then additions, vCPUs, memory."""
    reasons: Mapping[str, str] = attrs.field(hash=False)
    """vm.json path -> why it cannot change live."""
    base: VmConfig
    """The running configuration once the media changes and the policies are taken."""
    wanted: VmConfig

    @property
    def applied(self) -> VmConfig:
        """The running configuration once every step is done."""
        cfg = self.base
        for step in self.steps:
            cfg = apply(cfg, step)
        return cfg

    @property
    def pending(self) -> tuple[str, ...]:
        return pending_lines(self.applied, self.wanted, self.reasons)


def _show(key: str, value: Any) -> str:
    if key in _SIZES and isinstance(value, int):
        return format_size(value)
    if value is None:
        return "none"
    if isinstance(value, str):
        return value or '""'
    return str(value).lower() if isinstance(value, bool) else str(value)


def _differences(path: str, now: Any, wanted: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(now, dict) and isinstance(wanted, dict):
        for key in [*now, *(k for k in wanted if k not in now)]:
            sub = f"{path}.{key}" if path else key
            if key not in wanted:
                out.append((sub, f"{sub}: removed in vm.json, present until the next start"))
            elif key not in now:
                out.append((sub, f"{sub}: added in vm.json, from the next start"))
            else:
                _differences(sub, now[key], wanted[key], out)
        return
    if isinstance(now, list) and isinstance(wanted, list):
        now_ids, wanted_ids = _by_id(now), _by_id(wanted)
        if now_ids is not None and wanted_ids is not None:
            _differences(path, now_ids, wanted_ids, out)
            return
    if now != wanted:
        key = path.rsplit(".", 1)[-1]
        if isinstance(now, list) or isinstance(wanted, list):
            out.append((path, f"{path}: changed in vm.json, from the next start"))
        else:
            out.append(
                (path, f"{path}: {_show(key, now)} now, {_show(key, wanted)} from the next start")
            )


def _by_id(items: list[Any]) -> dict[str, Any] | None:
    if all(isinstance(i, dict) and isinstance(i.get("id"), str) for i in items):
        return {i["id"]: i for i in items}
    return None


def _reason_for(path: str, reasons: Mapping[str, str]) -> str | None:
    """The reason given for path, for the device it belongs to ("disks.disk0"), or
    for its whole kind ("disks", which covers adding and taking out, not a change
    to one device's settings)."""
    parts = path.split(".")
    candidates = [path, ".".join(parts[:2])] if len(parts) > 2 else [path, parts[0]]
    return next((reasons[c] for c in candidates if c in reasons), None)


def pending_lines(
    running: VmConfig, wanted: VmConfig, reasons: Mapping[str, str]
) -> tuple[str, ...]:
    """One line per difference left between running and wanted, each with its reason
    when there is one ("vcpus: 2 now, 1 from the next start; a vCPU cannot ...")."""
    found: list[tuple[str, str]] = []
    _differences("", codec.unstructure(running), codec.unstructure(wanted), found)
    out = []
    for path, line in found:
        why = _reason_for(path, reasons)
        out.append(f"{line}; {why}" if why else line)
    return tuple(out)


def _media(running: VmConfig, wanted: VmConfig) -> tuple[list[MediaChange], VmConfig]:
    wanted_cds = {c.id: c for c in wanted.cdroms}
    media: list[MediaChange] = []
    cdroms = []
    for cd in running.cdroms:
        new = wanted_cds.get(cd.id)
        if new is not None and new.iso != cd.iso and attrs.evolve(new, iso=cd.iso) == cd:
            media.append(MediaChange(cd.id, new.iso))
            cd = new
        cdroms.append(cd)
    wanted_sizes = {d.id: d.size for d in wanted.disks}
    disks = tuple(attrs.evolve(d, size=wanted_sizes.get(d.id, d.size)) for d in running.disks)
    base = attrs.evolve(
        running,
        cdroms=tuple(cdroms),
        disks=disks,
        **{k: getattr(wanted, k) for k in _READ_WHEN_NEEDED},
    )
    return media, base


def _disk_steps(
    running: VmConfig, wanted: VmConfig, reasons: dict[str, str]
) -> tuple[list[Step], list[Step]]:
    now = {d.id: d for d in running.disks}
    new = {d.id: d for d in wanted.disks}
    scsi = any(d.bus == "scsi" for d in running.disks) or any(
        c.bus == "scsi" for c in running.cdroms
    )
    removals: list[Step] = []
    additions: list[Step] = []
    for disk in running.disks:
        if disk.id in new:
            continue
        if disk.bus in ("virtio", "scsi"):
            removals.append(RemoveDisk(disk))
        else:
            reasons[f"disks.{disk.id}"] = (
                f"an {disk.bus.upper()} disk cannot be taken out of a running guest"
            )
    for disk in wanted.disks:
        if disk.id in now:
            continue
        if disk.id in {c.id for c in running.cdroms} | {n.id for n in running.nics}:
            reasons[f"disks.{disk.id}"] = "its id is another device's in the running guest"
        elif disk.bus == "virtio" or (disk.bus == "scsi" and scsi):
            additions.append(AddDisk(disk))
        elif disk.bus == "scsi":
            reasons[f"disks.{disk.id}"] = (
                "this boot has no SCSI controller to add it to; use virtio, or restart"
            )
        else:
            reasons[f"disks.{disk.id}"] = (
                f"an {disk.bus.upper()} disk cannot be added to a running guest; use virtio or scsi"
            )
    return removals, additions


def _nic_steps(
    running: VmConfig, wanted: VmConfig, reasons: dict[str, str]
) -> tuple[list[Step], list[Step]]:
    now = {n.id for n in running.nics}
    new = {n.id for n in wanted.nics}
    removals: list[Step] = [RemoveNic(n) for n in running.nics if n.id not in new]
    additions: list[Step] = []
    others = {d.id for d in running.disks} | {c.id for c in running.cdroms}
    for nic in wanted.nics:
        if nic.id in now:
            continue
        if nic.id in others:
            reasons[f"nics.{nic.id}"] = "its id is another device's in the running guest"
        elif nic.mac is None:
            reasons[f"nics.{nic.id}"] = "it has no MAC yet; give it one (mac=...)"
        else:
            additions.append(AddNic(nic))
    return removals, additions


def _cpu_step(
    running: VmConfig, wanted: VmConfig, room: Capacity, reasons: dict[str, str]
) -> list[Step]:
    if wanted.vcpus == running.vcpus:
        return []
    if wanted.vcpus < running.vcpus:
        reasons["vcpus"] = "a vCPU cannot be taken out of a running guest"
        return []
    if wanted.vcpus > room.max_vcpus:
        reasons["vcpus"] = (
            f"this boot can have at most {room.max_vcpus} (its max_vcpus); "
            "raise max_vcpus, then restart"
        )
        return []
    return [AddCpus(running.vcpus, wanted.vcpus)]


def _ram_step(
    running: VmConfig, wanted: VmConfig, room: Room, cap: Capacity, reasons: dict[str, str]
) -> list[Step]:
    now, target = running.ram, wanted.ram
    if target == now:
        return []
    if target <= room.plugged_ram:
        if not cap.balloon:
            reasons["ram"] = "this boot has no balloon device"
            return []
        return [SetRam(now, target, 0)]
    dimm = math.ceil((target - room.plugged_ram) / DIMM_STEP) * DIMM_STEP
    if room.plugged_ram + dimm > cap.max_ram:
        reasons["ram"] = (
            f"this boot can grow to {format_size(cap.max_ram)} (its max_ram) in steps of "
            f"{format_size(DIMM_STEP)}; raise max_ram, then restart"
        )
        return []
    if room.dimms >= cap.slots:
        reasons["ram"] = (
            f"this boot's {cap.slots} memory slots are all used; restart to take the memory "
            "into the boot's own"
            if cap.slots
            else "this boot has no memory slots (max_ram is ram)"
        )
        return []
    if room.plugged_ram + dimm > target and not cap.balloon:
        reasons["ram"] = (
            f"without a balloon device it grows only in steps of {format_size(DIMM_STEP)}"
        )
        return []
    return [SetRam(now, target, dimm)]


def plan(running: VmConfig, wanted: VmConfig, room: Room | None = None) -> LivePlan:
    """How to bring a guest running with `running` closer to `wanted` without a
    restart. room None: a boot that can change media only."""
    media, base = _media(running, wanted)
    reasons: dict[str, str] = {}
    steps: list[Step] = []
    if room is not None and room.profile == "illumos-kvm":
        for path in ("disks", "nics", "vcpus", "ram"):
            reasons[path] = FORK_REASON
    elif room is None or room.capacity is None:
        for path in ("disks", "nics", "vcpus", "ram"):
            reasons[path] = OLD_BOOT_REASON
    else:
        cap = room.capacity
        disk_out, disk_in = _disk_steps(base, wanted, reasons)
        nic_out, nic_in = _nic_steps(base, wanted, reasons)
        if not cap.pci_hotplug:
            for step in (*disk_out, *disk_in, *nic_out, *nic_in):
                reasons[path_of(step)] = "this boot takes no PCI hotplug"
            disk_out, disk_in, nic_out, nic_in = [], [], [], []
        steps = [
            *disk_out,
            *nic_out,
            *disk_in,
            *nic_in,
            *_cpu_step(base, wanted, cap, reasons),
            *_ram_step(base, wanted, room, cap, reasons),
        ]
    return LivePlan(
        media=tuple(media), steps=tuple(steps), reasons=reasons, base=base, wanted=wanted
    )
