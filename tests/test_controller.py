"""The controller end to end, on two devhosts side by side (each with its own SMF,
zfs-fuse pool and controller, run by its SMF as `vmbundle smf install` imports
it): bundles that arrive by `zfs recv`, guests that power off or panic, a
controller killed under three running guests, screenshots, and a flood of QMP
events."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from support.screen import shows_banner
from support.serial import SerialLog
from support.service_host import VM, ServiceHost, two_service_hosts

from vmbundle.adapters import controller_api
from vmbundle.guest.process import pid_alive, running_pid
from vmbundle.qemu import qmp

pytestmark = [pytest.mark.qemu, pytest.mark.zfs]

OUT = Path(os.environ.get("VMBUNDLE_TEST_OUTPUT", "/tmp/vmbundle-test-output")) / "controller"


@pytest.fixture(scope="module")
def hosts(zfs_pool: object) -> Iterator[tuple[ServiceHost, ServiceHost]]:
    with two_service_hosts() as both:
        yield both


@pytest.fixture(scope="module")
def a(hosts: tuple[ServiceHost, ServiceHost]) -> ServiceHost:
    return hosts[0]


@pytest.fixture(scope="module")
def b(hosts: tuple[ServiceHost, ServiceHost]) -> ServiceHost:
    return hosts[1]


def wait(what: str, predicate: object, timeout: float = 60, step: float = 0.05) -> float:
    """Seconds until predicate() is true."""
    started = time.monotonic()
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() - started < timeout, f"never: {what}"
        time.sleep(step)
    return time.monotonic() - started


def exists(host: ServiceHost, name: str) -> bool:
    proc = host.run("svcs", "-H", "-o", "state", f"{VM}:{name}", check=False)
    return proc.returncode == 0 and bool(proc.stdout.strip())


def send(src: ServiceHost, name: str, dst: ServiceHost, *, cut: float | None = None) -> int:
    """zfs send of src's bundle (a new snapshot) into dst's root, whole or cut off
    after a fraction of the stream; zfs recv's exit status."""
    dataset = src.dataset(src.roots / name)
    snap = f"{dataset}@s{time.monotonic_ns()}"
    src.run("zfs", "snapshot", snap)
    target = f"{dst.dataset(dst.roots)}/{name}"
    stream = subprocess.run(["zfs", "send", snap], capture_output=True, check=True).stdout
    if cut is not None:
        stream = stream[: int(len(stream) * cut)]
    proc = subprocess.run(["zfs", "recv", target], input=stream, capture_output=True)
    return proc.returncode


def test_the_controller_runs_under_smf_and_serves_only_root(a: ServiceHost) -> None:
    state = a.run("svcs", "-H", "-o", "state", "svc:/system/vmbundle/controller:default")
    assert state.stdout.strip() == "online"
    assert oct(a.api.stat().st_mode & 0o777) == "0o600"
    assert oct(a.api.parent.stat().st_mode & 0o777) == "0o700"
    logged = a.controller_log()
    assert any(e.get("event") == "controller.serving" for e in logged)
    assert all({"event", "level", "timestamp"} <= set(e) for e in logged)


def test_a_received_bundle_becomes_a_disabled_instance(a: ServiceHost, b: ServiceHost) -> None:
    a.create("sent1", "--disk", "16M")
    assert send(a, "sent1", b) == 0
    took = wait("sent1 imported on b", lambda: exists(b, "sent1"))
    # svc.startd shows a new instance "uninitialized" for a moment before "disabled".
    b.wait_state("sent1", "disabled")
    print(f"zfs recv exit to instance: {took:.3f}s")
    b.passes(2)
    assert b.state_of("sent1") == "disabled", "arriving never starts a guest"
    imported = [e for e in b.controller_log() if e.get("event") == "bundle.imported"]
    assert [e["vm"] for e in imported] == ["sent1"]


