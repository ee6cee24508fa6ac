"""A boot storm: N guests enabled by one `svcadm enable`, next to N bare QEMUs with
the same command lines started at once. The storm should take at most twice as
long as the bare QEMUs take to all report running.

Brings up a throw-away devhost (state under /var/tmp, as the tests do, with
--physmem 32G so that every guest is admitted), runs `vmbundle smf install`
(which enables the controller; --no-controller disables it again) and imports
N guests without an OS (64M RAM, 1 vCPU, one 64M qcow2 disk each, stop_timeout=1)
with `vmbundle create NAME ... --import`. After a warm-up of each, alternates:

- the storm: one `svcadm enable -t FMRI1 ... FMRIN` (the devhost's svcadm), timed
  from its exec until every instance is `online`. The states are read from the
  devhost's SMF repository in this process every 50 ms (when the file has
  changed), not with svcs: that would put one more emulated tool in the figure.
  Then an untimed `svcadm disable -t` of them all, until all are disabled and
  their QEMUs gone;
- bare: for each guest, the exact argv its start method builds
  (vmbundle.guest.prepare.command_line, with the display the method gave it in
  the warm-up storm: each its own disk, run directory, QMP sockets and VNC
  display), all spawned at once, timed until the last answers `query-status` =
  running to a raw QMP client (one thread a guest; each looks for its control
  socket every 1 ms, as the start method does); then all quit.

Where the storm's time goes: the devhost's emulated tools (svcs, svcprop,
svcadm, kstat... in <state>/bin) are Python scripts here, C programs of a
millisecond or two on illumos. The bench turns on their timing log (devhost/tools.py:
<state>/tool-log.path names the log file; the restarter gives methods svc.startd's
environment, so an environment variable would not reach them) and prints, for the
median storm: how many tool runs, the time inside them (sum), per tool, and the
busy wall time (the union of their intervals), plus the interpreter start and exit
the log cannot see (measured apart, per run). The storm less that busy time is a
rough figure for illumos: it assumes the tools' time is all on the critical path
and that C tools cost nothing.

Where the CPU goes (bench/cpu_account.py): the host's busy CPU-seconds in each
timed window of both, split by who spent them (QEMU, the start methods, the
controller and its tools, the devhost's restarter and contract holders,
zfs-fuse). On this 2-core machine a storm is CPU-bound: it cannot end sooner
than its CPU-seconds over the cores, and the split says whose work that is
(the restarter, holders and tools are the emulation's, not the product's).
The CPU left without the emulation's, over the cores, is printed against the
bare QEMUs' time: what the product's and QEMU's own work alone would take here.

It reports; it asserts nothing. Everything it starts is stopped by pid, the devhost
taken down and its state removed, also on an error or Ctrl-C.

    .venv/bin/python bench/boot_storm.py [--guests N] [--runs N]
                                         [--accel auto|kvm|tcg] [--no-controller]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from vmbundle.adapters import smf
from vmbundle.guest import boot_record, prepare
from vmbundle.guest.display import port_free
from vmbundle.guest.process import running_pid
from vmbundle.guest.rundir import RunPaths
from vmbundle.settings import HostSettings
from vmbundle.vm import bundle
from vmbundle.vm.bundle import Bundle

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import cpu_account
from start_method import (
    TARGET_RATIO,
    VMBUNDLE,
    VNC_BASE_PORT,
    Bench,
    accel_note,
    devhost_config,
    devhost_up,
    gone_within,
    running_session,
    summary,
)
from support.devhost import tear_down
from tool_time import ToolLog, busy_seconds

from devhost.smf import repository

SERVICE = smf.VM_SERVICE.removeprefix("svc:/")  # its key in the repository
POLL_SECONDS = 0.05  # the storm's look at the repository
STORM_LIMIT = 600.0  # seconds a storm, or a stop of all, may take before it is an error
BARE_LIMIT = 300.0


class Storm:
    """The devhost, its N guests and both ways of starting them all."""

    def __init__(self, state: Path, config: Path, log: IO[bytes], count: int) -> None:
        self.state = state
        self.config = config
        self.log = log
        # start_method's, for its env, tool and svc: the devhost's tools first on PATH
        self.bench = Bench(state, config, log)
        self.host: HostSettings = self.bench.host
        self.names = [f"storm{i:02d}" for i in range(1, count + 1)]
        self.fmris = [f"{smf.VM_SERVICE}:{n}" for n in self.names]
        self.runs = {n: RunPaths.for_guest(self.host.run_dir, n) for n in self.names}
        self.repo = repository.Repository(state)
        self.repo_seen = -1
        self.repo_states: dict[str, str] = {}
        # what each guest's start method gave it in the warm-up storm
        self.displays: dict[str, int | None] = {}
        self.method_argv: dict[str, list[str]] = {}
        self.bare: list[subprocess.Popen[bytes]] = []
        self.tools = ToolLog(state)
        # CPU seconds by who spent them, one dict per timed window (cpu_account)
        self.cpu: dict[str, list[dict[str, float]]] = {"storm": [], "bare": []}

    # -- logs ------------------------------------------------------------------

    def log_tail(self, lines: int = 15) -> str:
        self.log.flush()
        text = (self.state / "bench.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def instance_log(self, name: str, lines: int = 15) -> str:
        path = self.state / "var/svc/log" / f"{smf.VM_SERVICE[5:].replace('/', '-')}:{name}.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"({path}: {exc.strerror})"

    # -- set-up ----------------------------------------------------------------

    def set_up(self, controller: bool) -> None:
        self.bench.tool(VMBUNDLE, "smf", "install")
        if controller:
            self.bench.tool(self.bench.svc("svcadm"), "enable", "-s", smf.CONTROLLER, timeout=120)
        else:
            self.bench.tool(self.bench.svc("svcadm"), "disable", "-s", smf.CONTROLLER, timeout=120)
        for name in self.names:
            self.bench.tool(
                VMBUNDLE,
                "create",
                name,
                "--ram",
                "64M",
                "--vcpus",
                "1",
                "--disk",
                "64M",
                "--import",
            )
            # A guest without an OS ignores the power button: the stop quits it after 1 s.
            self.bench.tool(VMBUNDLE, "set", name, "stop_timeout=1")

    # -- states, straight from the repository -------------------------------------

    def states(self) -> dict[str, str]:
        """Guest name -> its state ("online", or "offline->online" while one is due),
        read again only when the repository file has changed."""
        try:
            seen = os.stat(self.repo.path).st_mtime_ns
        except FileNotFoundError:
            return self.repo_states
        if seen == self.repo_seen:
            return self.repo_states
        doc = self.repo.read()
        out = {}
        for name in self.names:
            pgs = repository.current_view_of(doc, SERVICE, name)
            state = (repository.get_values(pgs, "restarter", "state") or [""])[0]
            nstate = (repository.get_values(pgs, "restarter", "next_state") or ["none"])[0]
            out[name] = state if nstate in ("none", "") else f"{state}->{nstate}"
        self.repo_seen, self.repo_states = seen, out
        return out

    def wait_states(self, want: str, what: str, also: Callable[[], bool] = lambda: True) -> None:
        """Until every guest is in state want (and also() is true), polling the
        repository every POLL_SECONDS; an error once one is in maintenance."""
        deadline = time.monotonic() + STORM_LIMIT
        while True:
            done = also()
            states = self.states()
            if done and all(states.get(n) == want for n in self.names):
                return
            broken = [n for n in self.names if states.get(n) == "maintenance"]
            if broken:
                raise RuntimeError(
                    f"{broken[0]} went to maintenance ({len(broken)} of {len(self.names)}); "
                    f"its log:\n{self.instance_log(broken[0])}"
                )
            if time.monotonic() > deadline:
                late = {n: s for n, s in states.items() if s != want}
                raise RuntimeError(f"{what} took over {STORM_LIMIT:g} s; still {late}")
            time.sleep(POLL_SECONDS)

    # -- the storm -------------------------------------------------------------------

    def storm(self) -> tuple[float, float, tuple[float, float]]:
        """One `svcadm enable -t` of every guest: (ms to all online, ms to svcadm's
        exit, (wall start, wall end) of the storm); then all stopped, untimed."""
        cpu = cpu_account.Window()
        start_wall = time.time()
        start = time.perf_counter()
        proc = subprocess.Popen(
            [self.bench.svc("svcadm"), "enable", "-t", *self.fmris],
            env=self.bench.env(),
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.PIPE,
        )
        svcadm_ms: float | None = None

        def svcadm_exited() -> bool:
            nonlocal svcadm_ms
            if svcadm_ms is None and proc.poll() is not None:
                svcadm_ms = (time.perf_counter() - start) * 1000
                if proc.returncode != 0:
                    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                    raise RuntimeError(f"svcadm enable exited {proc.returncode}:\n{err}")
            return svcadm_ms is not None

        try:
            self.wait_states("online", "the storm", also=svcadm_exited)
            ms = (time.perf_counter() - start) * 1000
            end_wall = time.time()
            self.cpu["storm"].append(cpu.end())
        finally:
            if proc.poll() is None:
                proc.kill()  # the svcadm we started
            proc.wait()
            if proc.stderr:
                proc.stderr.close()
        if not self.method_argv:
            self.record_method_argv()
        self.stop_all()
        assert svcadm_ms is not None
        return ms, svcadm_ms, (start_wall, end_wall)

    def record_method_argv(self) -> None:
        """Each running guest's QEMU command line, as the kernel has it, and its display."""
        for name in self.names:
            run = self.runs[name]
            pid = running_pid(run)
            record = boot_record.read(run)
            if pid is None or record is None:
                raise RuntimeError(f"{name} is online but its QEMU is not running")
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            self.method_argv[name] = [a.decode() for a in raw.split(b"\0")[:-1]]
            self.displays[name] = record.display

    def stop_all(self, check: bool = True) -> None:
        """`svcadm disable -t` of every guest, until all are disabled and their QEMUs gone."""
        pids = [p for p in (running_pid(self.runs[n]) for n in self.names) if p is not None]
        self.bench.tool(
            self.bench.svc("svcadm"), "disable", "-t", *self.fmris, check=check, timeout=120
        )
        try:
            self.wait_states("disabled", "stopping every guest")
        finally:
            for pid in pids:
                if not gone_within(pid, 30):
                    os.kill(pid, signal.SIGKILL)  # a QEMU our start method started
                    gone_within(pid, 15)

    # -- bare QEMU ---------------------------------------------------------------------

    def bare_argv(self, name: str, display: int | None) -> list[str]:
        """What prepare.prepare gives the guest's start method, for this display."""
        b = bundle.load(Path(self.host.bundle_roots[0]) / name, self.host)
        return prepare.command_line(Bundle(b.path, prepare.with_macs(b.config)), self.host, display)

    def bare_displays(self) -> dict[str, int | None]:
        """The display each guest's method chose; another free one where that is held."""
        out: dict[str, int | None] = {}
        taken = set()
        for name in self.names:
            display = self.displays[name]
            if display is not None and not port_free(self.host.vnc_listen, VNC_BASE_PORT + display):
                display = next(
                    n
                    for n in range(self.host.display_first, self.host.display_last + 1)
                    if n not in taken
                    and n not in self.displays.values()
                    and port_free(self.host.vnc_listen, VNC_BASE_PORT + n)
                )
            taken.add(display)
            out[name] = display
        return out

    def bare_storm(self) -> float:
        """Every guest's QEMU execed at once with its method's argv: ms until the last
        reports running over QMP; then all quit."""
        displays = self.bare_displays()
        argvs = {n: self.bare_argv(n, displays[n]) for n in self.names}
        for name in self.names:
            prepare.clear_run_dir(self.runs[name])
            self.runs[name].dir.mkdir(parents=True, mode=0o700)
        running: dict[str, float] = {}
        errors: dict[str, str] = {}
        quit_now = threading.Event()
        all_running = threading.Semaphore(0)

        def watch(name: str, proc: subprocess.Popen[bytes]) -> None:
            path = self.runs[name].control_qmp
            try:
                # Like the start method: a cheap look for the socket every 1 ms first.
                while not path.exists() and proc.poll() is None:
                    time.sleep(0.001)
                with running_session(proc, path, timeout=BARE_LIMIT) as session:
                    running[name] = time.perf_counter()
                    all_running.release()
                    quit_now.wait()
                    with contextlib.suppress(OSError, EOFError):  # QEMU may close first
                        session.command("quit")
            except BaseException:
                status = proc.poll()
                exited = "" if status is None else f" (QEMU exited with status {status})"
                errors[name] = traceback.format_exc(limit=-3) + exited
                all_running.release()

        threads = []
        cpu = cpu_account.Window()
        start = time.perf_counter()
        try:
            for name in self.names:
                self.bare.append(
                    subprocess.Popen(
                        argvs[name],
                        stdin=subprocess.DEVNULL,
                        stdout=self.log,
                        stderr=self.log,
                        close_fds=True,
                    )
                )
            for name, proc in zip(self.names, self.bare, strict=True):
                thread = threading.Thread(target=watch, args=(name, proc), daemon=True)
                thread.start()
                threads.append(thread)
            for _ in self.names:
                all_running.acquire()
            spent = cpu.end()
            quit_now.set()
            for thread in threads:
                thread.join(timeout=30)
            if errors:
                name, exc = next(iter(errors.items()))
                raise RuntimeError(f"bare QEMU of {name}:\n{exc}\n{self.log_tail()}")
            ms = (max(running.values()) - start) * 1000
            self.cpu["bare"].append(spent)
            for proc in self.bare:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=15)
        finally:
            quit_now.set()
            self.kill_bare()
            for name in self.names:
                prepare.clear_run_dir(self.runs[name])
        return ms

    def kill_bare(self) -> None:
        for proc in self.bare:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        self.bare = []

    # -- the tools' time -----------------------------------------------------------

    def unlogged_ms(self) -> float:
        """What a tool run's log line does not see, for `svcprop -p config/bundle FMRI`
        run between the storms."""
        argv = [self.bench.svc("svcprop"), "-p", smf.BUNDLE_PROPERTY, self.fmris[0]]
        return self.tools.unlogged_ms(argv, self.bench.env())

    # -- clean-up ----------------------------------------------------------------

    def stop_everything(self) -> None:
        """Whatever is still up: the bare QEMUs, the instances, their QEMUs."""
        self.kill_bare()
        with contextlib.suppress(Exception):
            self.stop_all(check=False)
        for name in self.names:
            pid = running_pid(self.runs[name])
            if pid is not None:
                os.kill(pid, signal.SIGKILL)  # a QEMU started for this bench
                gone_within(pid, 15)


