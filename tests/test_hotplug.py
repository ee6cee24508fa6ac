"""The QMP side of live changes against a real QEMU that runs no guest (-S): what
needs no guest's consent (SCSI disks come and go at once) works, and a step QEMU
refuses leaves nothing behind (no block node, netdev or memory backend)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmbundle.guest import hotplug
from vmbundle.guest.rundir import RunPaths
from vmbundle.qemu import qmp
from vmbundle.qemu.capacity import Capacity
from vmbundle.qemu.qmp import QmpError, Session
from vmbundle.vm.model import Disk, Nic, NicBackend

pytestmark = pytest.mark.qemu

MiB = 1 << 20
PC = Capacity(max_vcpus=2, max_ram=256 * MiB, slots=2, balloon=True)


@pytest.fixture
def qemu(tmp_path: Path) -> Iterator[RunPaths]:
    """A paused pc QEMU with a virtio-scsi controller and one SCSI disk, and the
    guest's control monitor where vmbundle's short sessions expect it."""
    run = RunPaths(tmp_path / "run" / "hp1")
    run.dir.mkdir(parents=True)
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", str(tmp_path / "a.qcow2"), "32M"], check=True
    )
    argv = [
        "qemu-system-x86_64", "-S", "-machine", "pc", "-accel", "tcg", "-nodefaults",
        "-display", "none", "-smp", "1,maxcpus=2", "-m", "size=64M,slots=2,maxmem=256M",
        "-chardev", f"socket,id=qmp,path={run.control_qmp},server=on,wait=off",
        "-mon", "chardev=qmp,mode=control",
        "-device", "virtio-scsi-pci,id=scsi0",
        "-drive", f"if=none,id=drive-disk0,file={tmp_path / 'a.qcow2'},format=qcow2",
        "-device", "scsi-hd,bus=scsi0.0,scsi-id=0,drive=drive-disk0,id=disk0",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not run.control_qmp.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        yield run
    finally:
        proc.kill()
        proc.wait()


def nodes(s: Session) -> set[str]:
    return {str(n.get("node-name")) for n in s.execute("query-named-block-nodes")}


def test_a_scsi_disk_comes_and_goes_at_the_next_free_scsi_id(
    qemu: RunPaths, tmp_path: Path
) -> None:
    image = tmp_path / "b.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "16M"], check=True)
    disk = Disk(id="disk1", file="b.qcow2", size=16 * MiB, bus="scsi", cache="none")

    def plug(s: Session) -> None:
        hotplug.add_disk(s, image, disk, PC, ["disk0"])
        path = "/machine/peripheral/disk1"
        assert s.execute("qom-get", {"path": path, "property": "scsi-id"}) == 1
        assert s.execute("qom-get", {"path": path, "property": "write-cache"}) == "on"
        assert "drive-disk1" in nodes(s)
        # SCSI needs no guest to let go: the device goes at once, and its node with it.
        hotplug.remove_disk(s, disk, timeout=5)
        assert "disk1" not in hotplug.present(s)
        assert "drive-disk1" not in nodes(s)
        assert "disk0" in hotplug.present(s)

    qmp.with_control(qemu, plug)


def test_a_step_qemu_refuses_leaves_nothing_behind(qemu: RunPaths, tmp_path: Path) -> None:
    image = tmp_path / "c.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "16M"], check=True)
    # A boot with spare ports that this QEMU does not have: device_add fails.
    q35 = Capacity(max_vcpus=2, max_ram=256 * MiB, slots=2, balloon=True, hotplug_ports=("hp9",))
    disk = Disk(id="disk2", file="c.qcow2", size=16 * MiB)
    nic = Nic(id="net1", mac="52:54:00:00:00:09", backend=NicBackend("user"))

    def refused(s: Session) -> None:
        before = (hotplug.present(s), nodes(s))
        with pytest.raises(QmpError):
            # query-pci lists no hp9, so the port looks free and device_add names it.
            hotplug.add_disk(s, image, disk, q35, [])
        with pytest.raises(QmpError):
            hotplug.add_nic(s, nic, q35)
        with pytest.raises(QmpError):
            hotplug.plug_dimm(s, 0, 256 * MiB)  # more than maxmem leaves: device_add fails
        assert (hotplug.present(s), nodes(s)) == before
        assert not [o for o in s.execute("qom-list", {"path": "/objects"}) if o["name"] == "mem.0"]
        assert "netdev-net1" not in str(
            s.execute("human-monitor-command", {"command-line": "info network"})
        )
        # What QEMU takes goes through.
        assert hotplug.plug_dimm(s, 1, 128 * MiB) == "dimm.1"
        assert hotplug.add_cpus(s, 2) == 2
        assert hotplug.cpu_count(s) == 2
        with pytest.raises(hotplug.CpusNotAdded) as full:
            hotplug.add_cpus(s, 3)
        assert full.value.plugged == 2

    qmp.with_control(qemu, refused)