def test_a_receive_cut_off_halfway_is_never_imported(a: ServiceHost, b: ServiceHost) -> None:
    path = a.create("cut1", "--disk", "32M,format=raw")
    with (path / "disk0.img").open("r+b") as f:
        f.write(os.urandom(8 << 20))
    assert send(a, "cut1", b, cut=0.5) != 0
    b.passes(2)
    assert not exists(b, "cut1")
    # Whatever the cut-off receive left is not a guest.
    assert (
        not (b.roots / "cut1" / "vm.json").exists()
        or "cut1" in b.vmbundle("list", "--problems").stdout
    )


def test_an_invalid_received_bundle_is_listed_and_not_imported(
    a: ServiceHost, b: ServiceHost
) -> None:
    path = a.create("bad1")
    doc = json.loads((path / "vm.json").read_text())
    doc["ram"] = "lots"
    (path / "vm.json").write_text(json.dumps(doc))
    assert send(a, "bad1", b) == 0
    wait(
        "bad1 listed as a problem",
        lambda: (
            'bad1: ram: must be a size like 20G, got "lots"'
            in b.vmbundle("list", "--problems").stdout
        ),
    )
    b.passes(2)
    assert not exists(b, "bad1")
    assert any(e.get("event") == "bundle.problem" for e in b.controller_log())


def test_zfs_destroy_of_a_disabled_guests_bundle_removes_its_instance(
    a: ServiceHost, b: ServiceHost
) -> None:
    if not exists(b, "sent1"):
        a.create("sent1", "--disk", "16M")
        send(a, "sent1", b)
        wait("sent1 imported on b", lambda: exists(b, "sent1"))
    dataset = b.dataset(b.roots / "sent1")
    # zfs-fuse calls a dataset read a moment ago (the import checked its disk)
    # busy for a second or two; an administrator tries again, and so does this.
    wait(
        "zfs destroy to succeed",
        lambda: b.run("zfs", "destroy", "-r", dataset, check=False).returncode == 0,
        timeout=30,
        step=0.5,
    )
    wait("sent1's instance removed", lambda: not exists(b, "sent1"))
    # Logged once svccfg has returned, which is a moment after the instance went.
    wait(
        "the removal logged",
        lambda: any(e.get("event") == "bundle.gone" for e in b.controller_log()),
        timeout=10,
    )


def test_a_guest_that_powers_itself_off_ends_disabled(a: ServiceHost) -> None:
    a.create_test_guest("off1")
    a.run("svcadm", "enable", "-s", f"{VM}:off1")
    pid = running_pid(a.guest_run("off1"))
    assert pid is not None
    serial = a.serial("off1")
    serial.wait_for("vmbundle-testguest: ready", timeout=120)
    assert "off1" in json.loads(a.vmbundle("memory", "--json").stdout)["guests"]
    serial.send("poweroff")
    serial.wait_for(r"powering off \(asked\)")
    took = wait("off1 disabled", lambda: a.state_of("off1") == "disabled")
    print(f"guest poweroff to disabled: {took:.3f}s")
    wait("QEMU gone", lambda: not pid_alive(pid), timeout=10)
    assert "off1" not in json.loads(a.vmbundle("memory", "--json").stdout)["guests"]
    log = a.log("off1")
    assert "Restarting" not in log and "maintenance" not in log
    # Temporarily disabled: SMF's general/enabled is still what it was.
    assert a.run("svcprop", "-p", "general/enabled", f"{VM}:off1").stdout.strip() == "false"


CONTROLLER = "svc:/system/vmbundle/controller:default"


