"""How far a running guest can grow without a restart: what one boot's command line
leaves room for, decided once, before QEMU starts (pure).

QEMU fixes at start the most vCPUs (`-smp N,maxcpus=M`) and the most memory
(`-m size=R,slots=S,maxmem=X`) a guest can ever have in that run, and which PCI
places take a device later: on pc every free slot of the root bus (ACPI
hotplug), on q35 only PCIe root ports made for that at start, since q35's root
complex takes no hotplug. The boot record keeps the answer, so a refresh knows
what it can do in the QEMU that runs, whatever vm.json says by then.

The illumos KVM fork (0.14.1) has none of maxcpus hotplug, memory slots or
device_add of a disk it can drive, so its capacity is the boot's size (see
vmbundle.guest.live_changes for what it changes live).
"""

from __future__ import annotations

import attrs

from vmbundle.qemu.profile import Profile
from vmbundle.vm.model import GiB, MiB, VmConfig

# Linux onlines hot-added memory in blocks of 128 MiB on x86-64 (its memory
# section size) and refuses a range that is not aligned to one, so a DIMM is a
# whole number of them.
DIMM_STEP = 128 * MiB
# Each raise of ram takes one DIMM slot.
MEMORY_SLOTS = 8
DEFAULT_MAX_RAM_CAP = 512 * GiB
# Spare PCIe root ports on q35, one per device added live at a time.
Q35_HOTPLUG_PORTS = 4
HOTPLUG_PORT_PREFIX = "hotplug"
BALLOON_ID = "balloon0"


@attrs.frozen
class Capacity:
    max_vcpus: int
    max_ram: int
    slots: int
    """DIMM slots; 0: memory cannot be added live."""
    balloon: bool
    """A virtio-balloon device, through which ram goes down (and back up) live."""
    hotplug_ports: tuple[str, ...] = ()
    """q35: the ids of the spare root ports; pc: () (the root bus takes hotplug)."""
    pci_hotplug: bool = True

    def to_json(self) -> dict[str, object]:
        return {
            "max_vcpus": self.max_vcpus,
            "max_ram": self.max_ram,
            "slots": self.slots,
            "balloon": self.balloon,
            "hotplug_ports": list(self.hotplug_ports),
            "pci_hotplug": self.pci_hotplug,
        }

    @classmethod
    def from_json(cls, doc: dict[str, object]) -> Capacity:
        ports = doc.get("hotplug_ports", [])
        return cls(
            max_vcpus=int(doc["max_vcpus"]),  # type: ignore[call-overload]
            max_ram=int(doc["max_ram"]),  # type: ignore[call-overload]
            slots=int(doc["slots"]),  # type: ignore[call-overload]
            balloon=bool(doc["balloon"]),
            hotplug_ports=tuple(str(p) for p in ports) if isinstance(ports, list) else (),
            pci_hotplug=bool(doc.get("pci_hotplug", True)),
        )


def is_q35(machine: str) -> bool:
    return machine == "q35" or machine.startswith("pc-q35-")


def default_max_vcpus(vcpus: int, host_cpus: int) -> int:
    """Twice vcpus, within the host's CPUs, never below vcpus."""
    return max(vcpus, min(2 * vcpus, host_cpus))


def default_max_ram(ram: int) -> int:
    """Twice ram, at most 512G (the address space a qemu64 CPU reaches easily),
    never below ram."""
    return max(ram, min(2 * ram, DEFAULT_MAX_RAM_CAP))


def of(cfg: VmConfig, profile: Profile, host_cpus: int) -> Capacity:
    """The capacity one boot of cfg gets under profile on a host with host_cpus CPUs."""
    if profile.name == "illumos-kvm":
        return Capacity(
            max_vcpus=cfg.vcpus, max_ram=cfg.ram, slots=0, balloon=False, pci_hotplug=False
        )
    max_vcpus = (
        cfg.max_vcpus if cfg.max_vcpus is not None else default_max_vcpus(cfg.vcpus, host_cpus)
    )
    max_ram = cfg.max_ram if cfg.max_ram is not None else default_max_ram(cfg.ram)
    ports = (
        tuple(f"{HOTPLUG_PORT_PREFIX}{i}" for i in range(Q35_HOTPLUG_PORTS))
        if is_q35(cfg.machine)
        else ()
    )
    return Capacity(
        max_vcpus=max_vcpus,
        max_ram=max_ram,
        slots=MEMORY_SLOTS if max_ram >= cfg.ram + DIMM_STEP else 0,
        balloon=True,
        hotplug_ports=ports,
    )
