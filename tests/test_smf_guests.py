"""Guests as SMF instances, end to end on a devhost: the real restarter runs the
real start, stop and refresh methods, which run real QEMU (the test guest
under the accelerator "auto" picks, or a guest with no OS at all)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.service_host import VM, ServiceHost, service_host

from vmbundle.guest.process import pid_alive, running_pid

pytestmark = [pytest.mark.qemu, pytest.mark.zfs]


@pytest.fixture(scope="module")
def host(zfs_pool: object) -> Iterator[ServiceHost]:
    # zfs_pool keeps the zfs-fuse daemon up between the modules that use it
    with service_host() as h:
        yield h


def qemu_pid(host: ServiceHost, name: str) -> int:
    pid = running_pid(host.guest_run(name))
    assert pid is not None, f"{name}: QEMU is not running"
    return pid


def wait_gone(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        assert time.monotonic() < deadline, f"pid {pid} still alive"
        time.sleep(0.05)


def displays(host: ServiceHost) -> str:
    path = host.run_dir / "displays.json"
    return path.read_text() if path.exists() else "{}"


def tree_digest(path: Path) -> dict[str, tuple[str, int, int]]:
    """Every file under path: content hash, mode and mtime."""
    out = {}
    for p in sorted(path.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(path))] = (
                hashlib.sha256(p.read_bytes()).hexdigest(),
                st.st_mode,
                st.st_mtime_ns,
            )
    return out


def test_enable_boots_the_guest_and_disable_powers_it_off_through_acpi(
    host: ServiceHost,
) -> None:
    host.create_test_guest("acpi1")
    assert host.state_of("acpi1") == "disabled"
    host.run("svcadm", "enable", "-s", f"{VM}:acpi1")
    assert host.state_of("acpi1") == "online"
    assert host.qmp("acpi1", "query-status")["status"] == "running"
    record = host.record("acpi1")
    assert record.display is not None
    assert '"guest": "acpi1"' in displays(host)
    pid = qemu_pid(host, "acpi1")
    status = json.loads(host.vmbundle("status", "acpi1", "--json").stdout)
    assert (status["state"], status["run_state"], status["qmp_error"]) == (
        "online",
        "running",
        None,
    )
    assert status["qemu_pid"] == pid
    assert (status["display"], status["vnc_port"]) == (record.display, 5900 + record.display)
    assert status["pending"] == []
    assert status["started"].startswith(time.strftime("%Y-%m-%d"))
    text = host.vmbundle("status", "acpi1").stdout.splitlines()
    assert f"qemu       pid {pid}, QMP: running" in text
    assert f"display    :{record.display} (VNC port {5900 + record.display})" in text
    row = next(r for r in host.vmbundle("list").stdout.splitlines() if r.startswith("acpi1 "))
    assert row.split()[:6] == ["acpi1", "online", "here", f":{record.display}", "128M", "1"]
    # QEMU serves one client per monitor: while another holds control.qmp, status
    # says so instead of hanging.
    holder = socket.socket(socket.AF_UNIX)
    holder.connect(str(host.guest_run("acpi1").control_qmp))
    try:
        held = json.loads(host.vmbundle("status", "acpi1", "--json").stdout)
        assert (held["run_state"], held["qmp_error"]) == (None, "not answering")
    finally:
        holder.close()
    serial = host.serial("acpi1")
    try:
        serial.wait_for(r"vmbundle-testguest: ready", timeout=120)
        begun = time.monotonic()
        host.run("svcadm", "disable", "-s", f"{VM}:acpi1")
        took = time.monotonic() - begun
        serial.wait_for(r"vmbundle-testguest: powering off", timeout=5)
    finally:
        serial.close()
    assert host.state_of("acpi1") == "disabled"
    assert took < record.config.stop_timeout
    assert "the guest powered off after" in host.log("acpi1")
    wait_gone(pid, 5)
    assert '"acpi1"' not in displays(host)
    assert not host.guest_run("acpi1").dir.exists()


def test_a_guest_that_ignores_acpi_is_quit_after_its_stop_timeout(host: ServiceHost) -> None:
    host.create("noos1")
    host.vmbundle("set", "noos1", "stop_timeout=2")
    host.run("svcadm", "enable", "-s", f"{VM}:noos1")
    pid = qemu_pid(host, "noos1")
    begun = time.monotonic()
    host.run("svcadm", "disable", "-s", f"{VM}:noos1")
    took = time.monotonic() - begun
    assert 2 <= took < 20
    assert "did not power off within 2s; quitting QEMU" in host.log("noos1")
    wait_gone(pid, 5)
    assert host.state_of("noos1") == "disabled"
    assert '"noos1"' not in displays(host)
    refused = host.vmbundle("destroy", "noos1", "--yes", check=False)
    assert refused.returncode == 1
    assert refused.stderr == (
        f"noos1: {VM}:noos1 names this bundle; remove the instance first: vmbundle forget noos1\n"
    )
    host.vmbundle("forget", "noos1")
    host.vmbundle("destroy", "noos1", "--yes")
    assert not (host.roots / "noos1").exists()


def test_a_forced_stop_quits_qemu_without_pressing_the_power_button(host: ServiceHost) -> None:
    host.create("noos2")
    host.vmbundle("set", "noos2", "stop_timeout=60")
    host.run("svcadm", "enable", "-s", f"{VM}:noos2")
    pid = qemu_pid(host, "noos2")
    begun = time.monotonic()
    done = host.vmbundle("stop", "noos2", "--force", "--wait")
    took = time.monotonic() - begun
    assert done.stdout == "noos2: disabled\n"
    assert took < 20, f"a force off waited {took:.1f}s, as for the guest"
    log = host.log("noos2")
    assert "forced off: quitting QEMU without asking the guest" in log
    assert "ACPI power button pressed" not in log.split("forced off")[-1]
    wait_gone(pid, 5)
    assert host.state_of("noos2") == "disabled"
    # The mark went with the run directory: the next stop asks the guest again.
    host.run("svcadm", "enable", "-s", f"{VM}:noos2")
    host.vmbundle("set", "noos2", "stop_timeout=1")
    host.vmbundle("stop", "noos2", "--wait")
    assert host.log("noos2").count("ACPI power button pressed") == 1
    host.vmbundle("forget", "noos2")
    host.vmbundle("destroy", "noos2", "--yes")


def test_an_iso_reaches_the_running_guest_on_refresh_and_a_machine_change_waits(
    host: ServiceHost, tmp_path: Path
) -> None:
    content = tmp_path / "content"
    content.mkdir()
    (content / "hello.txt").write_text("x" * 300_000)
    iso = host.iso_dir / "data.iso"
    subprocess.run(
        ["genisoimage", "-quiet", "-V", "DATA", "-o", str(iso), str(content)], check=True
    )
    host.create_test_guest("iso1", "--cdrom")
    host.run("svcadm", "enable", "-s", f"{VM}:iso1")
    pid = qemu_pid(host, "iso1")
    serial = host.serial("iso1")
    try:
        serial.wait_for(r"vmbundle-testguest: ready", timeout=120)
        attach = host.vmbundle("iso", "attach", "iso1", str(iso), "--drive", "cd1")
        assert f"svcadm refresh {VM}:iso1" in attach.stdout
        size = iso.stat().st_size
        serial.wait_for(rf"vmbundle-testguest: disk sr1 bytes {size}", timeout=30)
    finally:
        serial.close()
    blocks = {b["device"]: b for b in host.qmp("iso1", "query-block")}
    assert blocks["drive-cd1"]["inserted"]["file"] == str(iso)
    assert qemu_pid(host, "iso1") == pid
    # The restarted guest is still booting at the final disable, when an ACPI
    # event is lost: a short stop timeout, which applies without a restart.
    host.vmbundle("set", "iso1", "machine=q35", "stop_timeout=3")
    host.run("svcadm", "refresh", f"{VM}:iso1")
    deadline = time.monotonic() + 20
    while "machine: pc now, q35 from the next start" not in (
        status := host.vmbundle("status", "iso1").stdout
    ):
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    assert "stop_timeout" not in status
    assert host.record("iso1").config.stop_timeout == 3
    assert qemu_pid(host, "iso1") == pid
    host.run("svcadm", "restart", f"{VM}:iso1")
    host.wait_state("iso1", "online")
    deadline = time.monotonic() + 60
    while running_pid(host.guest_run("iso1")) in (None, pid):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert host.record("iso1").config.machine == "q35"
    assert host.record("iso1").pending == ()
    assert "from the next start" not in host.vmbundle("status", "iso1").stdout
    host.run("svcadm", "disable", "-s", f"{VM}:iso1")


def test_setprop_config_bundle_refresh_and_restart_move_the_instance(
    host: ServiceHost, tmp_path: Path
) -> None:
    first = host.create("moved1")
    host.vmbundle("set", "moved1", "stop_timeout=1")
    other_root = tmp_path / "dr"
    other_root.mkdir()
    host.vmbundle("create", "moved1", "--ram", "96M", "--vcpus", "1", "--root", str(other_root))
    second = other_root / "moved1"
    host.vmbundle("set", str(second), "stop_timeout=1")
    host.run("svcadm", "enable", "-s", f"{VM}:moved1")
    assert host.record("moved1").bundle == str(first)
    host.run(
        "svccfg", "-s", f"{VM}:moved1", "setprop", "config/bundle", "=", "astring:", f'"{second}"'
    )
    host.run("svcadm", "refresh", f"{VM}:moved1")
    deadline = time.monotonic() + 20
    while not host.record("moved1").pending:
        assert time.monotonic() < deadline, host.log("moved1")
        time.sleep(0.1)
    assert host.record("moved1").pending[0] == f"bundle: {first} now, {second} from the next start"
    host.run("svcadm", "restart", f"{VM}:moved1")
    deadline = time.monotonic() + 60
    while (r := host.record_or_none("moved1")) is None or r.bundle != str(second):
        assert time.monotonic() < deadline, host.log("moved1")
        time.sleep(0.1)
    host.wait_state("moved1", "online")
    assert host.record("moved1").config.ram == 96 << 20
    host.run("svcadm", "disable", "-s", f"{VM}:moved1")


def test_a_killed_qemu_is_started_again_and_repeated_crashes_end_in_maintenance(
    host: ServiceHost,
) -> None:
    host.create("crash1")
    host.run("svcadm", "enable", "-s", f"{VM}:crash1")
    pid = qemu_pid(host, "crash1")
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while running_pid(host.guest_run("crash1")) in (None, pid):
        assert time.monotonic() < deadline, host.log("crash1")
        time.sleep(0.1)
    host.wait_state("crash1", "online")
    assert host.qmp("crash1", "query-status")["status"] == "running"
    # svc.startd refuses the sixth start of five within 600 s on average.
    for _ in range(10):
        if host.state_of("crash1") == "maintenance":
            break
        host.wait_state("crash1", "online")
        pid = qemu_pid(host, "crash1")
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)
        deadline = time.monotonic() + 60
        while (
            host.state_of("crash1") not in ("online", "maintenance")
            or running_pid(host.guest_run("crash1")) == pid
        ):
            assert time.monotonic() < deadline, host.log("crash1")
            time.sleep(0.1)
    assert host.state_of("crash1") == "maintenance"
    assert "Restarting too quickly" in host.log("crash1")
    assert running_pid(host.guest_run("crash1")) is None
    assert '"crash1"' not in displays(host)
    host.run("svcadm", "disable", f"{VM}:crash1")


def test_a_broken_vm_json_puts_the_guest_in_maintenance_and_changes_nothing(
    host: ServiceHost,
) -> None:
    bundle = host.create("broken1")
    config = bundle / "vm.json"
    config.write_text(config.read_text().replace('"ram": "64M"', '"ram": "lots"'))
    before = tree_digest(bundle)
    host.run("svcadm", "enable", f"{VM}:broken1")
    host.wait_state("broken1", "maintenance")
    assert 'broken1: ram: must be a size like 20G, got "lots"' in host.log("broken1")
    explain = host.run("svcs", "-x", f"{VM}:broken1").stdout
    assert "maintenance" in explain
    status = host.vmbundle("status", "broken1").stdout
    assert "maintenance" in status
    assert 'ram: must be a size like 20G, got "lots"' in status
    assert tree_digest(bundle) == before
    assert not host.guest_run("broken1").dir.exists()
    host.run("svcadm", "disable", f"{VM}:broken1")


def test_eight_guests_enabled_at_once_get_eight_displays(host: ServiceHost) -> None:
    names = [f"many{i}" for i in range(8)]
    for name in names:
        host.create(name)
        host.vmbundle("set", name, "ram=32M", "stop_timeout=1")
    host.run("svcadm", "enable", *(f"{VM}:{n}" for n in names))
    for name in names:
        host.wait_state(name, "online", timeout=120)
    shown = {host.record(n).display for n in names}
    assert None not in shown
    assert len(shown) == 8
    host.run("svcadm", "disable", "-s", *(f"{VM}:{n}" for n in names))
    for name in names:
        assert '"' + name + '"' not in displays(host)


def test_a_qemu_that_fails_leaves_its_own_error_in_the_log_and_nothing_taken(
    host: ServiceHost,
) -> None:
    # A bridge that does not exist passes every check vmbundle can make before
    # QEMU runs; QEMU's bridge helper then fails.
    host.create("fails1", "--nic", "bridge:nosuchbr0")
    host.run("svcadm", "enable", f"{VM}:fails1")
    host.wait_state("fails1", "maintenance")
    log = host.log("fails1")
    assert "qemu-system-x86_64: " in log
    assert "fails1: QEMU exited with status 1 before the guest ran" in log
    # retryable: svc.startd ran the method three times before giving up
    assert log.count('Method "start" exited with status 1.') == 3
    assert "repeatedly" in host.run("svcs", "-x", f"{VM}:fails1").stdout
    assert '"fails1"' not in displays(host)
    assert not host.guest_run("fails1").dir.exists()
    host.run("svcadm", "disable", f"{VM}:fails1")
