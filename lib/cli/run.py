"""run: boot a guest in the foreground with the start method's boot sequence."""

from __future__ import annotations

import argparse
import signal

from vmbundle.cli.common import host_settings, say
from vmbundle.ops import run


def _stop_on_sigterm() -> None:
    # SIGTERM (from a service manager or a test) must still stop QEMU and give back
    # the display and run directory, which the boot's unwinding does.
    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def cmd_run(args: argparse.Namespace) -> int:
    _stop_on_sigterm()
    return run.run_foreground(host_settings(args), args.guest, say)
