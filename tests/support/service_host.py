"""A devhost with vmbundle's manifests installed, for end-to-end tests of guests
as SMF instances: the real `devhost`, `svc*` and `vmbundle` commands, the real
restarter, QEMU and zfs-fuse."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from support.devhost import devhost, tear_down
from support.guest import test_guest_iso
from support.host import VMBUNDLE
from support.serial import SerialLog
from vmbundle.adapters import controller_api
from vmbundle.errors import VmbundleError
from vmbundle.guest import boot_record
from vmbundle.guest.rundir import RunPaths
from vmbundle.qemu import qmp
from vmbundle.service.controller import ControllerPaths, nudge

VM = "svc:/system/vmbundle/vm"


@attrs.frozen
class ServiceHost:
    state: Path
    run_dir: Path
    roots: Path
    iso_dir: Path
    config: Path

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PATH": f"{self.state / 'bin'}:{os.environ['PATH']}",
            "VMBUNDLE_CONFIG": str(self.config),
        }

    def kstat(self, stat: str) -> int:
        """One statistic of the simulated kernel, as `kstat -p` prints it."""
        out = self.run("kstat", "-p", stat).stdout
        return int(out.split("\t")[1])

    def run(
        self, *argv: str, check: bool = True, timeout: float = 900
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, env=self.env(), timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
            )
        return proc

    def vmbundle(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(VMBUNDLE, *args, check=check)

    def state_of(self, name: str) -> str:
        proc = self.run("svcs", "-H", "-o", "state,nstate", f"{VM}:{name}", check=False)
        state, _, nstate = proc.stdout.strip().partition(" ")
        return state if nstate.strip() in ("", "-") else f"{state}*"

    def wait_state(self, name: str, wanted: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while (now := self.state_of(name)) != wanted:
            assert time.monotonic() < deadline, f"{name}: still {now}, never {wanted}"
            time.sleep(0.1)

    def log(self, name: str) -> str:
        return (self.state / "var/svc/log" / f"system-vmbundle-vm:{name}.log").read_text()

    def guest_run(self, name: str) -> RunPaths:
        return RunPaths.for_guest(self.run_dir, name)

    def record_or_none(self, name: str) -> boot_record.BootRecord | None:
        return boot_record.read(self.guest_run(name))

    def record(self, name: str) -> boot_record.BootRecord:
        record = self.record_or_none(name)
        assert record is not None, f"{name}: no boot record"
        return record

    def qmp(self, name: str, command: str, arguments: dict[str, Any] | None = None) -> Any:
        return qmp.execute(self.guest_run(name), command, arguments)

    def serial(self, name: str, timeout: float = 60) -> SerialLog:
        """The guest's serial console through the controller, which holds QEMU's
        own socket (one client at a time), once the controller is attached to it:
        every line the guest writes from then on arrives, and what is sent reaches
        the guest. Lines written before are only in the scrollback
        (RunPaths.serial_log); the controller attaches soon after the start
        method returns, before the test guest's first line."""
        deadline = time.monotonic() + timeout
        while name not in self.controller().get("serial", ()):
            assert time.monotonic() < deadline, (
                f"{name}: the controller never held its serial console (the guest is "
                f"{self.state_of(name)})"
            )
            time.sleep(0.05)
        run = self.guest_run(name)
        return SerialLog(run.serial_shared, timeout=timeout, scrollback=run.serial_log)

    # -- the controller, which `smf install` imports enabled ------------------------

    @property
    def api(self) -> Path:
        return ControllerPaths.under(self.run_dir).api_socket

    def controller(self, target: str = "/") -> Any:
        return controller_api.get_json(self.api, target, timeout=30)

    def wait_controller(self, timeout: float = 60) -> dict[str, Any]:
        """What the controller says of itself, once it answers."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                about: dict[str, Any] = self.controller()
                return about
            except VmbundleError:
                assert time.monotonic() < deadline, "the controller never answered"
                time.sleep(0.1)

    def controller_log(self) -> list[dict[str, Any]]:
        """The controller's JSON log lines, oldest first."""
        path = self.state / "var/svc/log/system-vmbundle-controller:default.log"
        return [json.loads(x) for x in path.read_text().splitlines() if x.startswith("{")]

    def web_url(self, timeout: float = 30) -> str:
        """The web console's URL, without its final slash, once the controller serves it."""
        path = ControllerPaths.under(self.run_dir).web_url
        deadline = time.monotonic() + timeout
        while not path.exists():
            assert time.monotonic() < deadline, "the controller never wrote its web console's URL"
            time.sleep(0.1)
        return path.read_text().strip().rstrip("/")

    def add_user(self, name: str, role: str, password: str) -> None:
        """A web console user; the password goes on stdin, as a script would give it."""
        subprocess.run(
            [VMBUNDLE, "user", "add", name, "--role", role],
            input=password + "\n",
            text=True,
            env=self.env(),
            check=True,
            capture_output=True,
        )

    def passes(self, count: int = 2) -> None:
        """Wait until the controller has made `count` whole passes from now; each is
        asked for with a nudge, as the methods give one."""
        first = self.controller()["passes"]
        deadline = time.monotonic() + 60
        while self.controller()["passes"] < first + count + 1:
            assert time.monotonic() < deadline, "the controller made no passes"
            nudge(self.run_dir, "test")
            time.sleep(0.1)

    def hostid(self) -> str:
        """This devhost's emulated hostid, as the product reads it."""
        return self.run("hostid").stdout.strip()

    def dataset(self, path: Path) -> str:
        """The ZFS dataset mounted at path."""
        out = self.run("zfs", "list", "-H", "-o", "name,mountpoint", "-t", "filesystem").stdout
        for line in out.splitlines():
            name, _, mountpoint = line.partition("\t")
            if mountpoint == str(path):
                return name
        raise AssertionError(f"no dataset is mounted at {path}")

    def create(self, name: str, *options: str) -> Path:
        """A bundle in the devhost's pool, imported as a disabled instance."""
        self.vmbundle("create", name, "--ram", "64M", "--vcpus", "1", *options, "--import")
        return self.roots / name

    def create_test_guest(self, name: str, *options: str) -> Path:
        """The test guest (boots to "ready" and powers off on ACPI), imported."""
        return self.create(
            name, "--ram", "128M", "--iso", str(self.iso_dir / "testguest.iso"), *options
        )


