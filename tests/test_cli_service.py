"""The SMF commands (import, forget, start, stop, restart, list, status) through the
real `vmbundle` command, on devhost's SMF with a stand-in vm service whose methods
run no QEMU: what is under test is what vmbundle asks of SMF and reports back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from smf_support import SmfHost, smf_host
from support.host import VMBUNDLE, TestHost, test_host

from vmbundle.guest import boot_record
from vmbundle.guest.boot_record import BootRecord
from vmbundle.guest.rundir import RunPaths
from vmbundle.vm import codec

VM = "svc:/system/vmbundle/vm"

# The vm service as far as these tests need it: no default instance, a start
# method that succeeds unless told to fail, a stop method that does nothing, and
# the transient model, so that enable and disable work without a process.
MANIFEST = """<?xml version="1.0"?>
<!DOCTYPE service_bundle SYSTEM "/usr/share/lib/xml/dtd/service_bundle.dtd.1">
<service_bundle type="manifest" name="vmbundle-vm-test">
  <service name="system/vmbundle/vm" type="service" version="1">
    <exec_method type="method" name="start" exec="{start}" timeout_seconds="10"/>
    <exec_method type="method" name="stop" exec=":true" timeout_seconds="10"/>
    <property_group name="startd" type="framework">
      <propval name="duration" type="astring" value="transient"/>
    </property_group>
  </service>
