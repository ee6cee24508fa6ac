"""Memory admission end to end on a devhost with 8 GiB of simulated physical
memory: the real start and stop methods lower and raise the simulated ARC
through the emulated kstat and mdb, exactly as the policy says."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.host import VMBUNDLE
from support.service_host import VM, ServiceHost, service_host

from devhost.kernel import arc as simulated_arc
from vmbundle.guest.process import pid_alive, running_pid
from vmbundle.memory import policy

pytestmark = [pytest.mark.qemu, pytest.mark.zfs]

GiB, MiB = 1 << 30, 1 << 20
SHRINK_TIMEOUT = 4


@pytest.fixture(scope="module")
def host(zfs_pool: object) -> Iterator[ServiceHost]:
    extra = f"\n[memory]\nshrink_timeout = {SHRINK_TIMEOUT}\n"
    with service_host("--physmem", "8G", extra_config=extra) as h:
        yield h


@pytest.fixture(autouse=True)
def normal_speed(host: ServiceHost) -> Iterator[None]:
    yield
    simulated_arc.set_shrink_speed(host.state, simulated_arc.DEFAULT_SHRINK_SPEED)


def ledger(host: ServiceHost) -> dict[str, int]:
    path = host.run_dir / "memory.json"
    if not path.exists():
        return {}
    return {g: c["bytes"] for g, c in json.loads(path.read_text())["charges"].items()}


def memory_now(host: ServiceHost) -> policy.HostMemory:
    """T, R, F, c_min and the baseline as the policy sees them on this devhost
    (no guest charged: the baseline is the ARC maximum now)."""
    return policy.HostMemory.build(
        host.kstat("unix:0:system_pages:physmem") * 4096,
        host.kstat("zfs:0:arcstats:c_min"),
        host.kstat("zfs:0:arcstats:c_max"),
    )


def charge(ram: int) -> int:
    return policy.charge(ram, 1, policy.OverheadModel())


def test_starting_guests_lowers_the_arc_maximum_by_the_rule_and_stopping_raises_it_back(
    host: ServiceHost,
) -> None:
    mem = memory_now(host)
    baseline = mem.baseline
    host.create_test_guest("m1", "--ram", "1G")
    host.create("m2", "--ram", "2G")
    host.create("m3", "--ram", "3G")
    for name in ("m2", "m3"):
        host.vmbundle("set", name, "stop_timeout=1")
    charges: dict[str, int] = {}
    for name, ram in (("m1", 1 * GiB), ("m2", 2 * GiB)):
        host.vmbundle("start", name, "--wait")
        charges[name] = charge(ram)
        assert ledger(host) == charges
        expected = mem.physmem - mem.reserve - sum(charges.values())
        assert host.kstat("zfs:0:arcstats:c_max") == expected
        assert host.kstat("zfs:0:arcstats:size") <= expected + 64 * MiB
    # 8 GiB - 1 GiB reserve - 1.6 GiB floor leaves 5.4 GiB: m3's 3.3 GiB does not fit.
    refused = host.vmbundle("start", "m3", "--wait", check=False)
    assert refused.returncode == 1
    assert host.state_of("m3") == "maintenance"
    assert "m3: not enough memory: needs 3.3 GiB" in host.log("m3")
    status = host.vmbundle("status", "m3").stdout
    assert "m3: not enough memory: needs 3.3 GiB" in status
    assert ledger(host) == charges
    serial = host.serial("m1")
    try:
        serial.wait_for(r"vmbundle-testguest: ready", timeout=120)
        host.vmbundle("stop", "m1", "--wait")
        serial.wait_for(r"vmbundle-testguest: powering off", timeout=5)
    finally:
        serial.close()
    del charges["m1"]
    assert ledger(host) == charges
    assert host.kstat("zfs:0:arcstats:c_max") == mem.physmem - mem.reserve - charges["m2"]
    host.vmbundle("stop", "m2", "--wait")
    assert ledger(host) == {}
    assert host.kstat("zfs:0:arcstats:c_max") == baseline
    host.run("svcadm", "disable", f"{VM}:m3")


def test_ten_guests_enabled_at_once_when_four_fit(host: ServiceHost) -> None:
    mem = memory_now(host)
    names = [f"ten{i}" for i in range(10)]
    for name in names:
        host.create(name, "--ram", "1G")
        host.vmbundle("set", name, "stop_timeout=1")
    # 1 GiB guests are charged 1.3 GiB: four fit in 5.4 GiB, five do not.
    assert 4 * charge(GiB) <= mem.physmem - mem.reserve - mem.floor < 5 * charge(GiB)
    lowest: list[int] = []
    done = threading.Event()

    def sample() -> None:
        low = mem.baseline
        while not done.is_set():
            out = subprocess.run(
                ["kstat", "-p", "zfs:0:arcstats:c_max", "zfs:0:arcstats:c"],
                capture_output=True,
                text=True,
                env=host.env(),
            ).stdout
            for line in out.splitlines():
                low = min(low, int(line.split("\t")[1]))
        lowest.append(low)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        host.run("svcadm", "enable", *(f"{VM}:{n}" for n in names))
        deadline = time.monotonic() + 180
        while any(host.state_of(n) not in ("online", "maintenance") for n in names):
            assert time.monotonic() < deadline, [host.state_of(n) for n in names]
            time.sleep(0.2)
    finally:
        done.set()
        sampler.join()
    online = [n for n in names if host.state_of(n) == "online"]
    refused = [n for n in names if host.state_of(n) == "maintenance"]
    assert len(online) == 4
    assert len(refused) == 6
    for name in refused:
        assert f"{name}: not enough memory: needs 1.3 GiB" in host.log(name)
        # maintenance at once: one start, not three
        assert host.log(name).count("Executing start method") == 1
        assert running_pid(host.guest_run(name)) is None
    assert ledger(host) == {n: charge(GiB) for n in online}
    assert lowest[0] >= mem.floor
    assert host.kstat("zfs:0:arcstats:c_max") == mem.physmem - mem.reserve - 4 * charge(GiB)
    host.run("svcadm", "disable", "-s", *(f"{VM}:{n}" for n in names))
    assert ledger(host) == {}
    assert host.kstat("zfs:0:arcstats:c_max") == mem.baseline


def test_a_slowly_shrinking_arc_makes_the_start_wait(host: ServiceHost) -> None:
    host.create("slow1", "--ram", "2G")
    host.vmbundle("set", "slow1", "stop_timeout=1")
    simulated_arc.fill(host.state)
    size = host.kstat("zfs:0:arcstats:size")
    mem = memory_now(host)
    target = mem.physmem - mem.reserve - charge(2 * GiB)
    to_evict = size - target - 64 * MiB
    assert to_evict > 0
    # about 2 s of eviction: longer than no wait, shorter than the timeout
    simulated_arc.set_shrink_speed(host.state, to_evict // 2)
    begun = time.monotonic()
    host.vmbundle("start", "slow1", "--wait")
    took = time.monotonic() - begun
    assert 1.5 <= took < SHRINK_TIMEOUT + 2
    assert "slow1: waiting for the ARC to shrink" in host.log("slow1")
    assert host.kstat("zfs:0:arcstats:size") <= target + 64 * MiB
    host.vmbundle("stop", "slow1", "--wait")


def test_an_arc_that_will_not_shrink_fails_the_start_with_nothing_reserved(
    host: ServiceHost,
) -> None:
    host.create("stuck1", "--ram", "2G")
    baseline = host.kstat("zfs:0:arcstats:c_max")
    # the ARC is full: its size is at its maximum, and it evicts nothing
    simulated_arc.fill(host.state)
    simulated_arc.set_shrink_speed(host.state, 0)
    assert host.kstat("zfs:0:arcstats:size") > memory_now(host).physmem - 3 * GiB
    begun = time.monotonic()
    host.run("svcadm", "enable", f"{VM}:stuck1")
    host.wait_state("stuck1", "maintenance", timeout=SHRINK_TIMEOUT + 30)
    assert time.monotonic() - begun >= SHRINK_TIMEOUT
    assert "stuck1: the ARC did not shrink to" in host.log("stuck1")
    assert f"within {SHRINK_TIMEOUT}s" in host.log("stuck1")
    assert ledger(host) == {}
    assert host.kstat("zfs:0:arcstats:c_max") == baseline
    assert running_pid(host.guest_run("stuck1")) is None
    host.run("svcadm", "disable", f"{VM}:stuck1")


def test_a_killed_guest_leaves_its_charge_until_reconcile(host: ServiceHost) -> None:
    host.create("kill1", "--ram", "1G")
    baseline = host.kstat("zfs:0:arcstats:c_max")
    # Under SMF a killed QEMU's stop method gives the charge back before the
    # restart takes it again: one charge, not two.
    host.vmbundle("start", "kill1", "--wait")
    pid = running_pid(host.guest_run("kill1"))
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while running_pid(host.guest_run("kill1")) in (None, pid):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    host.wait_state("kill1", "online")
    assert ledger(host) == {"kill1": charge(GiB)}
    host.vmbundle("set", "kill1", "stop_timeout=1")
    host.vmbundle("stop", "kill1", "--wait")
    # A guest whose stop never runs (its `vmbundle run` killed with it) keeps its
    # charge until reconcile.
    run = subprocess.Popen(
        [VMBUNDLE, "run", "kill1"],
        env=host.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while (qemu := running_pid(host.guest_run("kill1"))) is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert ledger(host) == {"kill1": charge(GiB)}
        run.send_signal(signal.SIGKILL)
        run.wait()
        os.kill(qemu, signal.SIGKILL)
        while pid_alive(qemu):
            time.sleep(0.05)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert ledger(host) == {"kill1": charge(GiB)}
    out = host.vmbundle("memory", "reconcile").stdout
    assert out == "kill1: not running; its charge is released\n"
    assert ledger(host) == {}
    assert host.kstat("zfs:0:arcstats:c_max") == baseline


def test_reconcile_with_the_ledger_in_step_reads_no_arc(host: ServiceHost, tmp_path: Path) -> None:
    # The controller reconciles at every wake-up, sixteen times and more in a
    # boot storm: with nothing to change it must not run kstat each time.
    host.create("step1", "--ram", "1G")
    host.vmbundle("set", "step1", "stop_timeout=1")
    host.vmbundle("start", "step1", "--wait")
    try:
        log = tmp_path / "tools.jsonl"
        env = {**host.env(), "DEVHOST_TOOL_LOG": str(log)}
        done = subprocess.run(
            [VMBUNDLE, "memory", "reconcile"], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == "the ledger matches the guests running\n"

        def ran() -> list[str]:
            lines = log.read_text().splitlines() if log.exists() else []
            return [json.loads(line)["tool"] for line in lines]

        assert "kstat" not in ran() and "mdb" not in ran()
        # The log works: a kstat run by hand is in it.
        subprocess.run(
            ["kstat", "-p", "zfs:0:arcstats:c_max"], env=env, check=True, capture_output=True
        )
        assert ran().count("kstat") == 1
        assert ledger(host) == {"step1": charge(GiB)}
    finally:
        host.vmbundle("stop", "step1", "--wait")
    assert ledger(host) == {}


CONTROLLER = "svc:/system/vmbundle/controller:default"


def test_reconcile_charges_a_running_guest_the_ledger_lost(host: ServiceHost) -> None:
    host.create("lost1", "--ram", "1G")
    host.vmbundle("set", "lost1", "stop_timeout=1")
    host.vmbundle("start", "lost1", "--wait")
    lowered = host.kstat("zfs:0:arcstats:c_max")
    # The controller's own pass would charge the guest first (it reconciles too).
    host.run("svcadm", "disable", "-s", CONTROLLER)
    try:
        (host.run_dir / "memory.json").write_text('{"baseline": null, "charges": {}}')
        out = host.vmbundle("memory", "reconcile").stdout
    finally:
        host.run("svcadm", "enable", "-s", CONTROLLER)
    assert out == "lost1: running without a charge; charged now\n"
    assert ledger(host) == {"lost1": charge(GiB)}
    assert host.kstat("zfs:0:arcstats:c_max") == lowered
    host.vmbundle("stop", "lost1", "--wait")
    assert ledger(host) == {}
    # The saved baseline went with the file: the maximum found then became the
    # baseline, and the last stop restores that one.
    assert host.kstat("zfs:0:arcstats:c_max") == lowered
    # give the simulated kernel its boot-time maximum back for the tests after this one
    physmem = simulated_arc.read(host.state).physmem
    simulated_arc.poke(host.state, "c_max", simulated_arc.arc_init_defaults(physmem)[1])


def test_vmbundle_memory_shows_the_numbers_and_a_what_if(host: ServiceHost) -> None:
    mem = memory_now(host)
    report = json.loads(host.vmbundle("memory", "--json", "--size", "4G").stdout)
    assert report["backend"] == "illumos"
    assert report["physmem"] == 8 * GiB
    assert report["reserve"] == mem.reserve
    assert report["arc_floor"] == mem.floor
    assert report["arc"]["baseline"] == mem.baseline
    assert report["guests"] == {}
    assert report["headroom"] == mem.physmem - mem.reserve - mem.floor
    assert report["what_if"]["admitted"] is True
    assert report["what_if"]["arc_max"] == mem.physmem - mem.reserve - charge(4 * GiB)
    text = host.vmbundle("memory", "--size", "6G").stdout
    assert "physical memory  8.00 GiB" in text
    assert "a 6G guest: not enough memory: needs" in text
