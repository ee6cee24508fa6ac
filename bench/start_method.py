"""How long the SMF start method takes to get a guest running, next to bare QEMU
started with the same command line, on both of the method's paths: with the
vmbundle controller online the method asks it for a prepared start (POST
/guests/NAME/start) and only execs QEMU and waits for QMP (method/quick.py),
and should cost at most 1.5 times QEMU's own time from exec to QMP reporting
the guest running; without the controller it does everything itself
(method/start.py), at most twice QEMU's time. End to end, `svcadm enable -s`
should take no longer than libvirt's `virsh start` of the same guest.

Brings up a throw-away devhost (state under /var/tmp, as the tests do), installs
the manifests (which enables the controller) and imports one guest without an
OS (64M RAM, 1 vCPU, one 64M qcow2 disk). Then two phases, each after a warm-up
of each of its starts, alternating them:

- `vmbundle-method start`, run directly with the environment svc.startd gives
  (SMF_FMRI, SMF_METHOD, PATH=<state>/bin:/usr/sbin:/usr/bin, VMBUNDLE_CONFIG),
  timed from exec to its exit 0; the guest is then quit over QMP and the stop
  method run to give back the display and the run directory;
- bare QEMU with the exact argv the method builds (vmbundle.guest.prepare.command_line),
  timed from exec until a raw QMP client, polling the control socket every 1 ms,
  gets `query-status` = running; then quit;
- phase 1 only: `svcadm enable -s` through the devhost's restarter, the
  end-to-end figure, followed by an untimed `svcadm disable -s` (the guest's
  stop_timeout is 1 s); and where libvirt is installed, `virsh start` of a
  libvirt domain of the same guest (what `vmbundle export --format libvirt`
  gives, as type 'qemu', on a copy of the disk), then an untimed `virsh
  destroy`. libvirtd is started as the interchange tests start it
  (tests/support/libvirt.py) if none answers, and stopped after if it was.

Phase 1 runs with the controller online (checked to answer; after it, the
controller's log must show a start.handed_off for every timed method start),
phase 2 after `svcadm disable -s` of the controller: the method's own path, which
the breakdown at the end takes apart.

Each phase also prints a rough figure for illumos: the method's time less its
emulated tools' busy time in each start (the devhost's tool log, bench/tool_time.py:
svcprop and kstat are Python scripts of 20-40 ms here, C programs of a
millisecond or two there); phase 1 also the controller's own share of each start
(the ms of its start.handed_off line, from the request to its answer).

It reports; it asserts nothing. The accelerator is what the host configuration
chooses ("auto") unless --accel forces one, in a copy of the devhost's
vmbundle.toml that the manifests then record.

    .venv/bin/python bench/start_method.py [--runs N] [--accel auto|kvm|tcg]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any
from xml.etree import ElementTree as ET

from vmbundle import settings
from vmbundle.adapters import controller_api, smf
from vmbundle.errors import VmbundleError
from vmbundle.guest import boot_record, prepare
from vmbundle.guest.display import port_free
from vmbundle.guest.process import pid_alive, running_pid
from vmbundle.guest.rundir import RunPaths
from vmbundle.qemu import qmp
from vmbundle.service.controller import ControllerPaths
from vmbundle.settings import HostSettings
from vmbundle.vm import bundle
from vmbundle.vm.bundle import Bundle

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from support.devhost import tear_down
from support.libvirt import URI, defined, domain_name, libvirt_daemon, virsh
from tool_time import ToolLog

TARGET_RATIO = 2.0  # the method's own path, to bare QEMU
QUICK_TARGET_RATIO = 1.5  # the method via the controller, to bare QEMU
VIRSH_TARGET_RATIO = 1.0  # svcadm enable -s, to virsh start
NAME = "bench"
FMRI = f"{smf.VM_SERVICE}:{NAME}"
BIN = Path(sys.executable).parent
DEVHOST = str(BIN / "devhost")
VMBUNDLE = str(BIN / "vmbundle")
METHOD = str(BIN / "vmbundle-method")
VNC_BASE_PORT = 5900

# Timed in a fresh interpreter for the breakdown: the start method's imports
# (as method/main.py does them), then its first steps, each on its own.
STEPS = """
import json, sys, time
t0 = time.perf_counter()
import vmbundle.method.main
from vmbundle.adapters import smf
from vmbundle.errors import VmbundleError
from vmbundle.method import start
from vmbundle.vm import bundle
from vmbundle import settings
from vmbundle.qemu import profile as qemu_profile
from pathlib import Path
t1 = time.perf_counter()
host = settings.load(None)
t2 = time.perf_counter()
b = bundle.load(Path(sys.argv[1]), host)
t3 = time.perf_counter()
qemu_profile.probe(host.qemu_binary, host.run_dir)
t4 = time.perf_counter()
ms = lambda a, b: (b - a) * 1000
print(json.dumps({"imports": ms(t0, t1), "host config": ms(t1, t2),
                  "bundle load": ms(t2, t3), "profile probe": ms(t3, t4)}))
