"""run: boot a guest in the foreground with the start method's command line."""

from __future__ import annotations

import argparse
import contextlib
import signal
import subprocess
import sys

import attrs

from vmbundle.cli.common import host_config, load_guest
from vmbundle.errors import VmbundleError
from vmbundle.guest import boot, prepare
from vmbundle.guest.prepare import Launch
from vmbundle.memory import admission
from vmbundle.qemu import qmp
from vmbundle.settings import HostSettings
from vmbundle.vm import bundle


def _forget_boot_once(started: Launch) -> None:
    b = started.bundle
    if b.config.boot_once is not None:
        bundle.save(b.path, attrs.evolve(b.config, boot_once=None))


def _wait_powered_off(proc: subprocess.Popen[bytes], started: Launch) -> int:
    # QEMU runs with -no-shutdown, so a guest that powers itself off leaves QEMU
    # up in the "shutdown" state; in the foreground that means the run is over.
    while True:
        try:
            return proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        try:
            state = qmp.run_state(started.run)
        except VmbundleError:
            continue  # QEMU is going away, or another client holds the monitor a moment
        if state == "shutdown":
            print(f"{started.bundle.name}: the guest powered off", file=sys.stderr, flush=True)
            with contextlib.suppress(VmbundleError):
                qmp.execute(started.run, "quit", timeout=5.0)
            return proc.wait(timeout=30)


def run_foreground(host: HostSettings, b: bundle.Bundle) -> int:
    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    admission.reserve(host, b.name, b.config, say)
    try:
        return _run_admitted(host, b)
    finally:
        admission.release(host, b.name, say)


def _run_admitted(host: HostSettings, b: bundle.Bundle) -> int:
    started = prepare.prepare(b, host)
    proc: subprocess.Popen[bytes] | None = None
    try:
        proc = boot.start_qemu(started)
        boot.wait_running(proc, started, timeout=30.0)
        _forget_boot_once(started)
        where = (
            f"VNC display :{started.display} ({host.vnc_listen}:{5900 + started.display})"
            if started.display is not None
            else "no VNC display"
        )
        print(
            f"{b.name}: running, QEMU pid {proc.pid}, {where}, serial console {started.run.serial}",
            file=sys.stderr,
            flush=True,
        )
        return _wait_powered_off(proc, started)
    finally:
        if proc is not None:
            boot.stop_process(proc)
        prepare.finish(b.name, started.run, host)


def _stop_on_sigterm() -> None:
    # SIGTERM (from a service manager or a test) must still stop QEMU and give back
    # the display and run directory, which the finally blocks do.
    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def cmd_run(args: argparse.Namespace) -> int:
    _stop_on_sigterm()
    host = host_config(args)
    return run_foreground(host, load_guest(args, host))