# -- the report ------------------------------------------------------------------------


def tool_report(
    runs: list[dict[str, Any]], since: float, storm_ms: float, unlogged_ms: float
) -> list[str]:
    count = len(runs)
    inside = sum(e["end"] - e["start"] for e in runs)
    extra = unlogged_ms / 1000
    busy = busy_seconds(runs, since, 0.0)
    busy_all = busy_seconds(runs, since, unlogged_ms)
    lines = [
        f"  emulated tools in the median storm ({storm_ms / 1000:.1f} s): {count} runs, "
        f"{inside:.1f} s inside them (sum, from each script's first line to the end of "
        f"its main), + {unlogged_ms:.0f} ms each the log cannot see (interpreter start and "
        f"exit, measured between storms) = {inside + count * extra:.1f} s",
        f"  busy wall time (union of the intervals): {busy:.1f} s of {storm_ms / 1000:.1f} s "
        f"({busy_all:.1f} s with each run's interpreter start)",
        f"    {'tool':<10} {'runs':>5} {'sum s':>7} {'mean ms':>8}   first arguments",
    ]
    per: dict[str, list[dict[str, Any]]] = {}
    for e in runs:
        per.setdefault(e["tool"], []).append(e)
    for name, entries in sorted(
        per.items(), key=lambda kv: -sum(e["end"] - e["start"] for e in kv[1])
    ):
        total = sum(e["end"] - e["start"] for e in entries)
        args: dict[str, int] = {}
        for e in entries:
            arg = e["argv"][1] if len(e["argv"]) > 1 else "-"
            args[arg] = args.get(arg, 0) + 1
        most = ", ".join(f"{a} x{n}" for a, n in sorted(args.items(), key=lambda kv: -kv[1])[:4])
        lines.append(
            f"    {name:<10} {len(entries):>5} {total:>7.2f} {total / len(entries) * 1000:>8.1f}   {most}"
        )
    return lines


