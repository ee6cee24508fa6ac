"""The test guest under bare QEMU, with the modern argv: asked on its serial console, it
powers itself off, panics or reboots, and a second QMP session (the controller's monitor)
sees each as QEMU reports it. One boot also checks a real screendump through
vmbundle.guest.screenshot."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from PIL import Image as PilImage
from qemu.qmp import QMPError
from qemu.qmp.legacy import QEMUMonitorProtocol
from support.guest import test_guest_iso
from support.serial import SerialLog
from test_qemu_argv_boots import QEMU, deadline, wait_for_socket
from test_qemu_argv_boots import pytestmark as boots_marks

from vmbundle.guest import screenshot
from vmbundle.guest.rundir import RunPaths
from vmbundle.qemu import profile as qemu_profile
from vmbundle.qemu.argv import ArgvFacts, build_argv
from vmbundle.vm.model import Cdrom, MiB, VmConfig, Vnc

pytestmark = boots_marks

# QEMU's 6-bit VGA palette turns the guest's 0x0000AA into 0x0000A8 (see test_guest_boots).
BANNER_BLUE = (0, 0, 0xA8)
WHITE = (0xFF, 0xFF, 0xFF)  # the text: bold white, the palette's 0x3F, which QEMU makes 0xFF

READY = r"^vmbundle-testguest: ready$"


@attrs.frozen
class Guest:
    serial: SerialLog
    qmp: QEMUMonitorProtocol  # on controller.qmp, which sees every event

    def event(self, *names: str, timeout: float = 30.0) -> dict[str, Any]:
        """The next event of one of these names; other events are passed over."""
        end = time.monotonic() + timeout
        seen: list[str] = []
        with contextlib.suppress(asyncio.TimeoutError):
            while (left := end - time.monotonic()) > 0:
                # A float: the legacy client takes an int for True, waiting forever.
                event = self.qmp.pull_event(wait=float(left))
                assert event is not None  # with a wait: an event, or TimeoutError
                if event["event"] in names:
                    return event
                seen.append(event["event"])
        pytest.fail(f"no {' or '.join(names)} event within {timeout:g}s; saw {seen}")

    def status(self) -> str:
        return str(self.qmp.cmd("query-status")["status"])


@contextlib.contextmanager
def booted(tmp_path: Path) -> Iterator[Guest]:
    """The test guest booted from its ISO, diskless, under TCG, up to "ready"."""
    # Short: UNIX socket paths must stay under 108 bytes, and pytest's are long.
    run_dir = Path(tempfile.mkdtemp(prefix="vmb", dir="/tmp"))
    run = RunPaths.for_guest(run_dir, "power")
    run.dir.mkdir()
    proc: subprocess.Popen[bytes] | None = None
    serial: SerialLog | None = None
    qmp: QEMUMonitorProtocol | None = None
    try:
        cfg = VmConfig(
            schema_version=1,
            name="power",
            uuid="3f0c2a6e-7b1d-4c8e-9a25-6d4e1f7b8c90",
            ram=256 * MiB,
            vcpus=1,
            cdroms=(Cdrom(id="cd0", boot_index=0),),
            vnc=Vnc(enabled=False),
        )
        facts = ArgvFacts(
            binary=QEMU,
            profile=qemu_profile.probe(QEMU, run_dir),
            # TCG on every host, so the test behaves the same everywhere.
            accel="tcg",
            bundle_dir=tmp_path,
            run=run,
            display=None,
            vnc_listen="127.0.0.1",
            isos={"cd0": test_guest_iso()},
            host_cpus=2,
        )
        log = run.dir / "qemu.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                build_argv(cfg, facts), stdin=subprocess.DEVNULL, stdout=out, stderr=out
            )
        wait_for_socket(run.controller_qmp, proc, log)
        serial = SerialLog(run.serial)
        qmp = QEMUMonitorProtocol(str(run.controller_qmp))
        qmp.settimeout(10)
        with deadline(10, "connecting to controller.qmp"):
            qmp.connect()
        serial.wait_for(READY, timeout=120)
        yield Guest(serial, qmp)
    finally:
        if qmp is not None:
            with contextlib.suppress(EOFError, OSError, QMPError):
                qmp.close()
        if serial is not None:
            serial.close()
        if proc is not None and proc.poll() is None:
            proc.kill()  # only the QEMU this test started, by its own pid
            proc.wait(timeout=10)
        shutil.rmtree(run_dir, ignore_errors=True)


def test_poweroff_asked_on_serial_is_a_guest_shutdown(tmp_path: Path) -> None:
    with booted(tmp_path) as guest:
        guest.serial.send("poweroff")
        guest.serial.wait_for(r"^vmbundle-testguest: powering off \(asked\)$")
        event = guest.event("SHUTDOWN")
        assert event["data"] == {"guest": True, "reason": "guest-shutdown"}
        # -no-shutdown: QEMU stays, the guest stopped.
        assert guest.status() == "shutdown"
        assert "poweroff" not in guest.serial.text  # raw, no echo: the command is not sent back


def test_panic_asked_on_serial_reaches_qemu_through_pvpanic(tmp_path: Path) -> None:
    with booted(tmp_path) as guest:
        # The banner first, while the guest still paints it: as the controller will take
        # it, a PPM made a PNG, whole and as a thumbnail.
        ppm = tmp_path / "screen.ppm"
        guest.qmp.cmd("screendump", filename=str(ppm))
        image = screenshot.parse_ppm(ppm.read_bytes())
        (tmp_path / "screen.png").write_bytes(screenshot.to_png(image))
        (tmp_path / "thumbnail.png").write_bytes(screenshot.to_png(screenshot.scale(image, 360)))
        check_banner(tmp_path / "screen.png", tmp_path / "thumbnail.png")

        guest.serial.send("panic")
        guest.serial.wait_for(r"^vmbundle-testguest: panicking \(asked\)$")
        event = guest.event("GUEST_PANICKED")
        assert event["data"]["action"] == "pause"
        assert guest.status() == "guest-panicked"


def test_reboot_asked_on_serial_is_a_guest_reset(tmp_path: Path) -> None:
    with booted(tmp_path) as guest:
        guest.serial.send("reboot")
        guest.serial.wait_for(r"^vmbundle-testguest: rebooting \(asked\)$")
        # QEMU 7.2 reports a guest's reset as RESET (SHUTDOWN only with -no-reboot).
        event = guest.event("RESET", "SHUTDOWN")
        assert event["event"] == "RESET"
        assert event["data"] == {"guest": True, "reason": "guest-reset"}
        # The same QEMU goes on to boot the guest again (another TCG boot, not waited for).
        assert guest.status() == "running"


def colours(png: Path) -> tuple[tuple[int, int], dict[tuple[int, int, int], float]]:
    """A PNG's size, and each colour's share of its pixels."""
    with PilImage.open(png) as shown:
        assert shown.format == "PNG"
        rgb = shown.convert("RGB")
    pixels = rgb.width * rgb.height
    return rgb.size, {c: n / pixels for n, c in rgb.getcolors(pixels) or []}


def check_banner(png: Path, thumbnail: Path) -> None:
    """The screen shows the guest's banner, white text on VGA blue, and still does when
    made 360 pixels wide."""
    size, shares = colours(png)
    assert size == (720, 400)  # VGA text mode
    assert shares.get(BANNER_BLUE, 0) > 0.5, f"too little of the banner's blue: {shares}"
    assert shares.get(WHITE, 0) > 0.005, f"too little white text: {shares}"
    size, shares = colours(thumbnail)
    assert size == (360, 200)
    assert shares.get(BANNER_BLUE, 0) > 0.5, f"too little of the banner's blue: {shares}"
    # Text at half size: its strokes blend with the blue, but stay far lighter.
    light = sum(share for (r, g, b), share in shares.items() if min(r, g, b) >= 0x80)
    assert light > 0.002, f"no text left in the thumbnail: {shares}"
