"""The modern argv, run by the real QEMU: it starts, and QMP sees what the argv asked for."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest
from qemu.qmp import QMPError
from qemu.qmp.legacy import QEMUMonitorProtocol

from vmbundle.guest.rundir import RunPaths
from vmbundle.qemu import profile as qemu_profile
from vmbundle.qemu.argv import ArgvFacts, build_argv
from vmbundle.vm.model import Cdrom, Disk, MiB, VmConfig, Vnc

QEMU = "/usr/bin/qemu-system-x86_64"
QEMU_IMG = "/usr/bin/qemu-img"

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(
        not (os.access(QEMU, os.X_OK) and os.access(QEMU_IMG, os.X_OK)),
        reason="needs qemu-system-x86_64 and qemu-img",
    ),
]


def free_display() -> int:
    for n in range(60, 100):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", 5900 + n))
            except OSError:
                continue
            return n
    pytest.skip("no free VNC port from 5960 to 5999")


@contextlib.contextmanager
def deadline(seconds: int, what: str) -> Iterator[None]:
    """Fail instead of hanging: the legacy QMP client's connect() has no timeout of its own."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"{what} took more than {seconds}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def wait_for_socket(path: Path, proc: subprocess.Popen[bytes], log: Path) -> None:
    end = time.monotonic() + 10
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"QEMU exited with {proc.returncode}:\n{log.read_text()}")
        if time.monotonic() > end:
            pytest.fail(f"{path} did not appear within 10s:\n{log.read_text()}")
        time.sleep(0.01)


def test_modern_argv_boots_and_qmp_sees_its_devices(tmp_path: Path) -> None:
    # A comma and an '=' in the bundle's path: the argv must carry them to QEMU intact.
    bundle = tmp_path / "vms,x=1" / "smoke"
    bundle.mkdir(parents=True)
    subprocess.run(
        [QEMU_IMG, "create", "-q", "-f", "qcow2", str(bundle / "disk0.qcow2"), "64M"], check=True
    )
    # Short: UNIX socket paths must stay under 108 bytes.
    run_dir = Path(tempfile.mkdtemp(prefix="vmb", dir="/tmp"))
    # A comma in the run directory too: doubled in -chardev and -vnc, plain in -pidfile.
    run = RunPaths.for_guest(run_dir / "r,1", "smoke")
    run.dir.mkdir(parents=True)
    run.vnc_password.write_bytes(b"smoke123")
    proc: subprocess.Popen[bytes] | None = None
    try:
        cfg = VmConfig(
            schema_version=1,
            name="smoke",
            uuid="5a0e0b6c-1d2e-4f30-8a41-b52c63d74e85",
            ram=64 * MiB,
            vcpus=1,
            disks=(Disk(id="disk0", file="disk0.qcow2", size=64 * MiB, boot_index=0),),
            cdroms=(Cdrom(id="cd0"),),
            vnc=Vnc(password="smoke123"),
        )
        display = free_display()
        facts = ArgvFacts(
            binary=QEMU,
            profile=qemu_profile.probe(QEMU, run_dir),
            accel="kvm" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "tcg",
            bundle_dir=bundle,
            run=run,
            display=display,
            vnc_listen="127.0.0.1",
            isos={"cd0": None},
            host_cpus=2,
        )
        argv = build_argv(cfg, facts)
        log = run.dir / "qemu.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        wait_for_socket(run.control_qmp, proc, log)

        qmp = QEMUMonitorProtocol(str(run.control_qmp))
        qmp.settimeout(10)
        try:
            with deadline(10, "connecting to control.qmp"):
                qmp.connect()
            assert qmp.cmd("query-status")["status"] == "running"
            assert run.pidfile.read_text().strip() == str(proc.pid)

            block = {b["device"]: b for b in qmp.cmd("query-block")}
            assert block["drive-disk0"]["inserted"]["file"] == str(bundle / "disk0.qcow2")
            assert block["drive-cd0"]["removable"] is True
            assert "inserted" not in block["drive-cd0"]
            assert block["drive-cd0"].get("qdev") == "cd0"

            servers = {v["id"]: v for v in qmp.cmd("query-vnc-servers")}
            assert set(servers) == {"web", "display"}
            assert servers["web"]["server"][0]["family"] == "unix"
            assert servers["web"]["auth"] == "none"
            tcp = servers["display"]["server"][0]
            assert (tcp["host"], tcp["service"]) == ("127.0.0.1", str(5900 + display))
            assert servers["display"]["auth"] == "vnc"

            qmp.cmd("quit")
        finally:
            with contextlib.suppress(EOFError, OSError, QMPError):
                qmp.close()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()  # only the QEMU this test started, by its own pid
            proc.wait(timeout=10)
        shutil.rmtree(run_dir, ignore_errors=True)
