"""`vmbundle-method start|stop|refresh`: what svc.startd runs for one guest.

The instance comes from $SMF_FMRI. Output goes to the instance's log, one line
per event; a failure's exit status is the SMF code its cause deserves (96 for
a bad configuration: maintenance at once; 1 for what a retry may cure).

Speed matters here (a guest's start waits on it): each method imports only its
own steps; the start asks the controller first (vmbundle.method.quick), and
only without one reads config/bundle itself, its svcprop begun before the
heavy imports.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

USAGE = "usage: vmbundle-method start|stop|refresh  (run by SMF with SMF_FMRI set)"


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    fmri = os.environ.get("SMF_FMRI")
    if len(args) != 1 or args[0] not in ("start", "stop", "refresh"):
        say(USAGE)
        return 96  # SMF_EXIT_ERR_CONFIG: the manifest's exec string is wrong
    if not fmri:
        say(f"vmbundle-method {args[0]}: SMF_FMRI is not set; the methods run under SMF")
        return 99  # SMF_EXIT_ERR_NOSMF
    from vmbundle.adapters import smf
    from vmbundle.errors import HostFault, VmbundleError

    run_dir = None
    try:
        if args[0] == "start":
            from vmbundle import config_path
            from vmbundle.method import quick

            run_dir = config_path.run_dir()
            name = smf.instance_name(fmri)
            if run_dir is not None:
                code = quick.start(fmri, name, run_dir, say)
                if code is not None:
                    return code
            # Begun now, read once the modules below are imported.
            bundle_read = smf.PropertyRead(fmri, smf.BUNDLE_PROPERTY)
            from vmbundle import settings
            from vmbundle.method import start

            host_settings = settings.load(None)
            run_dir = host_settings.run_dir
            return start.start(fmri, bundle_read.value(), host_settings, say)
        if args[0] == "stop":
            from vmbundle.method import stop

            return stop.stop(fmri, say)
        bundle_read = smf.PropertyRead(fmri, smf.BUNDLE_PROPERTY)
        from vmbundle.method import refresh

        return refresh.refresh(fmri, bundle_read, say)
    except VmbundleError as exc:
        say(str(exc))
        return exc.exit_code
    except OSError as exc:
        # A fault of the world (a full or read-only file system): one line, and
        # an exit SMF retries, or 100 for a refused permission.
        fault = HostFault(smf.instance_name(fmri), exc, unchanged=False)
        say(str(fault))
        return fault.exit_code
    finally:
        _nudge(fmri, run_dir)


def _nudge(fmri: str, run_dir: Path | None) -> None:
    """Whatever the method did, the instance is moving: the controller looks now
    rather than at its next pass (a datagram; nothing when none listens)."""
    from vmbundle import config_path
    from vmbundle.adapters import smf
    from vmbundle.service.controller import nudge

    run_dir = run_dir or config_path.run_dir()
    if run_dir is not None:
        nudge(run_dir, smf.instance_name(fmri))


def run() -> None:
    """The console script: exit without the interpreter's teardown, which costs a
    start 10 ms or more after the guest already runs; nothing is left to flush
    but the two streams."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
