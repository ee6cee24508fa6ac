"""A running guest sent from one devhost to another (vmbundle send | vmbundle recv),
full and then incremental, on two devhosts side by side with zfs-fuse (two hosts, each
with its own hostid); the second host's controller imports what arrives, as a replica
that starts only once its owner record lets it: after a promote, or a take-over."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator

import pytest
from support.disks import holds, write
from support.host import VMBUNDLE
from support.service_host import ServiceHost, two_service_hosts

pytestmark = [pytest.mark.qemu, pytest.mark.zfs]

NODE = os.uname().nodename  # both devhosts run on this machine; their hostids differ


@pytest.fixture(scope="module")
def hosts(zfs_pool: object) -> Iterator[tuple[ServiceHost, ServiceHost]]:
    with two_service_hosts() as both:
        yield both


def pipe(a: ServiceHost, b: ServiceHost, send: list[str], recv: list[str]) -> tuple[str, str]:
    """`vmbundle send ... | vmbundle recv ...`, from a to b: what each said."""
    sender = subprocess.Popen(
        [VMBUNDLE, "send", *send], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=a.env()
    )
    assert sender.stdout is not None
    receiver = subprocess.run(
        [VMBUNDLE, "recv", *recv], stdin=sender.stdout, capture_output=True, text=True, env=b.env()
    )
    sender.stdout.close()
    _, said = sender.communicate(timeout=120)
    assert sender.returncode == 0, said.decode()
    assert receiver.returncode == 0, receiver.stderr
    return said.decode(), receiver.stdout


def sent_running(a: ServiceHost, b: ServiceHost, name: str, pattern: int) -> tuple[str, str]:
    """name running on a with pattern on its disk, sent whole to b and imported there
    (disabled); what send and recv said."""
    a.create(name, "--disk", "16M")
    a.vmbundle("start", name, "--wait")
    write(a, name, "drive-disk0", pattern)
    said = pipe(a, b, [name], [])
    wait_state(b, name, "disabled")
    return said


def wait_state(host: ServiceHost, name: str, wanted: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while host.run("svcs", "-H", f"svc:/system/vmbundle/vm:{name}", check=False).returncode:
        assert time.monotonic() < deadline, f"{name} was never imported"
        time.sleep(0.2)
    host.wait_state(name, wanted)


def test_a_running_guest_goes_across_full_then_incremental(
    hosts: tuple[ServiceHost, ServiceHost],
) -> None:
    a, b = hosts
    said, got = sent_running(a, b, "rep1", 0xA1)
    m = re.fullmatch(r"sent \S+@(vmbundle-\S+) \(full\); the guest was paused for \d+ ms\n", said)
    assert m, said
    first = m.group(1)
    assert got.startswith(f"received {b.dataset(b.roots)}/rep1@{first};"), got
    replica = b.roots / "rep1" / "disk0.qcow2"
    assert holds(replica, 0xA1)

    time.sleep(1.1)  # the next snapshot's default name is a second later
    write(a, "rep1", "drive-disk0", 0xB2)
    said, got = pipe(a, b, ["rep1", "--from", first], ["--force"])
    assert re.fullmatch(rf"sent \S+ \(incremental from \S+@{first}\);.*\n", said), said
    listed = json.loads(b.vmbundle("snapshots", "rep1", "--json").stdout)
    assert [s["snapshot"] for s in listed][:1] == [first] and len(listed) == 2
    assert holds(a.roots / "rep1" / "disk0.qcow2", 0xB2)
    # A replica's snapshot is a guest's past, to clone like any other.
    b.vmbundle("clone", f"rep1@{listed[1]['snapshot']}", "rep1new")
    assert holds(b.roots / "rep1new" / "disk0.qcow2", 0xB2), "the new write did not come across"

    # While A runs it, B holds a replica that A has not released: a start there is
    # refused before SMF is asked, so the instance stays disabled, not in maintenance.
    assert home(b, "rep1") == f"held by {NODE}"
    refused = b.vmbundle("start", "rep1", check=False)
    assert refused.returncode == 96
    assert refused.stderr == (
        f"rep1: owned by host {NODE} (hostid {a.hostid()}) since {owner_of(a, 'rep1')['time']}, "
        "which has not released it (the guest may be running there); stop it there, or if "
        "that host is down for good, take it over: vmbundle start rep1 --take-over\n"
    )
    assert b.state_of("rep1") == "disabled"

    # A stops it (its stop method releases the record) and sends once more.
    a.vmbundle("stop", "rep1", "--wait")
    assert owner_of(a, "rep1")["released"] is True
    time.sleep(1.1)
    pipe(a, b, ["rep1", "--from", listed[1]["snapshot"]], ["--force"])
    assert home(b, "rep1") == f"replica of {NODE}"
    refused = b.vmbundle("start", "rep1", check=False)
    assert (refused.returncode, refused.stderr.count("\n")) == (96, 1)
    assert "a replica of a guest of host" in refused.stderr
    assert refused.stderr.endswith("to make this host its home: vmbundle promote rep1\n")

    promoted = b.vmbundle("promote", "rep1").stdout
    assert promoted == (
        f"rep1: now this host's (generation 2), from host {NODE} (hostid {a.hostid()}); "
        "start it with vmbundle start rep1\n"
    )
    assert home(b, "rep1") == ""
    b.vmbundle("start", "rep1", "--wait")
    assert b.state_of("rep1") == "online"
    assert holds(b.roots / "rep1" / "disk0.qcow2", 0xB2), "B does not run A's last disk"
    record = owner_of(b, "rep1")
    assert (record["hostid"], record["generation"], record["released"]) == (b.hostid(), 2, False)
    b.vmbundle("stop", "rep1", "--wait")
    assert owner_of(b, "rep1")["released"] is True


def test_a_guest_whose_host_died_is_taken_over_deliberately(
    hosts: tuple[ServiceHost, ServiceHost],
) -> None:
    a, b = hosts
    sent_running(a, b, "rep2", 0xC3)
    # A "dies" here: its claim is never released. Promote alone will not take it.
    refused = b.vmbundle("promote", "rep2", check=False)
    assert refused.returncode == 96
    assert refused.stderr.endswith("take it over: vmbundle promote rep2 --take-over\n")
    assert owner_of(b, "rep2")["hostid"] == a.hostid()

    b.vmbundle("start", "rep2", "--take-over", "--wait")
    assert b.state_of("rep2") == "online"
    record = owner_of(b, "rep2")
    assert (record["hostid"], record["generation"], record["released"]) == (b.hostid(), 2, False)
    assert holds(b.roots / "rep2" / "disk0.qcow2", 0xC3)
    b.vmbundle("stop", "rep2", "--wait")
    a.vmbundle("stop", "rep2", "--wait")


def owner_of(host: ServiceHost, name: str) -> dict[str, object]:
    record: dict[str, object] = json.loads((host.roots / name / "owner.json").read_text())
    return record


def home(host: ServiceHost, name: str) -> str:
    rows = json.loads(host.vmbundle("list", "--json").stdout)
    return next(r["home"] or "" for r in rows if r["name"] == name)


def test_send_and_recv_refuse_a_terminal_and_a_plain_root(
    hosts: tuple[ServiceHost, ServiceHost],
) -> None:
    a, _ = hosts
    proc = a.run("script", "-qec", f"{VMBUNDLE} send nothing", "/dev/null", check=False)
    assert "a ZFS stream does not belong on a terminal" in proc.stdout, proc.stdout
    refused = subprocess.run(
        [VMBUNDLE, "recv", "/tmp"], input=b"", capture_output=True, env=a.env()
    )
    assert refused.returncode == 1
    assert b"bundle root /tmp: a plain directory, not a ZFS dataset" in refused.stderr
