"""How quickly the controller reacts, and what it costs while nothing happens.

Brings up a throw-away devhost (state under /var/tmp, as the tests do), installs
the manifests (which starts `vmbundle-controller` under SMF) and measures, in one run:

1. zfs recv exit -> instance: a bundle made under the name it will have in a
   dataset outside the bundle roots (`<pool>/stage`), snapshotted, then
   `zfs send | zfs recv <pool>/vms/NAME`; timed from the receive's exit to the
   controller's "imported" event on `GET /events` (published once the instance
   exists; `svcs` then confirms it, untimed). Aim: under 0.5 s.
2. guest's own poweroff -> disabled: the test guest (tests/guest/build.py, or
   --iso) started with `svcadm enable -s`; once it says "ready" on its serial
   console it is sent "poweroff", and it says "powering off (asked)" and powers
   off. A guest whose init takes no commands is pressed its ACPI power button
   instead (QMP system_powerdown on the control monitor: the guest still powers
   itself off). Timed from the "powering off" line to the instance's state
   `disabled`, read from the SMF repository every 5 ms (`svcs` costs ~40 ms);
   the controller's events split it. Aim: under 1 s.
3. idle cost with 200 bundles: the controller is disabled, one bundle made in
   the stage dataset is cloned into the root until the root holds --bundles
   bundles (a clone is ~20 ms; each clone's vm.json gets its directory's name
   and a fresh uuid before the controller looks); the controller, enabled
   again, imports them (the quickest way on the devhost, whose repository is
   one JSON file rewritten whole for every change: ~1 s an import at 200
   instances, 3 minutes; the rate is printed). Once it has settled, its CPU
   over --window seconds (stretched to take in one full scan, which comes
   every 60 s), as % of one core: utime+stime from /proc/PID/stat, then with
   its children's cutime+cstime too (it runs svcs, svcprop and zfs); and its
   VmRSS. Its children are sampled every 20 ms to say what they are. Aims:
   under 0.5 % and under 60 MiB.

It reports; it asserts nothing. The devhost is taken down and its pool
destroyed at the end, unless --keep.

    .venv/bin/python bench/controller.py [--runs N] [--bundles N] [--window S]
                                         [--iso PATH] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devhost.smf import repository
from vmbundle import settings
from vmbundle.adapters import controller_api, smf
from vmbundle.errors import VmbundleError
from vmbundle.guest.process import pid_alive, running_pid
from vmbundle.guest.rundir import RunPaths
from vmbundle.qemu import qmp
from vmbundle.service.controller import ControllerPaths, nudge

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.devhost import DEVHOST, devhost, tear_down
from support.guest import test_guest_iso
from support.serial import SerialLog

AIM_IMPORT_S = 0.5
AIM_POWEROFF_S = 1.0
AIM_CPU_PCT = 0.5
AIM_RSS_MIB = 60.0

VM_SERVICE = smf.VM_SERVICE.removeprefix("svc:/")
BIN = Path(sys.executable).parent
VMBUNDLE = str(BIN / "vmbundle")
GUEST = "pwr"
RELEASE = "bench-release"  # a bad bundle that makes the controller publish an event
READY = "vmbundle-testguest: ready"
POWERING_OFF = r"vmbundle-testguest: powering off( \(asked\))?"
STATE_POLL_SECONDS = 0.005
CHILD_POLL_SECONDS = 0.02
RECEIVE_POLL_SECONDS = 0.005  # the tools of one receive's pass are short
FULL_SCAN_WAIT_SECONDS = 40.0


class Events:
    """The controller's `GET /events`, followed in a thread, each event with the
    monotonic time it arrived. Closed before the controller is stopped: the
    controller's API waits for open streams to end (aiohttp's shutdown_timeout,
    60 s) before it exits."""

    def __init__(self, api: Path) -> None:
        self.api = api
        self.seen: list[tuple[float, dict[str, Any]]] = []
        self.cond = threading.Condition()
        self.hellos = 0
        self.sock: socket.socket | None = None
        self.thread: threading.Thread | None = None

    def open(self) -> None:
        """Connect (the controller answers by now) and follow in a thread."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(self.api))
        sock.sendall(b"GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        self.sock = sock
        hellos = self.hellos
        self.thread = threading.Thread(target=self._follow, args=(sock,), daemon=True)
        self.thread.start()
        with self.cond:
            if not self.cond.wait_for(lambda: self.hellos > hellos, 30):
                raise RuntimeError("the controller's /events stream never answered")

    def close(self) -> bool:
        """Whether it was open."""
        sock, self.sock = self.sock, None
        if sock is None:
            return False
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        if self.thread is not None:
            self.thread.join(timeout=5)
        sock.close()
        return True

    def _follow(self, sock: socket.socket) -> None:
        response = http.client.HTTPResponse(sock)
        with contextlib.suppress(OSError, ValueError, http.client.HTTPException):
            response.begin()
            for line in response:
                if not line.strip():
                    continue
                now = time.monotonic()
                event = json.loads(line)
                with self.cond:
                    self.hellos += event.get("kind") == "hello"
                    self.seen.append((now, event))
                    self.cond.notify_all()

    def mark(self) -> int:
        with self.cond:
            return len(self.seen)

    def wait(
        self, what: str, match: Callable[[dict[str, Any]], bool], since: int, timeout: float
    ) -> tuple[float, dict[str, Any]]:
        """The first event from index since on that matches, and when it came."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for t, event in self.seen[since:]:
                    if match(event):
                        return t, event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"no {what} event within {timeout:g}s")
                self.cond.wait(left)

    def find(self, match: Callable[[dict[str, Any]], bool], since: int) -> float | None:
        with self.cond:
            return next((t for t, e in self.seen[since:] if match(e)), None)


class Bench:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.config = state / "vmbundle.toml"
        self.host = settings.load(self.config)
        self.pool = json.loads((state / "devhost.json").read_text())["pool"]
        self.root = Path(self.host.bundle_roots[0])
        self.root_dataset = f"{self.pool}/vms"
        self.stage = f"{self.pool}/stage"
        self.api = ControllerPaths.under(self.host.run_dir).api_socket
        self.repo = repository.Repository(state)
        self.stage_dir = Path()
        self.events = Events(self.api)

    # -- tools ----------------------------------------------------------------

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PATH": f"{self.state / 'bin'}:{os.environ['PATH']}",
            "VMBUNDLE_CONFIG": str(self.config),
        }

    def tool(self, *argv: str, timeout: float = 300) -> str:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, env=self.env(), timeout=timeout
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stderr}")
        return proc.stdout

    def controller_log(self, lines: int = 15) -> str:
        log = self.state / "var/svc/log" / f"{smf.CONTROLLER[5:].replace('/', '-')}.log"
        try:
            return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"({log}: {exc.strerror})"

    def about(self) -> dict[str, Any]:
        found: dict[str, Any] = controller_api.get_json(self.api, "/", timeout=30)
        return found

    def wait_controller(self, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.about()
            except VmbundleError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the controller never answered on {self.api}; its log:\n"
                        + self.controller_log()
                    ) from None
                time.sleep(0.1)

    def settle(self, passes: int = 2) -> None:
        """Until the controller has made `passes` whole passes from now (each asked
        for with a nudge, as the methods give one)."""
        first = self.about()["passes"]
        deadline = time.monotonic() + 120
        while self.about()["passes"] < first + passes + 1:
            if time.monotonic() > deadline:
                raise RuntimeError("the controller made no passes")
            nudge(self.host.run_dir, "bench")
            time.sleep(0.2)

    def states(self) -> dict[str, tuple[str, str]]:
        """Instance name -> (state, next_state), straight from the repository."""
        doc = self.repo.read()
        service = doc["services"].get(VM_SERVICE, {"instances": {}})
        out = {}
        for name in service["instances"]:
            pgs = repository.current_view_of(doc, VM_SERVICE, name)
            state = repository.get_values(pgs, "restarter", "state") or [""]
            nstate = repository.get_values(pgs, "restarter", "next_state") or ["none"]
            out[name] = (state[0], nstate[0])
        return out

    def make_source(self, name: str) -> str:
        """A small bundle named name in the stage dataset, snapshotted: the snapshot."""
        self.tool(VMBUNDLE, "create", name, "--ram", "64M", "--vcpus", "1", "--root", self.stage)
        snap = f"{self.stage}/{name}@send"
        self.tool("zfs", "snapshot", snap)
        return snap

    # -- set-up ---------------------------------------------------------------

    def set_up(self, iso: Path) -> None:
        self.tool(VMBUNDLE, "smf", "install")
        self.wait_controller()
        self.events.open()
        self.tool("zfs", "create", self.stage)
        self.stage_dir = Path(
            self.tool("zfs", "get", "-H", "-o", "value", "mountpoint", self.stage).strip()
        )
        shutil.copy(iso, self.host.iso_dirs[0] / "testguest.iso")

    # -- 1. zfs recv exit -> instance -----------------------------------------

    def receive(self, name: str, tools: Counter[str]) -> float:
        """Seconds from `zfs recv` exiting to the controller's "imported" event;
        the tools the controller ran meanwhile are added to tools."""
        snap = self.make_source(name)
        with ChildSampler(int(self.about()["pid"]), every=RECEIVE_POLL_SECONDS) as sampler:
            took = self._receive(name, snap)
        tools.update(sampler.tools())
        return took

    def _receive(self, name: str, snap: str) -> float:
        since = self.events.mark()
        env = self.env()
        send = subprocess.Popen(["zfs", "send", snap], stdout=subprocess.PIPE, env=env)
        assert send.stdout is not None
        recv = subprocess.Popen(
            ["zfs", "recv", f"{self.root_dataset}/{name}"], stdin=send.stdout, env=env
        )
        send.stdout.close()
        status = recv.wait()
        exited = time.monotonic()
        if send.wait() != 0 or status != 0:
            raise RuntimeError(f"zfs send | zfs recv of {snap} failed")
        t, _ = self.events.wait(
            f"{name} imported",
            lambda e: e.get("kind") == "imported" and e.get("guest") == name,
            since,
            timeout=60,
        )
        shown = self.tool("svcs", "-H", "-o", "state", smf.instance_fmri(name)).strip()
        if shown != "disabled":
            print(f"  WARNING: {name} imported, but svcs shows it {shown!r}")
        return t - exited

    # -- 2. guest's own poweroff -> disabled ----------------------------------

    def make_guest(self) -> None:
        """The test guest in the root, imported by the controller."""
        since = self.events.mark()
        iso = self.host.iso_dirs[0] / "testguest.iso"
        self.tool(VMBUNDLE, "create", GUEST, "--ram", "128M", "--vcpus", "1", "--iso", str(iso))
        self.events.wait(
            f"{GUEST} imported",
            lambda e: e.get("kind") == "imported" and e.get("guest") == GUEST,
            since,
            timeout=60,
        )

    def poweroff(self) -> dict[str, float | str]:
        """One boot and the guest's own poweroff: the seconds from its "powering
        off" line to `disabled`, split by what the controller and SMF did."""
        fmri = smf.instance_fmri(GUEST)
        run = RunPaths.for_guest(self.host.run_dir, GUEST)
        self.tool("svcadm", "enable", "-s", fmri, timeout=180)
        pid = running_pid(run)
        console = SerialLog(run.serial)
        try:
            console.wait_for(READY, timeout=240)
            since = self.events.mark()
            send(console, "poweroff")
            how = "asked on the console"
            try:
                console.wait_for(POWERING_OFF, timeout=5)
            except AssertionError:
                # An init without the command channel: the ACPI power button.
                qmp.execute(run, "system_powerdown", timeout=10)
                console.wait_for(POWERING_OFF, timeout=60)
                how = "ACPI power button (this guest takes no poweroff command)"
            # wait_for wakes as the reader thread appends the line: within a few ms.
            line_at = time.monotonic()
            asked_at: float | None = None
            deadline = time.monotonic() + 60
            while True:
                now = time.monotonic()
                state = self.states().get(GUEST, ("", ""))
                if asked_at is None and state != ("online", "none"):
                    asked_at = now
                if state == ("disabled", "none"):
                    disabled_at = now
                    break
                if now > deadline:
                    raise RuntimeError(f"{GUEST}: still {state} 60 s after it powered off")
                time.sleep(STATE_POLL_SECONDS)
        finally:
            console.close()
        if pid is not None:
            deadline = time.monotonic() + 30
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        heard = self.events.find(
            lambda e: (
                e.get("kind") == "qmp"
                and e.get("guest") == GUEST
                and e.get("qmp_event") == "SHUTDOWN"
            ),
            since,
        )
        policy = self.events.find(
            lambda e: e.get("kind") == "policy" and e.get("guest") == GUEST, since
        )
        out: dict[str, float | str] = {"total": disabled_at - line_at, "how": how}
        if heard is not None:
            out["heard"] = heard - line_at
        if policy is not None:
            out["policy"] = policy - line_at
        if asked_at is not None:
            out["smf moves"] = asked_at - line_at
        return out

    # -- 3. idle cost with many bundles ---------------------------------------

    def fill_root(self, bundles: int) -> dict[str, float]:
        """Clones of one bundle until the root holds `bundles`, made while the
        controller is disabled (zfs-fuse renames no mounted dataset, "dataset is
        busy", so they cannot be made elsewhere and moved in), each clone's vm.json
        rewritten (its name, a fresh uuid); the controller, enabled again, imports
        them. The seconds each step took.

        Two other ways were tried, both slower on the devhost, whose repository
        is one JSON file rewritten whole for each change: one svccfg script of all
        the imports (svccfg writes after every command: 100 s for 194), and their
        instances written into the repository in one edit (the restarter then
        takes each in with writes of its own: the controller's enable had not
        come through after 120 s)."""
        have = len(self.states())
        want = bundles - have
        if want <= 0:
            return {}
        snap = self.make_source("tmpl")
        template = json.loads((self.stage_dir / "tmpl" / "vm.json").read_text())
        self.events.close()
        self.release_streams()
        self.tool("svcadm", "disable", "-s", smf.CONTROLLER, timeout=120)
        took = {"added": float(want)}
        start = time.monotonic()
        for i in range(want):
            name = f"idle{i:03d}"
            self.tool("zfs", "clone", snap, f"{self.root_dataset}/{name}")
            doc = {**template, "name": name, "uuid": str(uuid.uuid4())}
            (self.root / name / "vm.json").write_text(json.dumps(doc, indent=2) + "\n")
        took["made"] = time.monotonic() - start
        start = time.monotonic()
        self.tool("svcadm", "enable", "-s", smf.CONTROLLER, timeout=120)
        self.wait_controller()
        self.events.open()
        deadline = time.monotonic() + 900
        while (n := len(self.states())) < bundles:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {n} of {bundles} instances 900 s after the enable")
            time.sleep(0.25)
        took["imported"] = time.monotonic() - start
        return took

    def release_streams(self) -> None:
        """Make the controller publish an event, so that its handler for a stream
        closed since (ours) ends: the handler notices only when it writes, and until
        then it holds the controller's stop for aiohttp's shutdown_timeout (60 s).
        A bundle with an empty vm.json in the root is a problem it publishes; it
        is taken away again once the controller has."""
        (self.root / RELEASE).mkdir(exist_ok=True)
        (self.root / RELEASE / "vm.json").write_text("{}\n")
        deadline = time.monotonic() + 30
        with contextlib.suppress(VmbundleError):
            while not any(
                p["where"] == str(self.root / RELEASE)
                for p in controller_api.get_json(self.api, "/problems", timeout=10)
            ):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        shutil.rmtree(self.root / RELEASE, ignore_errors=True)

    def idle(self, window: float) -> dict[str, Any]:
        """The controller's CPU and memory over window seconds, and its children."""
        about = self.about()
        pid = int(about["pid"])
        tick = os.sysconf("SC_CLK_TCK")
        with ChildSampler(pid) as sampler:
            t0, before = time.monotonic(), cpu_ticks(pid)
            time.sleep(window)
            # Stretched, if need be, to take in one full scan (the pass that lists
            # the datasets, every FULL_SCAN_SECONDS, 60): a window of 60 s may
            # fall between two, which are a little more than 60 s apart.
            limit = time.monotonic() + FULL_SCAN_WAIT_SECONDS
            while time.monotonic() < limit and (
                not sampler.tools()["zfs list"] or children_of(pid)
            ):
                time.sleep(0.1)
            t1, after = time.monotonic(), cpu_ticks(pid)
        elapsed = t1 - t0
        own = (after[0] - before[0]) / tick
        kids = (after[1] - before[1]) / tick
        status = proc_status(pid)
        return {
            "pid": pid,
            "elapsed": elapsed,
            "cpu": 100 * own / elapsed,
            "cpu_children": 100 * (own + kids) / elapsed,
            "rss": status["VmRSS"] / 1024,
            "hwm": status["VmHWM"] / 1024,
            "threads": status["Threads"],
            "passes": self.about()["passes"] - about["passes"],
            "children": sampler.tools(),
        }


def send(console: SerialLog, line: str) -> None:
    """A line to the guest's console: SerialLog.send where it has it (branch
    guest-panic adds it), else what that does."""
    if hasattr(console, "send"):
        console.send(line)
    else:
        console._sock.sendall(line.encode() + b"\n")


# -- /proc -------------------------------------------------------------------------


class ChildSampler:
    """The tools a process runs (its children, each thread's), sampled in a thread
    every `every` seconds: a child quicker than that may be missed."""

    def __init__(self, pid: int, every: float = CHILD_POLL_SECONDS) -> None:
        self.pid = pid
        self.every = every
        self.own = Path(f"/proc/{pid}/cmdline").read_bytes()
        self.children: dict[int, bytes] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True, name="children")

    def __enter__(self) -> ChildSampler:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        self.thread.join()

    def _sample(self) -> None:
        while not self.stopping.wait(self.every):
            for child in children_of(self.pid):
                # Until it execs, a child is a copy of the controller; exiting, it
                # has no command line.
                if self.children.get(child, self.own) in (self.own, b""):
                    with contextlib.suppress(OSError):  # gone already
                        self.children[child] = Path(f"/proc/{child}/cmdline").read_bytes()

    def tools(self) -> Counter[str]:
        return Counter(tool_name(c) for c in self.children.values() if c not in (self.own, b""))


