"""`vmbundle-method start|stop|refresh`: what svc.startd runs for one guest.

The instance comes from $SMF_FMRI. Output goes to the instance's log, one line
per event; a failure's exit status is the SMF code its cause deserves (96 for
a bad configuration: maintenance at once; 1 for what a retry may cure).

Speed matters here (a guest's start waits on it), so the svcprop call begins
before anything heavy is imported, and each method imports only its own steps.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

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

    # Begun now, read once the modules below are imported.
    bundle_read = smf.PropertyRead(fmri, smf.BUNDLE_PROPERTY) if args[0] != "stop" else None

    from vmbundle.errors import HostFault, VmbundleError

    try:
        if args[0] == "start":
            from vmbundle import settings
            from vmbundle.method import quick

            assert bundle_read is not None
            value = bundle_read.value()
            name = smf.instance_name(fmri)
            host_settings = settings.load(None)
            code = quick.start(fmri, name, value, host_settings.run_dir, say)
            if code is not None:
                return code
            from vmbundle.method import start

            return start.start(fmri, value, host_settings, say)
        if args[0] == "stop":
            from vmbundle.method import stop

            return stop.stop(fmri, say)
        from vmbundle.method import refresh

        assert bundle_read is not None
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
        _nudge(fmri)


def _nudge(fmri: str) -> None:
    """Whatever the method did, the instance is moving: the controller looks now
    rather than at its next pass (a datagram; nothing when none listens)."""
    from vmbundle import settings
    from vmbundle.adapters import smf
    from vmbundle.errors import VmbundleError
    from vmbundle.service.controller import nudge

    try:
        run_dir = settings.load(None).run_dir
    except (VmbundleError, OSError):
        return
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
