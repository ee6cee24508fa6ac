"""Whole-guest snapshots on a devhost with zfs-fuse (vmbundle.ops.snapshots): one
snapshot holds every disk and vm.json at one instant; a rollback puts them all back;
a clone is a guest of its own; a plain-directory bundle says it has none."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.disks import holds, write
from support.screen import shows_banner
from support.serial import SerialLog
from support.service_host import VM, ServiceHost, service_host

pytestmark = [pytest.mark.qemu, pytest.mark.zfs]

OUT = Path(os.environ.get("VMBUNDLE_TEST_OUTPUT", "/tmp/vmbundle-test-output")) / "snapshots"


@pytest.fixture(scope="module")
def host(zfs_pool: object) -> Iterator[ServiceHost]:
    with service_host() as h:
        yield h


def description(path: Path) -> str:
    return str(json.loads((path / "vm.json").read_text()).get("description"))


def test_a_snapshot_rolls_both_disks_and_vm_json_back_to_one_instant(host: ServiceHost) -> None:
    path = host.create("snap1", "--disk", "16M", "--disk", "16M")
    host.vmbundle("set", "snap1", "description=before")
    host.vmbundle("start", "snap1", "--wait")
    for drive in ("drive-disk0", "drive-disk1"):
        write(host, "snap1", drive, 0xA1)
    taken = host.vmbundle("snapshot", "snap1", "before", "--consistent").stdout
    assert taken.startswith(f"{host.dataset(path)}@before (the guest was paused for "), taken
    for drive in ("drive-disk0", "drive-disk1"):
        write(host, "snap1", drive, 0xB2)
    host.vmbundle("set", "snap1", "description=after")

    refused = host.vmbundle("rollback", "snap1", "before", check=False)
    assert refused.returncode == 1
    assert "snap1: running; a rollback is for a stopped guest" in refused.stderr

    host.vmbundle("stop", "snap1", "--wait")
    disks = [path / "disk0.qcow2", path / "disk1.qcow2"]
    assert all(holds(d, 0xB2) for d in disks) and description(path) == "after"
    assert host.vmbundle("rollback", "snap1", "before").stdout.startswith("snap1: rolled back")
    assert all(holds(d, 0xA1) for d in disks), "a disk is not from the snapshot's instant"
    assert description(path) == "before"

    listed = json.loads(host.vmbundle("snapshots", "snap1", "--json").stdout)
    assert [s["snapshot"] for s in listed] == ["before"]
    host.vmbundle("snapshot-destroy", "snap1", "before")
    assert json.loads(host.vmbundle("snapshots", "snap1", "--json").stdout) == []


def test_a_memory_snapshot_rolled_back_resumes_the_guest_where_it_was(
    host: ServiceHost, tmp_path: Path
) -> None:
    path = host.create_test_guest("mem1", "--disk", "16M")
    host.vmbundle("start", "mem1", "--wait")
    serial = host.serial("mem1", timeout=120)
    serial.wait_for(r"vmbundle-testguest: ready", timeout=180)
    time.sleep(10)  # so that a guest booted again would say a smaller uptime
    before = uptime(serial)

    taken = host.vmbundle("snapshot", "mem1", "live", "--memory").stdout
    assert re.fullmatch(
        rf"{host.dataset(path)}@live \(with the guest's memory: a rollback to it resumes the "
        r"guest; the guest was paused for \d+ ms\)\n",
        taken,
    ), taken
    assert not (path / "memory.vmstate").exists(), "the live bundle kept the saved memory"
    # It runs on, disks and all, after the snapshot.
    assert host.qmp("mem1", "query-status")["status"] == "running"
    write(host, "mem1", "drive-disk0", 0xD4)
    serial.close()

    host.vmbundle("stop", "mem1", "--wait")
    host.vmbundle("rollback", "mem1", "live")
    assert (path / "memory.vmstate").is_file()
    host.vmbundle("start", "mem1", "--wait")
    assert "mem1: resumed from the memory saved in its snapshot" in host.log("mem1")
    assert not (path / "memory.vmstate").exists(), "the next start would resume it again"
    shot = tmp_path / "resumed.png"
    host.vmbundle("screenshot", "mem1", "-o", str(shot))
    OUT.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, OUT / "memory-resumed.png")
    assert shows_banner(shot), "the resumed guest's screen is not its banner"
    serial = host.serial("mem1", timeout=60)
    after = uptime(serial)
    assert after >= before, f"the guest booted again (uptime {after} s, {before} s before)"
    assert "boot kernel" not in serial.text
    assert not holds(path / "disk0.qcow2", 0xD4), "the disk is not the snapshot's"
    serial.close()
    host.vmbundle("stop", "mem1", "--wait")


def uptime(serial: SerialLog) -> float:
    serial.send("uptime")
    return float(serial.wait_for(r"vmbundle-testguest: uptime ([0-9.]+)", timeout=60).group(1))


def test_a_clone_boots_beside_its_origin_as_a_guest_of_its_own(host: ServiceHost) -> None:
    path = host.create_test_guest("orig1", "--nic", "user")
    host.vmbundle("snapshot", "orig1", "gold")
    done = host.vmbundle("clone", "orig1@gold", "copy1").stdout
    assert done.startswith(f"copy1: cloned into {host.roots / 'copy1'}"), done
    assert host.state_of("copy1") == "disabled"
    origin = json.loads((path / "vm.json").read_text())
    copy = json.loads((host.roots / "copy1" / "vm.json").read_text())
    assert copy["name"] == "copy1" and copy["uuid"] != origin["uuid"]
    assert copy["nics"][0]["mac"] != origin["nics"][0].get("mac")
    host.vmbundle("start", "orig1", "--wait")
    host.vmbundle("start", "copy1", "--wait")
    a, b = host.record("orig1"), host.record("copy1")
    assert a.display != b.display
    assert a.config.nics[0].mac != b.config.nics[0].mac
    host.vmbundle("stop", "copy1", "--wait")
    host.vmbundle("stop", "orig1", "--wait")

    taken = host.vmbundle("clone", "orig1@gold", "copy1", check=False)
    assert taken.returncode == 1 and "copy1:" in taken.stderr
    missing = host.vmbundle("clone", "orig1@nothing", "copy2", check=False)
    assert missing.returncode == 1
    assert missing.stderr == "orig1: no snapshot 'nothing' (it has: gold)\n"
    assert not (host.roots / "copy2").exists()
    assert host.run("svcs", "-H", f"{VM}:copy2", check=False).returncode != 0


def test_a_plain_directory_bundle_says_it_has_no_snapshots(
    host: ServiceHost, tmp_path: Path
) -> None:
    host.vmbundle("create", "plain1", "--ram", "64M", "--vcpus", "1", "--root", str(tmp_path))
    for argv in (("snapshot", str(tmp_path / "plain1")), ("snapshots", str(tmp_path / "plain1"))):
        proc = host.vmbundle(*argv, check=False)
        assert proc.returncode == 1
        assert proc.stderr == (
            f"plain1: its bundle {tmp_path / 'plain1'} is a plain directory, not a ZFS "
            "dataset, so it has no snapshots; make guests in a ZFS bundle root to have them\n"
        )
    bad = host.vmbundle("snapshot", str(tmp_path / "plain1"), "no way", check=False)
    assert bad.returncode == 1  # the bundle is refused before the name is looked at
