"""run: boot a guest in the foreground with the start method's command line."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time

import attrs

from vmbundle import bundle, launch, qmp
from vmbundle.cli.common import host_config, load_guest
from vmbundle.errors import VmbundleError
from vmbundle.hostconfig import HostConfig
from vmbundle.launch import Launch


def _forget_boot_once(started: Launch) -> None:
    b = started.bundle
    if b.config.boot_once is not None:
        bundle.save(b.path, attrs.evolve(b.config, boot_once=None))


def _wait_running(proc: subprocess.Popen[bytes], started: Launch, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise VmbundleError(f"{started.bundle.name}: QEMU exited with status {proc.returncode}")
        if started.run.control_qmp.exists():
            status = qmp.execute(started.run, "query-status", timeout=5.0)
            if isinstance(status, dict) and status.get("status") == "running":
                return
        time.sleep(0.05)
    raise VmbundleError(f"{started.bundle.name}: QEMU did not report running within {timeout:g}s")


def run_foreground(host: HostConfig, b: bundle.Bundle) -> int:
    started = launch.prepare(b, host)
    proc: subprocess.Popen[bytes] | None = None
    try:
        proc = subprocess.Popen(started.argv, stdin=subprocess.DEVNULL)
        _wait_running(proc, started)
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
        return proc.wait()
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        launch.finish(b.name, started.run, host)


def cmd_run(args: argparse.Namespace) -> int:
    host = host_config(args)
    return run_foreground(host, load_guest(args, host))