@contextmanager
def service_host(*up_options: str, extra_config: str = "") -> Iterator[ServiceHost]:
    """A devhost up with its pool, the test guest's ISO in its ISO dataset and
    vmbundle's manifests imported (for the devhost's host configuration, plus
    extra_config); down and destroyed afterwards."""
    state = Path(tempfile.mkdtemp(prefix="vmb-e2e-", dir="/var/tmp"))
    try:
        devhost("up", "--state", str(state), "--pool-size", "384M", *up_options)
        text = (state / "vmbundle.toml").read_text()
        config = state / "vmbundle-test.toml"
        config.write_text(text + extra_config)
        run_dir = Path(text.split("[run]")[1].split('"')[1])
        host = ServiceHost(
            state=state,
            run_dir=run_dir,
            roots=state / "zfs/vms",
            iso_dir=state / "zfs/iso",
            config=config,
        )
        shutil.copy(test_guest_iso(), host.iso_dir / "testguest.iso")
        host.vmbundle("smf", "install")
        yield host
    finally:
        tear_down(state)
        shutil.rmtree(state, ignore_errors=True)


@contextmanager
def two_service_hosts() -> Iterator[tuple[ServiceHost, ServiceHost]]:
    """Two devhosts side by side, each with its own pool, hostid and controller
    (answering): two appliances, for what crosses from one to the other."""
    with service_host() as a, service_host() as b:
        a.wait_controller()
        b.wait_controller()
        yield a, b
