"""A bundle with two disks and the test ISO boots (under the accelerator "auto"
picks: KVM where it can run the guest's stock kernel, else TCG), with
the command line `vmbundle run` builds: QMP says running, query-block shows both
disks and the CD-ROM, the screen shows the guest's banner, `disk resize` grows a
disk the guest sees, and the ACPI power button ends the run cleanly. Keys typed on the
guest's keyboard (QMP send-key, as the VNC server for the web console does) show at the
prompt under the banner as they are typed, and Enter reports the line on serial."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
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


# The test guest's VGA console: 80x25 cells of 9x16 pixels. Diskless with one CD-ROM, its
# banner takes rows 1-8, "disk sr0" row 9 and the status row 11 (1-based); the keyboard
# prompt sits on row 13 and the lines typed start on row 15 (see paint() in tests/guest/init).
CELL_W, CELL_H = 9, 16
HOSTNAME_ROW, HOSTNAME_TEXT = 6, "   hostname  vmbundle-testguest"
PROMPT_ROW = 13
TYPED_ROW = 15
TEXT_COLUMN = 14  # after "   type here> " and "   you typed: "
SHOTS = Path("/tmp/vmbundle-test-output/guest-prompt")


def screendump(qmp: QEMUMonitorProtocol, name: str) -> Image.Image:
    path = SHOTS / f"{name}.png"
    qmp.cmd("screendump", filename=str(path), format="png")
    with Image.open(path) as shown:
        image = shown.convert("RGB")
    assert image.size == (720, 400)  # VGA text mode
    return image


def rows(image: Image.Image, first: int, last: int) -> bytes:
    """The pixels of text rows first to last (1-based, inclusive)."""
    return image.crop((0, (first - 1) * CELL_H, image.width, last * CELL_H)).tobytes()


def cell(image: Image.Image, row: int, column: int) -> bytes:
    """The pixels of one character cell (row 1-based, column 0-based)."""
    x, y = column * CELL_W, (row - 1) * CELL_H
    return image.crop((x, y, x + CELL_W, y + CELL_H)).tobytes()


def glyphs(image: Image.Image) -> dict[str, bytes]:
    """The cells of the characters of the hostname row, by character: text drawn in the
    banner's colours shows the same pixels wherever it is."""
    return {ch: cell(image, HOSTNAME_ROW, i) for i, ch in enumerate(HOSTNAME_TEXT)}


def shows(
    image: Image.Image, row: int, text: str, font: dict[str, bytes], cursor: bool = True
) -> bool:
    """Whether row shows text from TEXT_COLUMN on, then the prompt's cursor (a "_", not in
    the font: any cell but a blank one) if cursor, then blank."""
    for i, ch in enumerate(text):
        if cell(image, row, TEXT_COLUMN + i) != font[ch]:
            return False
    end = TEXT_COLUMN + len(text)
    if cursor:
        if cell(image, row, end) == font[" "]:
            return False
        end += 1
    return all(cell(image, row, c) == font[" "] for c in range(end, end + 3))


def wait_for_screen(
    qmp: QEMUMonitorProtocol, name: str, ready: Callable[[Image.Image], bool], timeout: float
) -> Image.Image:
    """The first screendump that ready accepts."""
    end = time.monotonic() + timeout
    while True:
        image = screendump(qmp, name)
        if ready(image):
            return image
        assert time.monotonic() < end, f"the screen never showed it: see {SHOTS / name}.png"
        time.sleep(0.05)


def type_keys(qmp: QEMUMonitorProtocol, *qcodes: str) -> None:
    """Press and release each key in turn on the guest's PS/2 keyboard, as QEMU's VNC
    server does for noVNC's key events."""
    for qcode in qcodes:
        qmp.cmd("send-key", keys=[{"type": "qcode", "data": qcode}])