"""


class Bench:
    """The devhost, the guest and every way of starting it."""

    def __init__(self, state: Path, config: Path, log: IO[bytes]) -> None:
        self.state = state
        self.config = config
        self.log = log
        self.host: HostSettings = settings.load(config)
        self.run = RunPaths.for_guest(self.host.run_dir, NAME)
        self.bundle_path = Path(self.host.bundle_roots[0]) / NAME
        self.bare: subprocess.Popen[bytes] | None = None
        # ms from exec to QEMU's pid file (QEMU writes it early, before machine
        # init), per timed start: splits the method's time around QEMU's exec.
        self.to_pidfile: dict[str, list[float]] = {"method": [], "bare": []}
        self.exec_ns = 0
        self.method_pids: list[int] = []  # of the timed start methods, for the handoff count
        # time.time() from exec to exit of each timed method start: the tools' share
        self.method_windows: list[tuple[float, float]] = []
        self.tools = ToolLog(state)
        self.api = ControllerPaths.under(self.host.run_dir).api_socket
        self.controller_log = (
            state
            / "var"
            / "svc"
            / "log"
            / f"{smf.CONTROLLER[len('svc:/') :].replace('/', '-')}.log"
        )

    # -- environment and tools -------------------------------------------------

    def env(self) -> dict[str, str]:
        """For the CLI and the svc* tools: ours, with the devhost first on PATH."""
        return {
            **os.environ,
            "PATH": f"{self.state / 'bin'}:{os.environ['PATH']}",
            "VMBUNDLE_CONFIG": str(self.config),
        }

    def method_env(self, method: str) -> dict[str, str]:
        """What the devhost's svc.startd gives a method of this service."""
        env = {
            "SMF_FMRI": FMRI,
            "SMF_METHOD": method,
            "SMF_RESTARTER": "svc:/system/svc/restarter:default",
            "SMF_ZONENAME": "global",
            "PATH": f"{self.state / 'bin'}:/usr/sbin:/usr/bin",
            "VMBUNDLE_CONFIG": str(self.config),
        }
        env.update(
            (k, v) for k, v in os.environ.items() if k in ("TZ", "LANG") or k.startswith("LC_")
        )
        return env

    def tool(self, *argv: str, check: bool = True, timeout: float = 300) -> str:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, env=self.env(), timeout=timeout
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stderr}")
        return proc.stdout

    def svc(self, name: str) -> str:
        return str(self.state / "bin" / name)

    def log_tail(self) -> str:
        self.log.flush()
        lines = (self.state / "bench.log").read_text(errors="replace").splitlines()
        return "\n".join(lines[-15:])

    # -- set-up ----------------------------------------------------------------

    def set_up(self) -> None:
        self.tool(VMBUNDLE, "smf", "install")
        made = ["create", NAME, "--ram", "64M", "--vcpus", "1", "--disk", "64M"]
        proc = subprocess.run(
            [VMBUNDLE, *made, "--import"], capture_output=True, text=True, env=self.env()
        )
        if proc.returncode != 0:
            if "--import" not in proc.stderr:
                raise RuntimeError(f"vmbundle create exited {proc.returncode}:\n{proc.stderr}")
            # create --import not there yet: what lib/adapters/smf.py add_instance does
            self.tool(VMBUNDLE, *made)
            smf.add_instance(NAME, str(self.bundle_path), binary=self.svc("svccfg"))
        # A guest without an OS ignores the power button: the restarter's stop
        # (after each svcadm cycle) then quits it after 1 s instead of 120.
        self.tool(VMBUNDLE, "set", NAME, "stop_timeout=1")

    # -- the start method --------------------------------------------------------

    def method(self, which: str, pids: list[int] | None = None) -> tuple[float, int]:
        """Run `vmbundle-method which` as svc.startd would: (ms from exec to exit, status)."""
        self.exec_ns = time.time_ns()
        # QEMU inherits the output, as it inherits the instance's log under SMF.
        return run_timed([METHOD, which], self.method_env(which), self.log, pids=pids)

    def method_start(self) -> float:
        began = time.time()
        ms, status = self.method("start", self.method_pids)
        self.method_windows.append((began, time.time()))
        if status != 0:
            raise RuntimeError(f"start method exited {status}:\n{self.log_tail()}")
        self.to_pidfile["method"].append(self.since_exec_to_pidfile())
        return ms

    # -- the controller ----------------------------------------------------------

    def controller_trouble(self) -> str | None:
        """None if the controller answers GET / on its socket; what is wrong if not."""
        if not self.api.is_socket():
            return f"{self.api} is not there"
        try:
            controller_api.get_json(self.api, "/", timeout=10)
        except VmbundleError as exc:
            return str(exc)
        return None

    def handed_off(self) -> list[tuple[int, float | None]]:
        """The method pid and the controller's ms (None if the line has none) of
        each of this guest's start.handed_off lines in the controller's log."""
        try:
            lines = self.controller_log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []
        pids = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if (
                isinstance(entry, dict)
                and entry.get("event") == "start.handed_off"
                and entry.get("vm") == NAME
                and isinstance(entry.get("pid"), int)
            ):
                ms = entry.get("ms")
                pids.append((entry["pid"], float(ms) if isinstance(ms, (int, float)) else None))
        return pids

    def disable_controller(self) -> None:
        self.tool(self.svc("svcadm"), "disable", "-s", smf.CONTROLLER, timeout=120)

    def since_exec_to_pidfile(self) -> float:
        """ms from the last exec to QEMU's writing its pid file (file times are coarse:
        a clock tick, a few ms)."""
        return (self.run.pidfile.stat().st_mtime_ns - self.exec_ns) / 1e6

    def quit_guest(self) -> None:
        """Quit the guest's QEMU over QMP (SIGKILL if it will not), then run the
        stop method, which finds it gone and gives back the display and run dir."""
        pid = running_pid(self.run)
        if pid is not None:
            with contextlib.suppress(VmbundleError):  # QEMU may close before answering
                qmp.execute(self.run, "quit", timeout=5.0)
            if not gone_within(pid, 15):
                os.kill(pid, signal.SIGKILL)  # the QEMU our start method started
                gone_within(pid, 15)
        _, status = self.method("stop")
        if status != 0:
            raise RuntimeError(f"stop method exited {status}:\n{self.log_tail()}")

    def method_qemu_argv(self) -> tuple[list[str], int | None]:
        """The running guest's QEMU command line, as the kernel has it, and its display."""
        pid = running_pid(self.run)
        record = boot_record.read(self.run)
        assert pid is not None and record is not None, "the guest is not running"
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return [a.decode() for a in raw.split(b"\0")[:-1]], record.display

    # -- bare QEMU ---------------------------------------------------------------

    def bare_argv(self, display: int | None) -> list[str]:
        """What prepare.prepare gives the start method, for this display."""
        b = bundle.load(self.bundle_path, self.host)
        return prepare.command_line(Bundle(b.path, prepare.with_macs(b.config)), self.host, display)

    def free_display(self) -> int | None:
        """The first display whose VNC port nobody holds (other guests on this
        machine may hold some); None for a guest without VNC."""
        b = bundle.load(self.bundle_path, self.host)
        if not b.config.vnc.enabled:
            return None
        for n in range(self.host.display_first, self.host.display_last + 1):
            if port_free(self.host.vnc_listen, VNC_BASE_PORT + n):
                return n
        raise RuntimeError("no free VNC display")

    def bare_start(self) -> float:
        """Exec QEMU with the method's argv: ms until QMP reports running; then quit it."""
        argv = self.bare_argv(self.free_display())
        prepare.clear_run_dir(self.run)
        self.run.dir.mkdir(parents=True, mode=0o700)
        self.exec_ns = time.time_ns()
        start = time.perf_counter()
        self.bare = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, close_fds=True
        )
        try:
            with running_session(self.bare, self.run.control_qmp) as session:
                ms = (time.perf_counter() - start) * 1000
                self.to_pidfile["bare"].append(self.since_exec_to_pidfile())
                with contextlib.suppress(OSError, EOFError):
                    session.command("quit")
            self.bare.wait(timeout=15)
        finally:
            if self.bare.poll() is None:
                self.bare.kill()
                self.bare.wait()
            self.bare = None
            prepare.clear_run_dir(self.run)
        return ms

    # -- through the restarter ---------------------------------------------------

    def svcadm_cycle(self) -> float:
        """ms of `svcadm enable -s` (to online); then an untimed `svcadm disable -s`."""
        ms, status = run_timed([self.svc("svcadm"), "enable", "-s", FMRI], self.env(), self.log)
        if status != 0:
            raise RuntimeError(f"svcadm enable -s exited {status}:\n{self.log_tail()}")
        self.tool(self.svc("svcadm"), "disable", "-s", FMRI, timeout=120)
        return ms

    # -- breakdown ---------------------------------------------------------------

    def unlogged_ms(self) -> float:
        """What a tool run's log line does not see, for one svcprop run."""
        argv = [self.svc("svcprop"), "-p", smf.BUNDLE_PROPERTY, FMRI]
        return self.tools.unlogged_ms(argv, self.method_env("start"))

    def breakdown(self, runs: int) -> dict[str, float]:
        """Medians of the method's parts, each timed on its own (the guest stopped)."""
        parts: dict[str, list[float]] = {}
        env = self.method_env("start")
        python = str(BIN / "python3")
        disk = self.bundle_path / "disk0.qcow2"
        for _ in range(runs + 1):  # the first fills caches, like the warm-ups
            timed = {
                "python start": timed_ms([python, "-c", "pass"], env),
                "svcprop": timed_ms([self.svc("svcprop"), "-p", smf.BUNDLE_PROPERTY, FMRI], env),
                "qemu-img info": timed_ms(
                    [self.host.qemu_img, "info", "--output=json", "-U", str(disk)], env
                ),
                # memory admission reads the ARC once when its maximum need not change
                "arc read": timed_ms(
                    [self.svc("kstat"), "-p", "zfs:0:arcstats", "unix:0:system_pages:physmem"], env
                ),
            }
            out = subprocess.run(
                [python, "-c", STEPS, str(self.bundle_path)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            timed.update(json.loads(out.stdout))
            for k, v in timed.items():
                parts.setdefault(k, []).append(v)
        return {k: statistics.median(v[1:]) for k, v in parts.items()}

    # -- clean-up ----------------------------------------------------------------

    def stop_everything(self) -> None:
        """Whatever is still up: the bare QEMU, the instance, the guest's QEMU."""
        if self.bare is not None and self.bare.poll() is None:
            self.bare.kill()
            self.bare.wait()
        with contextlib.suppress(Exception):
            self.tool(self.svc("svcadm"), "disable", "-s", FMRI, check=False, timeout=60)
        with contextlib.suppress(Exception):
            if running_pid(self.run) is not None:
                self.quit_guest()
        pid = running_pid(self.run)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            gone_within(pid, 15)


# -- libvirt -------------------------------------------------------------------


class LibvirtTwin:
    """The bench guest as a libvirt domain, on its own copy of the disk."""

    def __init__(self, name: str, log: IO[bytes]) -> None:
        self.name = name
        self.log = log

    def start_cycle(self) -> float:
        """ms of `virsh start` (exec to exit); then an untimed `virsh destroy`."""
        ms, status = run_timed(["virsh", "-c", URI, "start", self.name], dict(os.environ), self.log)
        if status != 0:
            raise RuntimeError(f"virsh start {self.name} exited {status}")
        virsh("destroy", self.name)
        return ms


def twin_xml(bench: Bench, name: str, disk: Path) -> tuple[str, str]:
    """The guest as `vmbundle export --format libvirt` has it, made type 'qemu' (TCG:
    libvirt-qemu may not open /dev/kvm here), renamed, without its uuid, on disk;
    and a line describing it."""
    dom = ET.fromstring(bench.tool(VMBUNDLE, "export", NAME, "--format", "libvirt"))
    dom.set("type", "qemu")
    name_el = dom.find("name")
    assert name_el is not None
    name_el.text = name
    uuid = dom.find("uuid")
    if uuid is not None:
        dom.remove(uuid)
    sources = dom.findall("./devices/disk[@device='disk']/source")
    if len(sources) != 1:
        raise RuntimeError(f"the exported domain has {len(sources)} disks, not 1")
    sources[0].set("file", str(disk))
    os_type = dom.find("./os/type")
    cpu = dom.find("./cpu/model")
    devices_el = dom.find("devices")
    devices = sorted({el.tag for el in devices_el} if devices_el is not None else set())
    shape = (
        f"type qemu, machine {os_type.get('machine') if os_type is not None else '?'}, "
        f"cpu {cpu.text if cpu is not None else 'host'}, "
        f"memory {dom.findtext('memory')} KiB, vcpu {dom.findtext('vcpu')}, "
        f"devices {' '.join(devices)}, VNC {'on' if dom.find('./devices/graphics') is not None else 'off'}"
    )
    return ET.tostring(dom, encoding="unicode") + "\n", shape


@contextlib.contextmanager
def libvirt_twin(bench: Bench) -> Iterator[LibvirtTwin | None]:
    """The guest defined in a libvirtd that answers (started, as the interchange
    tests start it, if none does, and then stopped after); None, with a line saying
    why, where libvirt is not installed or will not take the domain. The domain is
    destroyed and undefined and its disk deleted after, whatever happens."""
    missing = [tool for tool in ("virsh", "libvirtd", "virtlogd") if shutil.which(tool) is None]
    if missing:
        print(f"  libvirt: {', '.join(missing)} not installed; no comparison with virsh start")
        yield None
        return
    with contextlib.ExitStack() as stack:
        why = None
        try:
            stack.enter_context(libvirt_daemon())
            images = Path(tempfile.mkdtemp(prefix="vmb-sm-virt-", dir="/var/tmp"))
            stack.callback(shutil.rmtree, images, ignore_errors=True)
            images.chmod(0o755)  # libvirt's QEMU runs as libvirt-qemu
            disk = images / "disk0.qcow2"
            shutil.copyfile(bench.bundle_path / "disk0.qcow2", disk)
            disk.chmod(0o644)
            name = domain_name("vmb-bench")
            xml, shape = twin_xml(bench, name, disk)
            (images / "domain.xml").write_text(xml)
            (images / "domain.xml").chmod(0o644)
            stack.enter_context(defined(images / "domain.xml", name))
        except (RuntimeError, AssertionError, OSError, subprocess.SubprocessError) as exc:
            why = " ".join(str(exc).split())[:300]
        if why is not None:
            stack.close()  # whatever was set up, libvirtd too if this started it
            print(f"  libvirt: not available ({why}); no comparison with virsh start")
            yield None
            return
        print(f"  libvirt domain {name} at {URI}: {shape}; disk a copy of the guest's qcow2")
        yield LibvirtTwin(name, bench.log)


# -- helpers -------------------------------------------------------------------


class RawQmp:
    """The least QMP client: one line out, lines in until the reply."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = sock.makefile("rb")

    def read(self) -> dict[str, Any]:
        line = self.file.readline()
        if not line:
            raise EOFError("QEMU closed the monitor")
        message: dict[str, Any] = json.loads(line)
        return message

    def command(self, name: str) -> Any:
        self.sock.sendall(json.dumps({"execute": name}).encode() + b"\r\n")
        while True:
            message = self.read()
            if "return" in message:
                return message["return"]
            if "error" in message:
                raise RuntimeError(f"QMP {name}: {message['error']}")

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@contextlib.contextmanager
def running_session(
    proc: subprocess.Popen[bytes], path: Path, timeout: float = 60.0
) -> Iterator[RawQmp]:
    """A negotiated session on path once query-status says running; the socket
    is tried every 1 ms until QEMU accepts on it."""
    deadline = time.monotonic() + timeout
    session: RawQmp | None = None
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"QEMU exited with status {proc.returncode} before running")
            if time.monotonic() > deadline:
                raise RuntimeError(f"QEMU did not report running within {timeout:g}s")
            if session is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(timeout)
                try:
                    sock.connect(str(path))
                except (FileNotFoundError, ConnectionRefusedError):
                    sock.close()
                    time.sleep(0.001)
                    continue
                session = RawQmp(sock)
                session.read()  # greeting
                session.command("qmp_capabilities")
            if session.command("query-status").get("status") == "running":
                break
            time.sleep(0.001)
        yield session
    finally:
        if session is not None:
            session.close()


def gone_within(pid: int, seconds: float) -> bool:
    """Whether pid exits (or is left a zombie) within seconds."""
    deadline = time.monotonic() + seconds
    while pid_alive(pid) and not zombie(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True


def zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] == "Z"


def run_timed(
    argv: list[str],
    env: dict[str, str],
    out: IO[bytes] | int,
    limit: float = 180.0,
    pids: list[int] | None = None,
) -> tuple[float, int]:
    """(ms from exec to exit, status); the process's pid appended to pids. The wait
    blocks in waitpid: Popen.wait with a timeout polls with sleeps growing to 50 ms,
    which would round the exit up by as much; a timer kills a run that hangs instead."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out, close_fds=True
    )
    if pids is not None:
        pids.append(proc.pid)
    watchdog = threading.Timer(limit, proc.kill)
    watchdog.start()
    try:
        status = proc.wait()
    finally:
        watchdog.cancel()
    return (time.perf_counter() - start) * 1000, status


def timed_ms(argv: list[str], env: dict[str, str]) -> float:
    ms, status = run_timed(argv, env, subprocess.DEVNULL)
    if status != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {status}")
    return ms


def summary(label: str, times: list[float]) -> str:
    return (
        f"  {label:<32} median {statistics.median(times):6.1f} ms "
        f"(min {min(times):.1f}, max {max(times):.1f})"
    )


def devhost_up(state: Path, *options: str) -> None:
    """A throw-away devhost in state (torn down by support.devhost.tear_down)."""
    up = subprocess.run(
        [DEVHOST, "up", "--state", str(state), *options],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if up.returncode != 0:
        raise RuntimeError(f"devhost up exited {up.returncode}:\n{up.stderr}")


def devhost_config(state: Path, accel: str) -> Path:
    """The devhost's vmbundle.toml, or a copy of it that forces accel."""
    config = state / "vmbundle.toml"
    if accel == "auto":
        return config
    text = config.read_text()
    if "[qemu]" in text:
        raise RuntimeError(f"{config} already has a [qemu] section; cannot force the accelerator")
    copy = state / "bench-vmbundle.toml"
    copy.write_text(f'{text.rstrip()}\n\n[qemu]\naccelerator = "{accel}"\n')
    return copy


def accel_note(host: HostSettings) -> str:
    chosen = prepare.choose_accel(host.accelerator)
    if host.accelerator != "auto":
        return f"{chosen} (forced with --accel)"
    why = ""
    if chosen == "tcg" and os.access("/dev/kvm", os.R_OK | os.W_OK):
        why = "; /dev/kvm is not kvm_intel/kvm_amd, --accel kvm forces it"
    return f'{chosen} (host config "auto"{why})'


def main() -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--runs", type=int, default=10, help="timed runs of each (default 10)")
    parser.add_argument(
        "--accel",
        choices=("auto", "kvm", "tcg"),
        default="auto",
        help="accelerator (default: what the host configuration chooses)",
    )
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    state = Path(tempfile.mkdtemp(prefix="vmb-sm-", dir="/var/tmp"))
    bench: Bench | None = None
    try:
        devhost_up(state, "--pool-size", "384M")
        config = devhost_config(state, args.accel)
        with (state / "bench.log").open("ab") as log:
            bench = Bench(state, config, log)
            bench.set_up()
            return measure(bench, args.runs)
    finally:
        if bench is not None:
            bench.stop_everything()
        tear_down(state)
        shutil.rmtree(state, ignore_errors=True)


def measure(bench: Bench, runs: int) -> int:
    print(
        f"guest {NAME}: 64M RAM, 1 vCPU, one 64M qcow2 disk, no OS; "
        f"accelerator {accel_note(bench.host)}"
    )

    # Phase 1: the controller online, the method's quick path.
    trouble = bench.controller_trouble()
    if trouble is None:
        print(f"phase 1: the controller online ({smf.CONTROLLER} answers on {bench.api})")
    else:
        print(
            f"  WARNING: the controller does not answer ({trouble}); phase 1 is not the quick path"
        )
    with libvirt_twin(bench) as twin:
        steps: list[tuple[str, Callable[[], float]]] = [("svcadm", bench.svcadm_cycle)]
        if twin is not None:
            steps.append(("virsh", twin.start_cycle))
        bench.tools.on(True)
        quick, quick_pid = run_phase(bench, runs, steps)
        pids1 = set(bench.method_pids)
        windows1 = bench.method_windows
    up1 = load()
    handed = bench.handed_off()
    starts = 2 * (runs + 1) if trouble is None else 0  # method and svcadm, warm-ups too
    print(
        f"  {runs} runs each after a warm-up, alternating; exec to exit 0 / to QMP running; {up1}"
    )
    report_ratio(quick, "start method via the controller", QUICK_TARGET_RATIO)
    missed = pids1 - {pid for pid, _ in handed}
    if missed:
        print(
            f"  WARNING: {len(missed)} of {len(pids1)} timed method starts were not handed off "
            f"(no start.handed_off for their pids in {bench.controller_log}): the figure above "
            "mixes in the own path"
        )
    else:
        print(
            f"  all {len(pids1)} timed method starts handed off ({len(handed)} start.handed_off "
            f"lines for {NAME} in the controller's log, for {starts} starts via it)"
        )
    split(quick, quick_pid)
    unlogged = bench.unlogged_ms()
    illumos_estimate(bench, quick, windows1, unlogged, QUICK_TARGET_RATIO)
    planned = [ms for pid, ms in handed if pid in pids1 and ms is not None]
    if planned:
        print(
            f"  of which the controller's plan (start.handed_off ms, request to answer): "
            f"median {statistics.median(planned):.0f} ms (min {min(planned):.0f}, "
            f"max {max(planned):.0f})"
        )
    print(
        summary("svcadm enable -s", quick["svcadm"])
        + "  end to end (devhost's restarter and svcadm -s poll every 50 ms)"
    )
    if "virsh" in quick:
        print(summary("virsh start", quick["virsh"]) + "  libvirt's end to end, exec to exit")
        ratio = statistics.median(quick["svcadm"]) / statistics.median(quick["virsh"])
        verdict = "ok" if ratio <= VIRSH_TARGET_RATIO else "OVER"
        print(
            f"  svcadm/virsh ratio {ratio:.2f} (target {VIRSH_TARGET_RATIO:.1f} or less): {verdict}"
        )

    # Phase 2: the controller disabled, the method's own path.
    bench.disable_controller()
    trouble = bench.controller_trouble()
    answers = "WARNING: it still answers" if trouble is None else "it no longer answers"
    print(f"phase 2: {smf.CONTROLLER} disabled with svcadm disable -s ({answers})")
    bench.method_pids = []
    before = len(bench.handed_off())
    own, own_pid = run_phase(bench, runs, [])
    up2 = load()
    print(
        f"  {runs} runs each after a warm-up, alternating; exec to exit 0 / to QMP running; {up2}"
    )
    report_ratio(own, "start method, own path", TARGET_RATIO)
    if len(bench.handed_off()) > before:
        print("  WARNING: the controller handed off starts in phase 2")
    split(own, own_pid)
    illumos_estimate(bench, own, bench.method_windows, unlogged, TARGET_RATIO)
    bench.tools.on(False)

    own_ms = statistics.median(own["method"])
    bare_ms = statistics.median(own["bare"])
    parts = bench.breakdown(min(runs, 5))
    gap = own_ms - (
        parts["python start"]
        + parts["imports"]
        + parts["host config"]
        + parts["bundle load"]
        + parts["profile probe"]
        + parts["arc read"]
        + bare_ms
    )
    print(
        "  breakdown of the own path (medians, each timed alone): "
        f"python start {parts['python start']:.0f} ms, imports {parts['imports']:.0f}, "
        f"svcprop {parts['svcprop']:.0f} (alongside the imports), "
        f"host config {parts['host config']:.1f}, "
        f"bundle load {parts['bundle load']:.0f} (qemu-img info alone {parts['qemu-img info']:.0f}), "
        f"profile probe {parts['profile probe']:.1f}, "
        f"memory admission {parts['arc read']:.0f} (one kstat), QEMU to running {bare_ms:.0f} (bare), "
        f"rest {gap:.0f} (interpreter exit, polls, boot record, display)"
    )
    return 0


def run_phase(
    bench: Bench, runs: int, extra: list[tuple[str, Callable[[], float]]]
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """A warm-up of each start (checking that bare QEMU gets the method's very argv),
    then runs of each, alternating: their times, and each start's ms to QEMU's pid file."""
    bench.method_start()
    method_argv, display = bench.method_qemu_argv()
    bench.quit_guest()
    if bench.bare_argv(display) != method_argv:
        print("  WARNING: the bare argv differs from the start method's QEMU command line")
        print(f"    method: {method_argv}\n    bare:   {bench.bare_argv(display)}")
    bench.bare_start()
    for _, step in extra:
        step()

    bench.to_pidfile = {"method": [], "bare": []}
    bench.method_pids = []
    bench.method_windows = []
    steps = [("method", bench.method_start), ("bare", bench.bare_start), *extra]
    times: dict[str, list[float]] = {key: [] for key, _ in steps}
    for _ in range(runs):
        for key, step in steps:
            times[key].append(step())
            if key == "method":
                bench.quit_guest()
    return times, bench.to_pidfile


def illumos_estimate(
    bench: Bench,
    times: dict[str, list[float]],
    windows: list[tuple[float, float]],
    unlogged_ms: float,
    target: float,
) -> None:
    """The method's time less its emulated tools' busy time in each start: C
    programs of a millisecond or two on illumos. (The editable install's finders
    cost the method's interpreter ~14 ms of site, but what they import, pathlib
    and re among them, the method imports anyway: its imports under -I -S from a
    plain directory, as from a wheel, took 40 ms against 44 here, so nothing is
    taken off for them.)"""
    busy = [bench.tools.busy_ms(w, unlogged_ms) for w in windows]
    left = [ms - b for ms, b in zip(times["method"], busy, strict=True)]
    ratio = statistics.median(left) / statistics.median(times["bare"])
    print(
        f"  on illumos, roughly: the method less the emulated tools' busy time in each "
        f"start (median {statistics.median(busy):.0f} ms, each run with {unlogged_ms:.0f} ms "
        f"of interpreter its log cannot see) is ~{statistics.median(left):.0f} ms, a ratio "
        f"of ~{ratio:.1f} (target {target:.1f}; rough: it takes the tools' time as all on "
        "the critical path and C tools as free)"
    )


def report_ratio(times: dict[str, list[float]], label: str, target: float) -> None:
    ratio = statistics.median(times["method"]) / statistics.median(times["bare"])
    verdict = "ok" if ratio <= target else "OVER"
    print(summary(label, times["method"]))
    print(summary("bare QEMU", times["bare"]))
    print(f"  ratio {ratio:.2f} to bare QEMU (target {target:.1f} or less): {verdict}")


def split(times: dict[str, list[float]], to_pidfile: dict[str, list[float]]) -> None:
    """Where QEMU's exec falls in each (QEMU writes its pid file early, ~10 ms in):
    the method's lead over bare QEMU is its work before the exec; what it spends
    after the pid file beyond bare QEMU's own time goes on waiting for running,
    the boot record and the interpreter's exit."""
    method_ms = statistics.median(times["method"])
    bare_ms = statistics.median(times["bare"])
    method_pid = statistics.median(to_pidfile["method"])
    bare_pid = statistics.median(to_pidfile["bare"])
    before = method_pid - bare_pid
    after = (method_ms - method_pid) - (bare_ms - bare_pid)
    print(
        f"  split at QEMU's pid file (medians): exec to pid file {method_pid:.0f} ms "
        f"(bare {bare_pid:.0f}), then to exit {method_ms - method_pid:.0f} ms "
        f"(bare, to running: {bare_ms - bare_pid:.0f}): the method adds ~{before:.0f} ms "
        f"before QEMU's exec and ~{after:.0f} ms after it"
    )


def load() -> str:
    """The load averages, as uptime gives them: others may be running tests."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


if __name__ == "__main__":
    sys.exit(main())