def test_a_power_off_while_the_controller_was_down_is_settled_when_it_comes_back(
    a: ServiceHost,
) -> None:
    a.create_test_guest("off2")
    a.run("svcadm", "enable", "-s", f"{VM}:off2")
    shared = a.serial("off2")
    shared.wait_for("vmbundle-testguest: ready", timeout=120)
    shared.close()
    a.run("svcadm", "disable", "-s", CONTROLLER)
    # The controller let go of QEMU's serial socket: it takes one client again.
    serial = SerialLog(a.guest_run("off2").serial)
    try:
        # Without the controller, what needs it says so in one line.
        down = a.vmbundle("qmp", "off2", "query-status", check=False)
        assert down.returncode == 1
        assert down.stderr.splitlines() == [
            f"the vmbundle controller is not running ({a.api}: No such file or directory); "
            f"enable it: svcadm enable {CONTROLLER}"
        ]
        assert a.vmbundle("list").returncode == 0, "the rest works without it"
        serial.send("poweroff")
        wait(
            "QEMU in its shutdown state",
            lambda: a.qmp("off2", "query-status")["status"] == "shutdown",
        )
        assert a.state_of("off2") == "online"
    finally:
        serial.close()  # before the controller comes back for it
        a.run("svcadm", "enable", "-s", CONTROLLER)
    wait("off2 disabled", lambda: a.state_of("off2") == "disabled")
    assert any(
        e.get("event") == "policy"
        and e.get("vm") == "off2"
        and "found powered off" in str(e.get("why"))
        for e in a.controller_log()
    )


def test_a_panic_follows_on_crash(a: ServiceHost) -> None:
    a.create_test_guest("crash1")
    a.run("svcadm", "enable", "-s", f"{VM}:crash1")
    pid = running_pid(a.guest_run("crash1"))
    serial = a.serial("crash1")
    serial.wait_for("vmbundle-testguest: ready", timeout=120)
    boots = serial.text.count("vmbundle-testguest: boot kernel")
    serial.send("panic")
    # on_crash=restart (the default): the same QEMU resets and boots again.
    wait(
        "crash1 booting again",
        lambda: serial.text.count("vmbundle-testguest: boot kernel") > boots,
        timeout=120,
    )
    assert running_pid(a.guest_run("crash1")) == pid
    assert a.state_of("crash1") == "online"

    a.create_test_guest("crash2")
    # A panicked guest ignores the power button: its stop would wait out 120 s.
    a.vmbundle("set", "crash2", "on_crash=preserve", "stop_timeout=3")
    a.run("svcadm", "enable", "-s", f"{VM}:crash2")
    serial2 = a.serial("crash2")
    serial2.wait_for("vmbundle-testguest: ready", timeout=120)
    serial2.send("panic")
    wait(
        "crash2 kept panicked",
        lambda: a.controller("/guests/crash2")["controller"]["preserved"] is not None,
        timeout=60,
    )
    doc = a.controller("/guests/crash2")
    assert doc["controller"]["run_state"] == "guest-panicked"
    assert a.state_of("crash2") == "online"
    a.run("svcadm", "disable", "-s", f"{VM}:crash2")


def running(host: ServiceHost, name: str) -> None:
    """The test guest `name` online, whichever tests ran before."""
    if not (host.roots / name).exists():
        host.create_test_guest(name)
    if host.state_of(name) != "online":
        host.run("svcadm", "enable", "-s", f"{VM}:{name}")


def test_screenshot_shows_the_banner(a: ServiceHost, tmp_path: Path) -> None:
    running(a, "crash1")
    out = tmp_path / "crash1.png"

    def banner() -> bool:
        a.vmbundle("screenshot", "crash1", "-o", str(out))
        return shows_banner(out)

    wait("the banner on the screen", banner, timeout=120, step=1)
    small = tmp_path / "crash1-160.png"
    a.vmbundle("screenshot", "crash1", "-o", str(small), "--width", "160")
    with Image.open(small) as img:
        assert img.width == 160
    OUT.mkdir(parents=True, exist_ok=True)
    shutil.copy(out, OUT / "screenshot.png")
    shutil.copy(small, OUT / "screenshot-160.png")
    # No dump is left in the run directory, and none was made in /tmp.
    assert not list(a.guest_run("crash1").dir.glob("screendump-*"))