</service_bundle>
"""


@attrs.frozen
class Env:
    smf: SmfHost
    host: TestHost
    fail: Path
    """While this file exists, the stand-in start method prints a line and exits
    with the status the file holds."""

    def vmbundle(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [VMBUNDLE, *args],
            capture_output=True,
            text=True,
            timeout=120,
            env={**self.smf.env, "VMBUNDLE_CONFIG": str(self.host.config)},
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"vmbundle {' '.join(args)} exited {proc.returncode}: {proc.stderr}"
            )
        return proc

    def create(self, name: str, *more: str, ram: str = "64M", vcpus: int = 1) -> Path:
        self.vmbundle("create", name, "--ram", ram, "--vcpus", str(vcpus), *more)
        return self.host.root / name

    def instances(self) -> list[str]:
        out = self.smf.run("svcs", "-aH", "-o", "fmri", f"{VM}:*", check=False).stdout
        return out.split()

    def state(self, name: str) -> str | None:
        return self.smf.state_of(f"{VM}:{name}")

    def props(self, name: str, pg: str) -> dict[str, list[str]]:
        return self.smf.props(f"{VM}:{name}", pg)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with smf_host() as smf, test_host(tmp_path) as host:
        fail = tmp_path / "fail"
        start = tmp_path / "start"
        start.write_text(
            f'#!/bin/sh\nif [ -e {fail} ]; then echo "stand-in start failed"; exit "$(cat {fail})"; fi\n'
        )
        start.chmod(0o755)
        manifest = tmp_path / "vm.xml"
        manifest.write_text(MANIFEST.format(start=start))
        smf.run("svccfg", "import", str(manifest))
        yield Env(smf, host, fail)


def test_import_makes_a_disabled_instance_that_names_the_bundle(env: Env) -> None:
    web01 = env.create("web01")
    out = env.vmbundle("import", "web01").stdout
    assert out == (
        f"web01: imported as {VM}:web01 (disabled); start it with vmbundle start web01\n"
    )
    assert env.state("web01") == "disabled"
    assert env.props("web01", "config") == {"bundle": [str(web01)]}

    # By path, for scripts.
    web02 = env.create("web02")
    made = json.loads(env.vmbundle("import", str(web02), "--json").stdout)
    assert made == {
        "name": "web02",
        "fmri": f"{VM}:web02",
        "bundle": str(web02),
        "state": "disabled",
    }
    assert env.props("web02", "config") == {"bundle": [str(web02)]}


def test_a_broken_bundle_is_not_imported(env: Env) -> None:
    web01 = env.create("web01")
    doc = json.loads((web01 / "vm.json").read_text())
    doc["ram"] = "lots"
    (web01 / "vm.json").write_text(json.dumps(doc))
    proc = env.vmbundle("import", "web01", check=False)
    assert proc.returncode == 96
    assert proc.stderr.startswith("web01: ram: ")
    assert env.instances() == []


def test_a_second_import_of_a_name_is_refused_naming_the_first_bundle(
    env: Env, tmp_path: Path
) -> None:
    web01 = env.create("web01")
    env.vmbundle("import", "web01")
    # The same bundle again is the import done already (the controller may have
    # made it first): said, and nothing changes.
    again = env.vmbundle("import", "web01")
    assert again.stdout.startswith(f"web01: imported as {VM}:web01 (disabled)")
    other = tmp_path / "elsewhere" / "web01"
    shutil.copytree(web01, other)
    proc = env.vmbundle("import", str(other), check=False)
    assert proc.returncode == 1
    assert proc.stderr == (
        f"web01: already imported as {VM}:web01 ({web01}); to import another bundle under "
        "this name, forget it first: vmbundle forget web01\n"
    )
    assert env.instances() == [f"{VM}:web01"]


def test_list_shows_instances_and_bundles_not_imported(env: Env) -> None:
    web01 = env.create("web01", "--import")
    web02 = env.create("web02", ram="1G", vcpus=2)
    env.vmbundle("start", "web01", "--wait")
    lines = env.vmbundle("list").stdout.splitlines()
    assert lines == [
        "NAME   STATE         HOME  DISPLAY  RAM  VCPUS  BUNDLE",
        f"web01  online        here  -        64M      1  {web01}",
        f"web02  not-imported  here  -         1G      2  {web02}",
    ]
    rows = json.loads(env.vmbundle("list", "--json").stdout)
    assert rows == [
        {
            "name": "web01",
            "fmri": f"{VM}:web01",
            "state": "online",
            "next_state": None,
            "display": None,
            "vnc_port": None,
            "ram": "64M",
            "vcpus": 1,
            "bundle": str(web01),
            "home": None,
        },
        {
            "name": "web02",
            "fmri": None,
            "state": "not-imported",
            "next_state": None,
            "display": None,
            "vnc_port": None,
            "ram": "1G",
            "vcpus": 2,
            "bundle": str(web02),
            "home": None,
        },
    ]


def test_list_shows_an_unreadable_config_as_unknown(env: Env) -> None:
    web01 = env.create("web01", "--import")
    (web01 / "vm.json").write_text("{")
    assert (
        env.vmbundle("list").stdout.splitlines()[1]
        == f"web01  disabled  here  -          ?      ?  {web01}"
    )


def test_start_and_stop_wait_for_smf(env: Env) -> None:
    web01 = env.create("web01", "--import")
    out = env.vmbundle("start", "web01", "--wait").stdout
    assert out == "web01: online (until the host reboots: autostart is false)\n"
    assert env.state("web01") == "online"
    # Temporary, so that a guest without autostart stays off after a reboot.
    assert env.props("web01", "general")["enabled"] == ["false"]
    assert env.props("web01", "general_ovr")["enabled"] == ["true"]

    started = json.loads(env.vmbundle("status", "web01", "--json").stdout)
    assert started["state"] == "online"
    assert started["next_state"] is None
    assert started["reason"] is None
    assert started["qemu_pid"] is None  # the stand-in runs no QEMU
    assert started["bundle"] == str(web01)
    assert started["log"] is None

    assert env.vmbundle("stop", "web01", "--wait").stdout == "web01: disabled\n"
    assert env.state("web01") == "disabled"
    stopped = json.loads(env.vmbundle("status", "web01", "--json").stdout)
    assert stopped["state"] == "disabled"
    assert "disabled by an administrator" in stopped["reason"].lower()
    text = env.vmbundle("status", "web01").stdout.splitlines()
    assert text[:3] == ["name       web01", f"fmri       {VM}:web01", "state      disabled"]
    assert "qemu       not running" in text
    assert f"bundle     {web01}" in text


def test_start_of_a_guest_with_autostart_is_persistent(env: Env) -> None:
    env.create("web01", "--import")
    env.vmbundle("set", "web01", "autostart=true")
    assert env.vmbundle("start", "web01", "--wait").stdout == "web01: online\n"
    assert env.props("web01", "general")["enabled"] == ["true"]


def test_a_failed_start_reports_the_reason_and_start_clears_maintenance(env: Env) -> None:
    env.create("web01", "--import")
    env.fail.write_text("96")
    proc = env.vmbundle("start", "web01", "--wait", check=False)
    assert proc.returncode == 1
    first, *said = proc.stderr.splitlines()
    assert first.startswith("web01: maintenance, not online: ")
    assert first.endswith(" (details: vmbundle status web01)")
    # What the start method printed: the real method's line names the field and the fix.
    assert said == ["stand-in start failed"]

    status = json.loads(env.vmbundle("status", "web01", "--json").stdout)
    assert status["state"] == "maintenance"
    assert status["reason"]
    assert status["log"] == env.smf.run("svcs", "-L", f"{VM}:web01").stdout.strip()
    assert any("stand-in start failed" in line for line in status["log_tail"])
    assert len(status["log_tail"]) <= 10
    assert "stand-in start failed" in env.vmbundle("status", "web01").stdout

    env.fail.unlink()
    proc = env.vmbundle("start", "web01", "--wait")
    assert proc.stderr == "web01: was in maintenance; cleared it\n"
    assert env.state("web01") == "online"


def test_restart_waits_for_the_instance_to_come_back(env: Env) -> None:
    env.create("web01", "--import")
    refused = env.vmbundle("restart", "web01", check=False)
    assert refused.returncode == 1
    assert refused.stderr == "web01: disabled, not running; start it: vmbundle start web01\n"

    env.vmbundle("start", "web01", "--wait")
    assert env.vmbundle("restart", "web01", "--wait").stdout == "web01: online again\n"
    assert env.state("web01") == "online"
    starts = [x for x in env.smf.log_lines(f"{VM}:web01") if x.startswith("Executing start method")]
    assert len(starts) == 2


def test_forget_takes_a_stopped_guest_out_of_smf_and_keeps_its_bundle(env: Env) -> None:
    web01 = env.create("web01", "--import")
    env.vmbundle("start", "web01", "--wait")
    refused = env.vmbundle("forget", "web01", check=False)
    assert refused.returncode == 1
    assert refused.stderr == "web01: online; stop it first: vmbundle stop web01 --wait\n"
    assert env.state("web01") == "online"

    env.vmbundle("stop", "web01", "--wait")
    out = env.vmbundle("forget", "web01").stdout
    assert out == (
        f"web01: {VM}:web01 deleted; its bundle stays at {web01}; vmbundle import brings it back\n"
    )
    assert env.instances() == []
    assert (web01 / "vm.json").is_file()
    assert env.vmbundle("list").stdout.splitlines()[1].startswith("web01  not-imported")
    missing = env.vmbundle("start", "web01", check=False)
    assert missing.returncode == 1
    assert missing.stderr == "web01: no SMF instance; import it first: vmbundle import web01\n"


def test_create_import_makes_the_bundle_and_its_instance(env: Env, tmp_path: Path) -> None:
    web01 = env.create("web01", "--import")
    assert env.state("web01") == "disabled"
    assert env.props("web01", "config") == {"bundle": [str(web01)]}

    # A name already imported is refused before anything is made.
    other = tmp_path / "other"
    other.mkdir()
    proc = env.vmbundle(
        "create", "web01", "--ram", "64M", "--vcpus", "1", "--root", str(other), "--import",
        check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"web01: already imported as {VM}:web01 ({web01})")
    assert list(other.iterdir()) == []


def test_a_guest_name_is_never_a_pattern(env: Env) -> None:
    env.create("web01", "--import")
    env.vmbundle("start", "web01", "--wait")
    proc = env.vmbundle("stop", "*", check=False)
    assert proc.returncode == 2
    assert env.state("web01") == "online"


def test_status_of_a_bundle_not_imported_and_of_no_guest(env: Env) -> None:
    web01 = env.create("web01")
    status = json.loads(env.vmbundle("status", "web01", "--json").stdout)
    assert status["state"] == "not-imported"
    assert status["fmri"] is None
    assert status["bundle"] == str(web01)
    proc = env.vmbundle("status", "nosuch", check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("nosuch: no such guest")


# --- a run directory left behind ------------------------------------------------------


def test_a_boot_record_without_a_running_qemu_shows_no_display(env: Env) -> None:
    """What a crash leaves when no stop method cleaned up: the record, no QEMU
    holding its pid file. The running guest's side is in test_smf_guests.py."""
    env.create("web01", "--import")
    env.vmbundle("start", "web01", "--wait")
    run = RunPaths.for_guest(env.host.run_dir, "web01")
    run.dir.mkdir(parents=True)
    bundle = env.host.root / "web01"
    boot_record.write(
        run,
        BootRecord(
            bundle=str(bundle),
            config=codec.loads((bundle / "vm.json").read_bytes()),
            profile="modern",
            qemu_pid=os.getpid(),
            started=time.time(),
            fmri=f"{VM}:web01",
            display=7,
        ),
    )
    run.pidfile.write_text(f"{os.getpid()}\n")  # no lock on it: QEMU is gone
    assert env.vmbundle("list").stdout.splitlines()[1].startswith("web01  online  here  -  ")
    status = json.loads(env.vmbundle("status", "web01", "--json").stdout)
    assert (status["qemu_pid"], status["display"]) == (None, None)