def bare_retried(storm: Storm) -> float:
    """A bare storm, once again if one of its QEMUs failed: other guests on this
    machine (other devhosts' tests) may take a VNC port between its check and the
    QEMU's bind."""
    try:
        return storm.bare_storm()
    except RuntimeError as exc:
        print(f"  (a bare storm failed, run again: {exc})", file=sys.stderr)
        return storm.bare_storm()


def measure(storm: Storm, runs: int, controller: bool) -> int:
    n = len(storm.names)
    print(
        f"{n} guests: 64M RAM, 1 vCPU, one 64M qcow2 disk each, no OS, stop_timeout=1; "
        f"accelerator {accel_note(storm.host)}; controller "
        f"{'online' if controller else 'disabled (--no-controller)'}"
    )

    # Warm-up, which also checks that bare QEMU gets each method's very argv.
    storm.storm()
    differ = [
        n for n in storm.names if storm.bare_argv(n, storm.displays[n]) != storm.method_argv[n]
    ]
    if differ:
        name = differ[0]
        print(f"  WARNING: the bare argv differs from the start method's for {len(differ)} guests")
        print(
            f"    method: {storm.method_argv[name]}\n    bare:   {storm.bare_argv(name, storm.displays[name])}"
        )
    bare_retried(storm)

    storm.tools.on(True)
    storm.cpu = {"storm": [], "bare": []}  # not the warm-up's
    times: dict[str, list[float]] = {"storm": [], "bare": [], "svcadm": []}
    windows: list[tuple[float, float]] = []
    for _ in range(runs):
        ms, svcadm_ms, window = storm.storm()
        times["storm"].append(ms)
        times["svcadm"].append(svcadm_ms)
        windows.append(window)
        times["bare"].append(bare_retried(storm))
    unlogged = storm.unlogged_ms()
    storm.tools.on(False)

    storm_ms = statistics.median(times["storm"])
    bare_ms = statistics.median(times["bare"])
    ratio = storm_ms / bare_ms
    verdict = "ok" if ratio <= TARGET_RATIO else "OVER"
    print(f"{runs} runs each after a warm-up, alternating; exec to all online / to all QMP running")
    print(summary(f"storm of {n}", times["storm"]) + "  svcadm enable -t, to all online")
    print(summary(f"bare QEMU x{n}", times["bare"]) + "  all at once, to all running")
    print(f"  ratio {ratio:.2f} (target {TARGET_RATIO:.1f} or less): {verdict}")
    print(summary("svcadm enable -t", times["svcadm"]) + "  its own exec to exit")

    cores = os.cpu_count() or 1
    print("  the storm's CPU, median of each:")
    for line in cpu_account.report(storm.cpu["storm"], storm_ms / 1000, cores):
        print(line)
    print("  the bare QEMUs' CPU, median of each:")
    for line in cpu_account.report(storm.cpu["bare"], bare_ms / 1000, cores):
        print(line)
    product = cpu_account.without_emulation(storm.cpu["storm"])
    print(
        f"  without the emulation's ({', '.join(cpu_account.EMULATION)}) the storm spent "
        f"{product:.2f} CPU-s, {product / cores:.2f} s of {cores} cores: "
        f"{product / cores / (bare_ms / 1000):.1f} times the bare QEMUs' time in the work of "
        "the product, QEMU, zfs-fuse and the kernel alone (not a strict floor: under TCG each "
        "QEMU runs its firmware while the later ones start, so QEMU's part shrinks with a "
        "shorter storm)"
    )

    # The median storm (the lower of the two middle ones for an even count).
    order = sorted(range(runs), key=lambda i: times["storm"][i])
    mid = order[(runs - 1) // 2]
    tool_runs = storm.tools.runs(windows[mid])
    for line in tool_report(tool_runs, windows[mid][0], times["storm"][mid], unlogged):
        print(line)
    busy = busy_seconds(tool_runs, windows[mid][0], unlogged) * 1000
    rest = times["storm"][mid] - busy
    print(
        f"  on illumos, where these tools are C programs: the storm less the tools' busy time "
        f"is ~{rest / 1000:.1f} s, a ratio of ~{rest / bare_ms:.1f} (rough: it takes the tools' "
        f"time as all on the critical path and C tools as free)"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--guests", type=int, default=16, help="guests in the storm (default 16)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each (default 3)")
    parser.add_argument(
        "--accel",
        choices=("auto", "kvm", "tcg"),
        default="auto",
        help="accelerator (default: what the host configuration chooses)",
    )
    parser.add_argument(
        "--no-controller",
        action="store_true",
        help="disable the controller that `vmbundle smf install` enables (for a comparison)",
    )
    args = parser.parse_args()
    if args.runs < 1 or args.guests < 1:
        parser.error("--runs and --guests must be at least 1")
    # A kill is an error like any other: clean up on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    state = Path(tempfile.mkdtemp(prefix="vmb-bs-", dir="/var/tmp"))
    storm: Storm | None = None
    try:
        devhost_up(state, "--pool-size", "512M", "--physmem", "32G")
        config = devhost_config(state, args.accel)
        with (state / "bench.log").open("ab") as log:
            storm = Storm(state, config, log, args.guests)
            print(f"setting up {args.guests} guests under {state} ...", file=sys.stderr)
            storm.set_up(not args.no_controller)
            return measure(storm, args.runs, not args.no_controller)
    finally:
        if storm is not None:
            storm.stop_everything()
        tear_down(state)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