def test_the_api_checks_what_it_is_asked(a: ServiceHost) -> None:
    bad = a.vmbundle("qmp", "nosuch1", "query-status", check=False)
    assert bad.returncode != 0 and "nosuch1" in bad.stderr and len(bad.stderr.splitlines()) == 1
    assert a.vmbundle("qmp", "crash1", "query-status", "[1]", check=False).returncode == 2
    off = a.vmbundle("screenshot", "off1", "-o", "/dev/null", check=False)
    assert off.returncode != 0 and "not running" in off.stderr
    running(a, "crash1")
    result = a.vmbundle("qmp", "crash1", "query-status")
    assert json.loads(result.stdout)["status"] == "running"
    refused = a.vmbundle("qmp", "crash1", "no-such-command", check=False)
    assert refused.returncode != 0 and "crash1: QMP no-such-command" in refused.stderr


def test_kill_9_of_the_controller_leaves_the_guests_alone(a: ServiceHost) -> None:
    names = ["keep1", "keep2", "keep3"]
    for n in names:
        a.create(n)
        # No OS to answer the power button: the stops at the end need not wait 120 s.
        a.vmbundle("set", n, "stop_timeout=1")
        a.run("svcadm", "enable", "-s", f"{VM}:{n}")
    pids = {n: running_pid(a.guest_run(n)) for n in names}
    wait("three sessions", lambda: set(names) <= set(a.controller()["sessions"]))
    old = a.controller()["pid"]
    os.kill(old, signal.SIGKILL)
    wait("a new controller", lambda: _pid_or_none(a) not in (None, old), timeout=60)
    wait("three sessions again", lambda: set(names) <= set(a.controller()["sessions"]))
    assert {n: running_pid(a.guest_run(n)) for n in names} == pids
    for n in names:
        assert a.state_of(n) == "online"
        assert a.qmp(n, "query-status")["status"] in ("running", "paused")
    for n in names:
        a.run("svcadm", "disable", "-s", f"{VM}:{n}")


def _pid_or_none(host: ServiceHost) -> int | None:
    try:
        return int(host.controller()["pid"])
    except Exception:
        return None


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_flood_of_qmp_events_does_not_grow_the_controller(a: ServiceHost) -> None:
    a.create("flood1")
    a.vmbundle("set", "flood1", "stop_timeout=1")
    a.run("svcadm", "enable", "-s", f"{VM}:flood1")
    wait("a session", lambda: "flood1" in a.controller()["sessions"])
    pid = int(a.controller()["pid"])
    run = a.guest_run("flood1")

    def stop_cont(n: int) -> None:
        def go(s: qmp.Session) -> None:
            for _ in range(n):
                s.execute("stop")
                s.execute("cont")

        qmp.with_control(run, go, timeout=600)

    stop_cont(500)  # warm up: the allocator, the caches
    before = _rss(pid)
    # Kept, each of these events would cost the controller about 1 KiB.
    stop_cont(5000)
    wait("the controller heard them", lambda: _events(a) >= 5500, timeout=120)
    after = _rss(pid)
    print(
        f"controller RSS {before / 2**20:.1f} MiB before, {after / 2**20:.1f} MiB after 10000 events"
    )
    assert after - before < 2 * 2**20
    text = controller_api.request(a.api, "GET", "/metrics").decode()
    for sample in (
        'vmbundle_guest_state{state="online",vm="flood1"} 1',
        'vmbundle_guest_ram_bytes{vm="flood1"} 67108864',
        'vmbundle_guest_rss_bytes{vm="flood1"} ',
        'vmbundle_guest_cpu_seconds_total{vm="flood1"} ',
        "vmbundle_arc_size_bytes ",
        "vmbundle_memory_headroom_bytes ",
    ):
        assert sample in text, sample
    a.run("svcadm", "disable", "-s", f"{VM}:flood1")


def _events(host: ServiceHost) -> int:
    text = controller_api.request(host.api, "GET", "/metrics").decode()
    for line in text.splitlines():
        if line.startswith('vmbundle_controller_events_total{kind="qmp:STOP"}'):
            return int(float(line.split()[-1]))
    return 0
