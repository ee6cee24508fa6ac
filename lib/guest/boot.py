"""Starting QEMU for a prepared launch and waiting until QMP says the guest runs.

`vmbundle run` keeps QEMU in the foreground; the start method leaves it behind
in the service's contract. Both start it the same way and wait the same way.
"""

from __future__ import annotations

import subprocess
import time

from vmbundle.errors import SMF_EXIT_ERR_FATAL, VmbundleError
from vmbundle.guest.prepare import Launch
from vmbundle.qemu import qmp


class QemuDied(VmbundleError):
    """QEMU exited before the guest ran; its own error went to our stderr just before."""


class AcceleratorFailed(VmbundleError):
    """QEMU could not run the guest's code: retrying cannot help."""

    exit_code = SMF_EXIT_ERR_FATAL


def start_qemu(started: Launch) -> subprocess.Popen[bytes]:
    # QEMU's stdout and stderr are ours: under SMF, the instance's log, so its
    # own error lands just above the line the method prints about it.
    return subprocess.Popen(started.argv, stdin=subprocess.DEVNULL, close_fds=True)


def wait_running(proc: subprocess.Popen[bytes], started: Launch, timeout: float = 60.0) -> None:
    """Return once QMP reports the guest running; raise when QEMU exits first,
    stops the guest with an internal error, or the deadline passes."""
    name = started.bundle.name
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise QemuDied(
                f"{name}: QEMU exited with status {proc.returncode} before the guest ran "
                "(QEMU's own message is just above)"
            )
        if started.run.control_qmp.exists():
            try:
                state = qmp.run_state(started.run)
            except qmp.QmpError:
                raise
            except VmbundleError:
                state = "starting"  # the socket exists before QEMU accepts on it
            if state == "running":
                return
            if state == "internal-error":
                raise AcceleratorFailed(
                    f"{name}: QEMU stopped the guest with an internal error "
                    "(the accelerator could not run its code); "
                    'try accelerator = "tcg" in the [qemu] section of the host configuration'
                )
        time.sleep(0.001)  # QMP answers some 30 ms after exec: look often
    raise VmbundleError(f"{name}: QEMU did not report running within {timeout:g}s")


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """End a QEMU we started: SIGTERM, then SIGKILL after grace seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