def cpu_ticks(pid: int) -> tuple[int, int]:
    """(utime + stime, cutime + cstime) in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # After the command: state is field 3; utime..cstime are fields 14..17.
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return utime + stime, cutime + cstime


def proc_status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            out[key] = int(value.split()[0])
    return out


def children_of(pid: int) -> set[int]:
    """The live children of every thread of pid (the controller runs its tools from
    asyncio's worker threads)."""
    out: set[int] = set()
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                text = Path(f"/proc/{pid}/task/{tid}/children").read_text()
                out.update(int(x) for x in text.split())
    return out


def tool_name(cmdline: bytes) -> str:
    """`svcs`, `zfs list`: the tool (past a python interpreter) and its subcommand."""
    argv = [a.decode(errors="replace") for a in cmdline.split(b"\0") if a]
    if argv and os.path.basename(argv[0]).startswith("python"):
        argv = argv[1:]
    if not argv:
        return "?"
    words = [os.path.basename(argv[0])]
    if len(argv) > 1 and not argv[1].startswith("-"):
        words.append(argv[1])
    return " ".join(words)


# -- report --------------------------------------------------------------------------


def verdict(value: float, aim: float) -> str:
    if value < aim:
        return "met"
    return f"not met (+{value - aim:.3g}, {value / aim:.1f}x)"


def table(rows: list[tuple[str, float, str, float]]) -> None:
    """(figure, value, unit, aim) rows: met when the value is under the aim."""
    print()
    print(f"{'figure':<46} {'value':>10}  {'aim':>10}  result")
    for label, value, unit, aim in rows:
        shown = f"{value:.3f} {unit}" if unit == "s" else f"{value:.2f} {unit}"
        print(f"{label:<46} {shown:>10}  {'< ' + f'{aim:g} {unit}':>10}  {verdict(value, aim)}")


def per_run(tools: Counter[str], runs: int) -> str:
    return ", ".join(f"{n / runs:g} x {tool}" for tool, n in tools.most_common()) or "none"


def spread(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):.3f} s, min {min(values):.3f}, "
        f"max {max(values):.3f} ({', '.join(f'{v:.3f}' for v in values)})"
    )


