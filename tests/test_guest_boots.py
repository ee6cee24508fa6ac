"""A bundle with two disks and the test ISO boots (under the accelerator "auto"
picks: KVM where it can run the guest's stock kernel, else TCG), with
the command line `vmbundle run` builds: QMP says running, query-block shows both
disks and the CD-ROM, the screen shows the guest's banner, `disk resize` grows a
disk the guest sees, and the ACPI power button ends the run cleanly."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from qemu.qmp.legacy import QEMUMonitorProtocol
from support.guest import test_guest_iso
from support.host import TestHost, test_host
from support.serial import SerialLog

pytestmark = pytest.mark.qemu

# The test guest paints its banner white on VGA blue; QEMU's 6-bit VGA palette
# turns 0x2A into 0xA8.
BANNER_BLUE = (0, 0, 0xA8)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[TestHost]:
    iso_dir = tmp_path / "iso"
    iso_dir.mkdir()
    shutil.copy(test_guest_iso(), iso_dir / "testguest.iso")
    with test_host(tmp_path, iso_dir=iso_dir) as h:
        yield h


def control(host: TestHost, name: str) -> QEMUMonitorProtocol:
    qmp = QEMUMonitorProtocol(str(host.run_dir / name / "control.qmp"))
    qmp.connect()
    qmp.settimeout(10)
    return qmp


def wait_for_file(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_two_disk_guest_boots_shows_its_banner_and_grows_a_disk(
    host: TestHost, tmp_path: Path
) -> None:
    iso = host.iso_dir / "testguest.iso"
    host.vmbundle(
        "create",
        "g1",
        "--ram",
        "256M",
        "--vcpus",
        "1",
        "--disk",
        "64M",
        "--disk",
        "32M,bus=sata",
        "--iso",
        str(iso),
        "--nic",
        "user",
    )
    run = host.popen("run", "g1")
    try:
        wait_for_file(host.run_dir / "g1" / "console.sock")
        serial = SerialLog(host.run_dir / "g1" / "console.sock")
        serial.wait_for(r"^vmbundle-testguest: ready$", timeout=90)
        assert "vmbundle-testguest: disk vda bytes 67108864" in serial.text
        assert "vmbundle-testguest: disk sda bytes 33554432" in serial.text
        assert "vmbundle-testguest: disk sr0 bytes" in serial.text
        assert "vmbundle-testguest: nic eth0 mac 52:54:00:" in serial.text

        qmp = control(host, "g1")
        try:
            assert qmp.cmd("query-status")["status"] == "running"
            blocks = {b["device"]: b for b in qmp.cmd("query-block")}
            assert {"drive-disk0", "drive-disk1", "drive-cd0"} <= set(blocks)
            assert blocks["drive-disk0"]["inserted"]["image"]["virtual-size"] == 64 << 20
            assert blocks["drive-cd0"]["removable"] is True
            assert blocks["drive-cd0"]["inserted"]["file"] == str(iso)
            shot = tmp_path / "screen.png"
            qmp.cmd("screendump", filename=str(shot), format="png")
        finally:
            qmp.close()
        image = Image.open(shot).convert("RGB")
        colours = dict((rgb, n) for n, rgb in image.getcolors(1 << 16) or [])
        blue = colours.get(BANNER_BLUE, 0) / (image.width * image.height)
        assert image.size == (720, 400)  # VGA text mode, not the firmware's blank 640x480
        assert blue > 0.5, f"only {blue:.0%} of the screen is the banner's blue: {colours}"
        assert len(colours) >= 2  # text on it, not a flat fill

        resized = host.vmbundle("disk", "resize", "g1", "disk0", "128M")
        assert "is now 128M (live)" in resized.stdout
        serial.wait_for(r"^vmbundle-testguest: disk vda bytes 134217728$", timeout=30)
        doc = json.loads((host.root / "g1" / "vm.json").read_text())
        assert doc["disks"][0]["size"] == "128M"

        qmp = control(host, "g1")
        try:
            qmp.cmd("system_powerdown")
        finally:
            qmp.close()
        serial.wait_for(r"^vmbundle-testguest: powering off$", timeout=30)
        assert run.wait(timeout=60) == 0
        assert "the guest powered off" in (run.stderr.read() if run.stderr else "")
    finally:
        if run.poll() is None:
            run.terminate()  # vmbundle run stops its QEMU and cleans up on SIGTERM
            run.wait(timeout=30)
    assert not (host.run_dir / "g1").exists()
    assert json.loads((host.run_dir / "displays.json").read_text()) == {}
    host.vmbundle("validate", str(host.root / "g1"))