def test_guest_echoes_keys_typed_on_its_vga_console(host: TestHost, tmp_path: Path) -> None:
    """Keys typed on the keyboard show at once at the prompt under the banner; Enter moves
    the line among the lines typed and reports it on serial; a repaint of the banner (the
    CD-ROM's medium changed) keeps both the lines typed and a half-typed one."""
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    iso = host.iso_dir / "testguest.iso"
    host.vmbundle("create", "g1", "--ram", "256M", "--vcpus", "1", "--iso", str(iso))
    run = host.popen("run", "g1")
    try:
        wait_for_file(host.run_dir / "g1" / "console.sock")
        serial = SerialLog(host.run_dir / "g1" / "console.sock")
        serial.wait_for(r"^vmbundle-testguest: ready$", timeout=120)
        qmp = control(host, "g1")
        try:
            before = screendump(qmp, "1-ready")
            font = glyphs(before)
            assert shows(before, PROMPT_ROW, "", font), "no empty prompt"
            banner = rows(before, 1, PROMPT_ROW - 1)

            # A typo, erased with Backspace.
            started = time.monotonic()
            type_keys(qmp, "h", "e", "l", "l", "p", "backspace", "o")
            typing = wait_for_screen(
                qmp, "2-typing", lambda i: shows(i, PROMPT_ROW, "hello", font), timeout=10
            )
            print(f"7 keys typed and echoed in {time.monotonic() - started:.2f}s")
            assert rows(typing, 1, PROMPT_ROW - 1) == banner
            assert rows(typing, PROMPT_ROW, PROMPT_ROW) != rows(before, PROMPT_ROW, PROMPT_ROW)
            assert "typed" not in serial.text  # not before Enter

            type_keys(qmp, "ret")
            serial.wait_for(r"^vmbundle-testguest: typed hello$", timeout=10)
            entered = screendump(qmp, "3-entered")
            assert shows(entered, PROMPT_ROW, "", font)
            assert shows(entered, TYPED_ROW, "hello", font, cursor=False)
            assert rows(entered, 1, PROMPT_ROW - 1) == banner

            # Half a line, then a repaint: the CD-ROM's new size redraws the whole banner.
            type_keys(qmp, "s", "h", "e", "l", "l")
            half = wait_for_screen(
                qmp, "4-half", lambda i: shows(i, PROMPT_ROW, "shell", font), timeout=10
            )
            small = tmp_path / "small.iso"
            small.write_bytes(bytes(2 << 20))
            qmp.cmd(
                "blockdev-change-medium",
                id="cd0",
                filename=str(small),
                format="raw",
                **{"read-only-mode": "read-only"},
            )
            serial.wait_for(r"^vmbundle-testguest: disk sr0 bytes 2097152$", timeout=30)

            # Row 9 ("disk sr0") changes only when paint() redraws the whole screen; a
            # screendump may catch it half drawn, so wait for the screen as it should end:
            # the status, the prompt and the lines typed as they were.
            sr0, below = rows(half, 9, 9), rows(half, 10, 25)

            def repaint_done(image: Image.Image) -> bool:
                return rows(image, 9, 9) != sr0 and rows(image, 10, 25) == below

            repainted = wait_for_screen(qmp, "5-repainted", repaint_done, timeout=10)
            assert rows(repainted, 1, 8) == rows(before, 1, 8)  # the banner itself
            assert shows(repainted, PROMPT_ROW, "shell", font)
            assert shows(repainted, TYPED_ROW, "hello", font, cursor=False)

            type_keys(qmp, "ret")
            serial.wait_for(r"^vmbundle-testguest: typed shell$", timeout=10)
            last = screendump(qmp, "6-entered")
            assert shows(last, TYPED_ROW, "hello", font, cursor=False)
            assert shows(last, TYPED_ROW + 1, "shell", font, cursor=False)
            assert shows(last, PROMPT_ROW, "", font)
            qmp.cmd("system_powerdown")
        finally:
            qmp.close()
        serial.wait_for(r"^vmbundle-testguest: powering off$", timeout=30)
        assert run.wait(timeout=60) == 0
    finally:
        if run.poll() is None:
            run.terminate()  # vmbundle run stops its QEMU and cleans up on SIGTERM
            run.wait(timeout=30)
