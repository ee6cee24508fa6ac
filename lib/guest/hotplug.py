"""The QMP side of a live change in modern QEMU: plug and unplug disks, NICs,
vCPUs and DIMMs, and move the balloon. Each function leaves QEMU as it found it
when it fails (what it made is taken out again), so a refresh is never
half-done; the one exception is an unplug the guest has not finished, which
QEMU keeps asking for, and which the next refresh finds done or asks again.

What the guest sees, as the QEMU documentation describes it: on pc a device
comes and goes on the root bus through ACPI PCI hotplug; on q35 behind one of
the boot's spare PCIe root ports (vmbundle.qemu.capacity). A device_del is a
request the guest answers in its own time (it ejects the slot), so removal
waits for the device to leave /machine/peripheral. vCPUs and DIMMs arrive
through ACPI too; the guest's OS brings them online.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from vmbundle.errors import VmbundleError
from vmbundle.qemu.capacity import Capacity
from vmbundle.qemu.qmp import QmpError, Session
from vmbundle.units import format_size
from vmbundle.vm.model import Disk, Nic

PERIPHERALS = "/machine/peripheral"
POLL_SECONDS = 0.2
NODE_RELEASE_SECONDS = 10.0
# The balloon counts in 4 KiB pages and the guest may keep a few in flight.
BALLOON_SLACK = 1 << 20

# vm.json's cache modes as blockdev-add and the device say them: (cache.direct,
# cache.no-flush, the device's write-cache).
_CACHE: dict[str, tuple[bool, bool, str]] = {
    "writeback": (False, False, "on"),
    "none": (True, False, "on"),
    "writethrough": (False, False, "off"),
    "directsync": (True, False, "off"),
    "unsafe": (False, True, "on"),
}


class LiveChangeFailed(VmbundleError):
    """QEMU or the guest did not take a change; QEMU is as it was before it."""


class UnplugPending(LiveChangeFailed):
    """The guest has not let go of a device within the timeout; QEMU still asks it to."""


class CpusNotAdded(LiveChangeFailed):
    def __init__(self, plugged: int, message: str) -> None:
        self.plugged = plugged
        """The vCPUs the guest has (some may have been added before the failure)."""
        super().__init__(message)


def drive_node(device_id: str) -> str:
    """The block node of a disk plugged live (a boot's disks have -drive backends of the same name)."""
    return f"drive-{device_id}"


def netdev(device_id: str) -> str:
    return f"netdev-{device_id}"


def present(session: Session) -> set[str]:
    """The ids of the user-created devices QEMU has now."""
    return {str(p["name"]) for p in session.execute("qom-list", {"path": PERIPHERALS})}


def _free_port(session: Session, room: Capacity) -> str | None:
    """A spare root port with nothing behind it (q35), from query-pci."""
    busy: set[str] = set()
    for bus in session.execute("query-pci"):
        for dev in bus.get("devices", []):
            bridge = dev.get("pci_bridge")
            if dev.get("qdev_id") in room.hotplug_ports and bridge and bridge.get("devices"):
                busy.add(str(dev["qdev_id"]))
    return next((p for p in room.hotplug_ports if p not in busy), None)


def _place(session: Session, room: Capacity, what: str) -> dict[str, Any]:
    if not room.hotplug_ports:
        return {}
    port = _free_port(session, room)
    if port is None:
        raise LiveChangeFailed(
            f"{what}: all {len(room.hotplug_ports)} spare PCIe ports of this boot are taken; "
            "restart to give it its own"
        )
    return {"bus": port}


def _scsi_id(session: Session, scsi_devices: list[str]) -> int:
    """The lowest SCSI id the devices on scsi0 leave free."""
    taken = set()
    for dev in scsi_devices:
        try:
            taken.add(
                int(
                    session.execute(
                        "qom-get", {"path": f"{PERIPHERALS}/{dev}", "property": "scsi-id"}
                    )
                )
            )
        except QmpError:
            continue
    return next(i for i in range(len(taken) + 1) if i not in taken)


def _undo(session: Session, command: str, arguments: dict[str, Any]) -> None:
    with contextlib.suppress(QmpError):  # already gone: nothing left to undo
        session.execute(command, arguments)


def add_disk(
    session: Session, image: Path, disk: Disk, room: Capacity, scsi_devices: list[str]
) -> None:
    """Open image as a block node and plug disk on its bus (virtio-blk, or a
    scsi-hd on the boot's scsi0)."""
    direct, no_flush, write_cache = _CACHE[disk.cache]
    node = drive_node(disk.id)
    session.execute(
        "blockdev-add",
        {
            "driver": disk.format,
            "node-name": node,
            "cache": {"direct": direct, "no-flush": no_flush},
            "file": {
                "driver": "file",
                "filename": str(image),
                "cache": {"direct": direct, "no-flush": no_flush},
            },
        },
    )
    try:
        device: dict[str, Any] = {"id": disk.id, "drive": node, "write-cache": write_cache}
        if disk.bus == "scsi":
            device |= {
                "driver": "scsi-hd",
                "bus": "scsi0.0",
                "scsi-id": _scsi_id(session, scsi_devices),
            }
        else:
            device |= {"driver": "virtio-blk-pci", **_place(session, room, disk.id)}
        session.execute("device_add", device)
    except BaseException:
        _undo(session, "blockdev-del", {"node-name": node})
        raise


def add_nic(session: Session, nic: Nic, room: Capacity) -> None:
    """Make the NIC's back end (user, tap or bridge) and plug the card with its MAC."""
    backend: dict[str, Any] = {"type": nic.backend.type, "id": netdev(nic.id)}
    if nic.backend.type == "tap":
        backend |= {"ifname": nic.backend.name, "script": "no", "downscript": "no"}
    elif nic.backend.type == "bridge":
        backend |= {"br": nic.backend.name}
    session.execute("netdev_add", backend)
    try:
        session.execute(
            "device_add",
            {
                "driver": "virtio-net-pci" if nic.model == "virtio" else "e1000",
                "id": nic.id,
                "netdev": netdev(nic.id),
                "mac": nic.mac,
                **_place(session, room, nic.id),
            },
        )
    except BaseException:
        _undo(session, "netdev_del", {"id": netdev(nic.id)})
        raise


def unplug(session: Session, device_id: str, timeout: float) -> None:
    """Ask the guest to let go of a device and wait until QEMU has removed it;
    UnplugPending when the guest has not within timeout."""
    if device_id not in present(session):
        return  # an earlier request the guest has finished since
    try:
        session.execute("device_del", {"id": device_id})
    except QmpError as exc:
        # Asked already (a removal left pending): QEMU refuses a second request
        # on some buses; waiting for the first is the same.
        if device_id not in present(session):
            return
        if "already" not in exc.desc and "progress" not in exc.desc:
            raise
    deadline = time.monotonic() + timeout
    while device_id in present(session):
        if time.monotonic() >= deadline:
            raise UnplugPending(
                f"the guest did not let go of it within {timeout:g}s (unplug_timeout); "
                "it stays attached, and the next refresh looks again"
            )
        time.sleep(POLL_SECONDS)


def remove_disk(session: Session, disk: Disk, timeout: float) -> None:
    unplug(session, disk.id, timeout)
    # A boot's disk (-drive) goes with its device; one plugged live leaves its node.
    node = drive_node(disk.id)
    # QEMU lets go of the node a moment after the device has gone (it is freed
    # after an RCU grace period): until then blockdev-del says it is in use.
    deadline = time.monotonic() + NODE_RELEASE_SECONDS
    while node in {str(n.get("node-name")) for n in session.execute("query-named-block-nodes")}:
        try:
            session.execute("blockdev-del", {"node-name": node})
        except QmpError as exc:
            if "in use" not in exc.desc or time.monotonic() >= deadline:
                raise
            time.sleep(POLL_SECONDS)


def remove_nic(session: Session, nic: Nic, timeout: float) -> None:
    unplug(session, nic.id, timeout)
    _undo(session, "netdev_del", {"id": netdev(nic.id)})


def cpu_count(session: Session) -> int:
    return len(session.execute("query-cpus-fast"))


def add_cpus(session: Session, wanted: int) -> int:
    """Plug vCPUs into the free places QEMU lists until the guest has wanted; the
    number it has then. A vCPU cannot be taken back without the guest's consent,
    so one that fails stops there with LiveChangeFailed, the others kept (its
    `plugged` says how many the guest has)."""
    have = cpu_count(session)
    free = [c for c in session.execute("query-hotpluggable-cpus") if "qom-path" not in c]
    # QEMU lists the places last first.
    free.sort(key=lambda c: sorted(c.get("props", {}).items()))
    if wanted - have > len(free):
        raise CpusNotAdded(have, f"QEMU has room for {have + len(free)} vCPUs, not {wanted}")
    for place in free[: wanted - have]:
        try:
            session.execute(
                "device_add", {"driver": place["type"], "id": f"cpu.{have}", **place["props"]}
            )
        except QmpError as exc:
            raise CpusNotAdded(have, f"QEMU did not add vCPU {have + 1}: {exc.desc}") from None
        have += 1
    return have


def plug_dimm(session: Session, number: int, size: int) -> str:
    """One DIMM of size bytes; its device id."""
    memdev, device_id = f"mem.{number}", f"dimm.{number}"
    session.execute("object-add", {"qom-type": "memory-backend-ram", "id": memdev, "size": size})
    try:
        session.execute("device_add", {"driver": "pc-dimm", "id": device_id, "memdev": memdev})
    except BaseException:
        _undo(session, "object-del", {"id": memdev})
        raise
    return device_id


def balloon_actual(session: Session) -> int:
    return int(session.execute("query-balloon")["actual"])


def set_balloon(session: Session, target: int, timeout: float) -> None:
    """Ask the guest to hold target bytes and wait until it does; on a timeout the
    balloon goes back where it was and LiveChangeFailed says how far it got."""
    before = balloon_actual(session)
    session.execute("balloon", {"value": target})
    deadline = time.monotonic() + timeout
    actual = balloon_actual(session)
    while abs(actual - target) > BALLOON_SLACK:
        if time.monotonic() >= deadline:
            _undo(session, "balloon", {"value": before})
            raise LiveChangeFailed(
                f"the guest holds {format_size(actual)} of the {format_size(target)} asked "
                f"after {timeout:g}s (is its virtio-balloon driver loaded?); left at "
                f"{format_size(before)}"
            )
        time.sleep(POLL_SECONDS)
        actual = balloon_actual(session)
