"""Waiting for a QEMU just spawned to run its guest, for both start paths (the
start method's own, vmbundle.guest.boot, and the one the controller prepared,
vmbundle.method.quick); it imports nothing heavy."""

from __future__ import annotations

import subprocess
import time

from vmbundle.errors import SMF_EXIT_ERR_FATAL, VmbundleError
from vmbundle.guest.rundir import RunPaths
from vmbundle.qemu import qmp

# Within the start method's SMF timeout (300 s, manifests/vm.xml), with room to
# unwind; memory.shrink_timeout is at most 240 s, so the ARC's wait fits in it.
BOOT_SECONDS = 270.0
FAST_LOOK_SECONDS = 0.1


class QemuDied(VmbundleError):
    """QEMU exited before the guest ran; its own error went to our stderr just before."""


class AcceleratorFailed(VmbundleError):
    """QEMU could not run the guest's code: retrying cannot help."""

    exit_code = SMF_EXIT_ERR_FATAL


class NotRunningInTime(VmbundleError):
    """QMP did not report the guest running before the deadline."""


def wait_running(proc: subprocess.Popen[bytes], run: RunPaths, name: str, until: float) -> None:
    """Return once QMP reports the guest running; raise when QEMU exits first,
    stops the guest with an internal error, or the deadline passes."""
    began = time.monotonic()
    while time.monotonic() < until:
        if proc.poll() is not None:
            raise QemuDied(
                f"{name}: QEMU exited with status {proc.returncode} before the guest ran "
                "(QEMU's own message is just above)"
            )
        if run.control_qmp.exists():
            try:
                state = qmp.run_state(run)
            except (qmp.QmpUnavailable, qmp.QmpNotAnswering):
                state = "starting"  # the socket exists before QEMU accepts on it
            if state == "running":
                return
            if state == "internal-error":
                raise AcceleratorFailed(
                    f"{name}: QEMU stopped the guest with an internal error "
                    "(the accelerator could not run its code); "
                    'try accelerator = "tcg" in the [qemu] section of the host configuration'
                )
        # QMP answers some 30 ms after exec on an idle host: look often until
        # then, and less often after, when the host is busy (a boot storm's
        # sixteen methods looking every millisecond took CPU from the QEMUs).
        time.sleep(0.001 if time.monotonic() - began < FAST_LOOK_SECONDS else 0.005)
    raise NotRunningInTime(f"{name}: QEMU did not report running in time")
