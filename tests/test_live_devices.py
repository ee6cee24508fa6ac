"""Live device changes end to end: `vmbundle disk|nic add|remove` and `vmbundle set`
on a running test guest under SMF, through the refresh method, seen from inside the
guest (its serial lines), from QEMU (QMP) and from the memory ledger and the
simulated ARC. The QEMU pid never changes."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.screen import shows_banner
from support.serial import SerialLog
from support.service_host import VM, ServiceHost, service_host

from vmbundle.adapters import controller_api
from vmbundle.memory import policy
from vmbundle.qemu.capacity import BALLOON_ID

pytestmark = [pytest.mark.qemu, pytest.mark.zfs]

MiB = 1 << 20
OUT = Path(os.environ.get("VMBUNDLE_TEST_OUTPUT", "/tmp/vmbundle-test-output")) / "live"
GUEST = "live1"
UNPLUG_TIMEOUT = 3


@pytest.fixture(scope="module")
def host(zfs_pool: object) -> Iterator[ServiceHost]:
    # A reserve of 2G puts the ARC maximum below its baseline (6G of the 8G) while the
    # guest runs, so each charge moves it.
    extra = '\n[memory]\nshrink_timeout = 10\nreserve = "2G"\n'
    with service_host("--physmem", "8G", extra_config=extra) as h:
        yield h


@pytest.fixture(scope="module")
def guest(host: ServiceHost) -> Iterator[tuple[int, SerialLog]]:
    """The test guest (128M, 1 vCPU, one NIC) running under SMF, its QEMU pid and serial."""
    host.create_test_guest(GUEST, "--nic", "user")
    host.vmbundle("set", GUEST, f"unplug_timeout={UNPLUG_TIMEOUT}", "max_ram=7G")
    host.run("svcadm", "enable", "-s", f"{VM}:{GUEST}")
    pid = host.record(GUEST).qemu_pid
    serial = host.serial(GUEST)
    try:
        serial.wait_for(r"vmbundle-testguest: ready", timeout=180)
        yield pid, serial
    finally:
        serial.close()
        host.run("svcadm", "disable", "-s", f"{VM}:{GUEST}")


def after(serial: SerialLog, mark: int, pattern: str, timeout: float = 60) -> None:
    """Wait for a serial line matching pattern written after mark (a length of serial.text)."""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, serial.text[mark:], re.MULTILINE):
        assert time.monotonic() < deadline, f"no {pattern!r} after:\n{serial.text[mark:]}"
        time.sleep(0.2)


def charge(host: ServiceHost) -> int:
    doc = json.loads((host.run_dir / "memory.json").read_text())
    return int(doc["charges"][GUEST]["bytes"])


def c_max(host: ServiceHost) -> int:
    return host.kstat("zfs:0:arcstats:c_max")


def devices(host: ServiceHost) -> set[str]:
    return {p["name"] for p in host.qmp(GUEST, "qom-list", {"path": "/machine/peripheral"})}


def pci(host: ServiceHost) -> list[Any]:
    return [(d["slot"], d.get("qdev_id")) for d in host.qmp(GUEST, "query-pci")[0]["devices"]]


def blocks(host: ServiceHost) -> list[Any]:
    return sorted(str(b.get("qdev")) for b in host.qmp(GUEST, "query-block"))


def test_a_disk_and_a_nic_come_and_go_in_the_running_guest(
    host: ServiceHost, guest: tuple[int, SerialLog]
) -> None:
    pid, serial = guest
    mark = len(serial.text)
    added = host.vmbundle("disk", "add", GUEST, "64M").stdout
    assert f"{GUEST}: live: disks.disk0: attached (virtio, disk0.qcow2)" in added, added
    after(serial, mark, r"vmbundle-testguest: disk vda bytes 67108864")
    nic = host.vmbundle("nic", "add", GUEST).stdout
    mac = json.loads(host.vmbundle("show", GUEST, "--json").stdout)["config"]["nics"][1]["mac"]
    assert f"{GUEST}: live: nics.net1: attached (virtio, {mac})" in nic, nic
    after(serial, mark, rf"vmbundle-testguest: nic eth1 mac {mac} up")
    assert {"disk0", "net1"} <= devices(host)
    # The banner lists what the guest has: look at it (the disk vda and the NIC eth1).
    OUT.mkdir(parents=True, exist_ok=True)
    shot = OUT / "attached.png"
    deadline = time.monotonic() + 30
    while True:
        host.vmbundle("screenshot", GUEST, "-o", str(shot))
        if shows_banner(shot) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert shows_banner(shot)

    mark = len(serial.text)
    removed = host.vmbundle("disk", "remove", GUEST, "disk0").stdout
    assert f"{GUEST}: live: disks.disk0: detached" in removed, removed
    assert (
        f"{GUEST}: disk0.qcow2 stays in the bundle "
        f"(vmbundle disk remove {GUEST} disk0.qcow2 --delete deletes it)"
    ) in removed, removed
    after(serial, mark, r"vmbundle-testguest: disk vda removed")
    host.vmbundle("nic", "remove", GUEST, "net1")
    after(serial, mark, r"vmbundle-testguest: nic eth1 removed")
    assert not {"disk0", "net1"} & devices(host)
    # The live-attached disk's block node went with it.
    nodes = {n["node-name"] for n in host.qmp(GUEST, "query-named-block-nodes")}
    assert "drive-disk0" not in nodes
    record = host.record(GUEST)
    assert record.pending == ()
    assert [d.id for d in record.config.disks] == []
    assert record.qemu_pid == pid
    status = host.vmbundle("status", GUEST).stdout
    assert "disks.disk0: attached (virtio, disk0.qcow2)" in status
    assert (host.roots / GUEST / "disk0.qcow2").exists()
    # A memory snapshot would resume into the devices vm.json gives the next start.
    refused = host.vmbundle("snapshot", GUEST, "--memory", check=False)
    assert refused.returncode != 0
    assert (
        f"{GUEST}: its devices changed live in this boot (nics.net1: detached); a memory "
        "snapshot resumes only into the devices it was saved with"
    ) in refused.stderr, refused.stderr
    deleted = host.vmbundle("disk", "add", GUEST, "32M").stdout
    assert "disks.disk1: attached" in deleted, deleted  # disk0's image is still there
    gone = host.vmbundle("disk", "remove", GUEST, "disk1", "--delete").stdout
    assert f"{GUEST}: deleted disk1.qcow2" in gone, gone
    assert not (host.roots / GUEST / "disk1.qcow2").exists()


def test_vcpus_and_memory_grow_live_through_admission(
    host: ServiceHost, guest: tuple[int, SerialLog]
) -> None:
    pid, serial = guest
    serial.wait_for(r"vmbundle-testguest: cpus 1$", timeout=10)
    serial.wait_for(r"vmbundle-testguest: memory 134217728 ", timeout=10)
    mark = len(serial.text)
    charge_before, max_before = charge(host), c_max(host)
    out = host.vmbundle("set", GUEST, "vcpus=2", "ram=256M").stdout
    assert f"{GUEST}: live: vcpus: 1 -> 2" in out, out
    assert f"{GUEST}: live: ram: 128M -> 256M (a 128M DIMM)" in out, out
    after(serial, mark, r"vmbundle-testguest: cpus 2$")
    after(serial, mark, r"vmbundle-testguest: memory 268435456 ")
    assert len(host.qmp(GUEST, "query-cpus-fast")) == 2
    summary = host.qmp(GUEST, "query-memory-size-summary")
    assert summary["base-memory"] + summary["plugged-memory"] == 256 * MiB
    model = policy.OverheadModel()
    grown = policy.charge(256 * MiB, 2, model) - policy.charge(128 * MiB, 1, model)
    assert grown >= 128 * MiB + 16 * MiB
    assert charge(host) - charge_before == grown
    assert max_before - c_max(host) == grown
    assert host.record(GUEST).qemu_pid == pid

    # Down through the balloon, asked through the controller's API (the same edit and
    # refresh as `vmbundle set`): the guest gives the memory back, the charge follows.
    charge_grown, max_grown = charge(host), c_max(host)
    done = controller_api.post_json(host.api, f"/guests/{GUEST}/config", {"set": ["ram=192M"]})
    assert done["refreshed"]["finished"] is True, done
    assert done["refreshed"]["live"] == ["ram: 256M -> 192M (balloon)"], done
    assert abs(host.qmp(GUEST, "query-balloon")["actual"] - 192 * MiB) <= MiB
    back = policy.charge(256 * MiB, 2, model) - policy.charge(192 * MiB, 2, model)
    assert charge_grown - charge(host) == back
    assert c_max(host) - max_grown == back
    assert BALLOON_ID in devices(host)
    for body, status, line in (
        ({"set": "ram=1G"}, 400, f'{GUEST}: the body must be JSON like {{"set": ["ram=4G"]}}'),
        ({"set": ["ram=lots"]}, 422, f'{GUEST}: ram: must be a size like 20G, got "lots"'),
    ):
        with pytest.raises(controller_api.Refused) as refused:
            controller_api.post_json(host.api, f"/guests/{GUEST}/config", body)
        assert refused.value.status == status and line in str(refused.value), str(refused.value)
    assert host.record(GUEST).config.ram == 192 * MiB

    # Lowering vCPUs waits for the next start, and says why.
    out = host.vmbundle("set", GUEST, "vcpus=1").stdout
    assert (
        f"{GUEST}: pending until the next start: vcpus: 2 now, 1 from the next start; "
        "a vCPU cannot be taken out of a running guest"
    ) in out, out
    host.vmbundle("set", GUEST, "vcpus=2")
    assert host.record(GUEST).pending == ()


def test_a_ram_raise_that_does_not_fit_is_refused_and_the_guest_keeps_its_memory(
    host: ServiceHost, guest: tuple[int, SerialLog]
) -> None:
    pid, _ = guest
    record = host.record(GUEST)
    before = (charge(host), c_max(host), host.qmp(GUEST, "query-memory-size-summary"))
    out = host.vmbundle("set", GUEST, "ram=6G").stdout
    ram = f"{record.config.ram >> 20}M"
    assert f"{GUEST}: pending until the next start: ram: {ram} now, 6G from the next start; " in out
    assert "; not enough memory: needs " in out, out
    assert (charge(host), c_max(host), host.qmp(GUEST, "query-memory-size-summary")) == before
    assert host.record(GUEST).config.ram == record.config.ram
    assert host.record(GUEST).dimms == record.dimms
    status = host.vmbundle("status", GUEST).stdout
    assert "not enough memory" in status
    host.vmbundle("set", GUEST, f"ram={ram}")
    assert host.record(GUEST).pending == ()
    assert host.record(GUEST).qemu_pid == pid


def test_a_removal_the_guest_does_not_complete_stays_pending_and_nothing_is_half_done(
    host: ServiceHost, guest: tuple[int, SerialLog]
) -> None:
    pid, serial = guest
    mark = len(serial.text)
    host.vmbundle("disk", "add", GUEST, "32M")
    after(serial, mark, r"vmbundle-testguest: disk vda bytes 33554432")
    disk = host.record(GUEST).config.disks[-1].id
    serial.send("pci-hotplug-off")
    after(serial, mark, r"vmbundle-testguest: pci hotplug off")
    mark = len(serial.text)
    before = (pci(host), blocks(host), devices(host))
    out = host.vmbundle("disk", "remove", GUEST, disk, "--delete").stdout
    assert (
        f"{GUEST}: pending until the next start: disks.{disk}: removed in vm.json, present "
        f"until the next start; the guest did not let go of it within {UNPLUG_TIMEOUT}s "
        "(unplug_timeout); it stays attached, and the next refresh looks again"
    ) in out, out
    assert f"{disk}.qcow2 kept: the running guest still has it; once it lets go: " in out
    assert (host.roots / GUEST / f"{disk}.qcow2").exists()
    assert (pci(host), blocks(host), devices(host)) == before
    assert disk in [d.id for d in host.record(GUEST).config.disks]
    assert "vmbundle-testguest: disk vda removed" not in serial.text[mark:]
    # Once the guest answers again, the next refresh asks again and it lets go.
    serial.send("pci-hotplug-on")
    after(serial, mark, r"vmbundle-testguest: pci hotplug on")
    out = host.vmbundle("set", GUEST, "description=settled").stdout
    assert f"{GUEST}: live: disks.{disk}: detached" in out, out
    after(serial, mark, r"vmbundle-testguest: disk vda removed")
    record = host.record(GUEST)
    assert disk not in [d.id for d in record.config.disks]
    assert record.pending == ()
    assert record.qemu_pid == pid
    out = host.vmbundle("disk", "remove", GUEST, f"{disk}.qcow2", "--delete").stdout
    assert f"{GUEST}: deleted {disk}.qcow2" in out, out
    assert not (host.roots / GUEST / f"{disk}.qcow2").exists()
    refused = host.vmbundle("disk", "remove", GUEST, "vm.json", "--delete", check=False)
    assert refused.returncode != 0 and (host.roots / GUEST / "vm.json").exists()
    assert f"{GUEST}: no disk 'vm.json'" in refused.stderr, refused.stderr


def test_on_q35_devices_come_and_go_behind_the_spare_root_ports(host: ServiceHost) -> None:
    name = "live2"
    host.create_test_guest(name, "--machine", "q35")
    # A PCIe unplug waits 5 s for the attention button before the guest lets go.
    host.vmbundle("set", name, "unplug_timeout=30")
    host.run("svcadm", "enable", "-s", f"{VM}:{name}")
    pid = host.record(name).qemu_pid
    serial = host.serial(name)
    try:
        serial.wait_for(r"vmbundle-testguest: ready", timeout=180)
        mark = len(serial.text)
        host.vmbundle("disk", "add", name, "64M")
        out = host.vmbundle("nic", "add", name).stdout
        assert f"{name}: live: nics.net0: attached" in out, out
        after(serial, mark, r"vmbundle-testguest: disk vda bytes 67108864")
        after(serial, mark, r"vmbundle-testguest: nic eth0 mac ")
        ports = {
            d["qdev_id"]: [x.get("qdev_id") for x in d["pci_bridge"]["devices"]]
            for d in host.qmp(name, "query-pci")[0]["devices"]
            if d.get("qdev_id", "").startswith("hotplug")
        }
        assert ports == {
            "hotplug0": ["disk0"],
            "hotplug1": ["net0"],
            "hotplug2": [],
            "hotplug3": [],
        }
        mark = len(serial.text)
        host.vmbundle("disk", "remove", name, "disk0", "--delete")
        host.vmbundle("nic", "remove", name, "net0")
        after(serial, mark, r"vmbundle-testguest: disk vda removed")
        after(serial, mark, r"vmbundle-testguest: nic eth0 removed")
        record = host.record(name)
        assert record.pending == () and record.config.disks == () and record.config.nics == ()
        assert record.qemu_pid == pid
    finally:
        serial.close()
        host.run("svcadm", "disable", "-s", f"{VM}:{name}")