def measure(bench: Bench, args: argparse.Namespace) -> None:
    rows: list[tuple[str, float, str, float]] = []
    about = bench.about()
    print(f"controller pid {about['pid']} (svc:/system/vmbundle/controller:default online)")

    print(f"1. zfs recv exit -> instance ({args.runs} runs, 64M/1 vCPU bundles, no disks)")
    times = []
    tools: Counter[str] = Counter()
    for i in range(1, args.runs + 1):
        took = bench.receive(f"rcv{i}", tools)
        times.append(took)
        print(f"  rcv{i}: {took:.3f} s")
        time.sleep(1.0)
    print(f"  {spread(times)}")
    print(
        f"  the controller ran, per receive (sampled every {RECEIVE_POLL_SECONDS * 1000:g} ms): "
        f"{per_run(tools, args.runs)}"
    )
    rows.append(
        (
            f"zfs recv exit -> instance, median ({args.runs})",
            statistics.median(times),
            "s",
            AIM_IMPORT_S,
        )
    )
    rows.append((f"zfs recv exit -> instance, max ({args.runs})", max(times), "s", AIM_IMPORT_S))

    print(f"2. guest's own poweroff -> disabled ({args.poweroff_runs} runs, test guest, 128M)")
    bench.make_guest()
    parts: dict[str, list[float]] = {}
    hows = set()
    for i in range(1, args.poweroff_runs + 1):
        got = bench.poweroff()
        hows.add(str(got.pop("how")))
        for k, v in got.items():
            parts.setdefault(k, []).append(float(v))
        print(
            f"  run {i}: {got['total']:.3f} s"
            + "".join(f"; {k} at {float(v):.3f}" for k, v in got.items() if k != "total")
        )
    print(f"  powered off by: {', '.join(sorted(hows))}")
    print(f"  {spread(parts['total'])}")
    split = ", ".join(
        f"{k} {statistics.median(parts[k]):.3f} s"
        for k in ("heard", "policy", "smf moves")
        if k in parts
    )
    print(
        "  medians from the line: controller heard SHUTDOWN / published its policy / "
        f"SMF left online: {split}; disabled {statistics.median(parts['total']):.3f} s"
    )
    rows.append(
        (
            f"guest poweroff -> disabled, median ({args.poweroff_runs})",
            statistics.median(parts["total"]),
            "s",
            AIM_POWEROFF_S,
        )
    )
    rows.append(
        (
            f"guest poweroff -> disabled, max ({args.poweroff_runs})",
            max(parts["total"]),
            "s",
            AIM_POWEROFF_S,
        )
    )

    print(f"3. idle cost with {args.bundles} imported, disabled bundles")
    filled = bench.fill_root(args.bundles)
    if filled:
        added = int(filled["added"])
        print(
            f"  {added} clones made in the root (controller disabled): {filled['made']:.1f} s; "
            f"the controller, enabled again, had imported them all {filled['imported']:.1f} s "
            f"later ({1000 * filled['imported'] / added:.0f} ms each)"
        )
    bench.settle()
    deadline = time.monotonic() + 60
    while (states := bench.states()) and time.monotonic() < deadline:
        if all(s == ("disabled", "none") for s in states.values()):
            break
        time.sleep(0.5)
    off = sum(1 for s in states.values() if s == ("disabled", "none"))
    others = sorted(f"{n} {s[0]}/{s[1]}" for n, s in states.items() if s != ("disabled", "none"))
    print(f"  {len(states)} instances, {off} disabled" + "".join(f"; {o}" for o in others))
    time.sleep(2.0)
    print(f"  settled; measuring for {args.window:g} s")
    cost = bench.idle(args.window)
    kids = per_run(cost["children"], 1)
    full = "a full scan in it" if cost["children"]["zfs list"] else "no full scan seen"
    print(
        f"  pid {cost['pid']} over {cost['elapsed']:.1f} s: {cost['passes']} passes; "
        f"CPU {cost['cpu']:.3f} % of a core alone, {cost['cpu_children']:.3f} % with its children"
    )
    print(f"  children seen (sampled every {CHILD_POLL_SECONDS * 1000:g} ms): {kids} ({full})")
    print(
        f"  VmRSS {cost['rss']:.1f} MiB (peak VmHWM {cost['hwm']:.1f} MiB), {cost['threads']} threads"
    )
    rows.append(("idle CPU, controller alone", cost["cpu"], "%", AIM_CPU_PCT))
    rows.append(("idle CPU, with its children", cost["cpu_children"], "%", AIM_CPU_PCT))
    rows.append(("idle RSS (VmRSS)", cost["rss"], "MiB", AIM_RSS_MIB))
    table(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument(
        "--runs", type=int, help="runs of 1. and 2. each (default 5 receives, 3 poweroffs)"
    )
    parser.add_argument(
        "--bundles", type=int, default=200, help="bundles in the root for the idle cost"
    )
    parser.add_argument("--window", type=float, default=60.0, help="idle window, s (default 60)")
    parser.add_argument(
        "--iso", type=Path, help="the test guest's ISO (default: built by tests/guest/build.py)"
    )
    parser.add_argument("--keep", action="store_true", help="leave the devhost up")
    args = parser.parse_args()
    if (args.runs is not None and args.runs < 1) or args.bundles < 1 or args.window <= 0:
        parser.error("--runs and --bundles must be at least 1, --window more than 0")
    args.poweroff_runs = args.runs or 3
    args.runs = args.runs or 5
    iso = args.iso if args.iso is not None else test_guest_iso()
    print(f"test guest ISO {iso}")

    state = Path(tempfile.mkdtemp(prefix="vmb-ctl-", dir="/var/tmp"))
    bench: Bench | None = None
    started = time.monotonic()
    try:
        devhost("up", "--state", str(state), "--pool-size", "384M")
        bench = Bench(state)
        bench.set_up(iso)
        measure(bench, args)
        print(f"\n(whole run {time.monotonic() - started:.0f} s)")
        return 0
    except Exception:
        if bench is not None:
            print(f"the controller's log, last lines:\n{bench.controller_log()}", file=sys.stderr)
        raise
    finally:
        if bench is not None and bench.events.close():
            with contextlib.suppress(Exception):
                bench.release_streams()
        if args.keep:
            print(f'devhost left up: eval "$({DEVHOST} env --state {state})"')
        else:
            tear_down(state)
            shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
