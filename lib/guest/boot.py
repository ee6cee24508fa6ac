"""One boot of a guest, the same for the start method and `vmbundle run`: the owner
record claimed (vmbundle.vm.owner), memory admission, the prepared run directory and
display, QEMU (resuming from a memory snapshot's saved state when the bundle has
one), the wait until QMP says the guest runs, the boot record, and boot_once
forgotten.

Each step that takes something registers how to give it back on one ExitStack,
so a failure at any step unwinds exactly what was taken, in reverse. Every wait
draws on one deadline. On success the caller receives the stack: the start
method drops it (QEMU stays, in the service's contract), `vmbundle run` closes
it once the guest has powered off.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from contextlib import ExitStack

import attrs

from vmbundle.adapters import qemu
from vmbundle.errors import (
    SMF_EXIT_ERR_FATAL,
    BundleBusy,
    ConfigError,
    HostFault,
    VmbundleError,
)
from vmbundle.guest import boot_record, memory_state, prepare
from vmbundle.guest.boot_record import BootRecord
from vmbundle.guest.prepare import Prepared
from vmbundle.memory import admission
from vmbundle.qemu import qmp
from vmbundle.settings import HostSettings
from vmbundle.vm import bundle, owner
from vmbundle.vm.bundle import Bundle, Document

Say = Callable[[str], None]

# Within the start method's SMF timeout (300 s, manifests/vm.xml), with room to
# unwind; memory.shrink_timeout is at most 240 s, so the ARC's wait fits in it.
BOOT_SECONDS = 270.0


class QemuDied(VmbundleError):
    """QEMU exited before the guest ran; its own error went to our stderr just before."""


class AcceleratorFailed(VmbundleError):
    """QEMU could not run the guest's code: retrying cannot help."""

    exit_code = SMF_EXIT_ERR_FATAL


class NotRunningInTime(VmbundleError):
    """QMP did not report the guest running before the deadline."""


@attrs.frozen
class Booted:
    prepared: Prepared
    proc: subprocess.Popen[bytes]
    record: BootRecord


def boot(
    settings: HostSettings,
    b: Bundle,
    say: Say,
    *,
    fmri: str | None = None,
    seconds: float = BOOT_SECONDS,
) -> tuple[Booted, ExitStack]:
    """Boot b; the guest runs when this returns. The ExitStack returned gives
    back everything the boot took (QEMU, the run directory and display, the
    memory charge) when closed."""
    until = time.monotonic() + seconds
    with ExitStack() as undo:
        # First, so a guest another host may be running changes nothing here.
        me = owner.check_start(b.path, b.name)
        admission.reserve(settings, b.name, b.config, say, until=until)
        undo.callback(admission.release, settings, b.name, say)
        prepared = prepare.prepare(b, settings)
        undo.callback(prepare.finish, b.name, prepared.run, settings)
        # Claimed only now that nothing in the config can refuse the start, which
        # leaves a bad bundle as it was.
        owner.take(settings.run_dir, b.path, b.name, me, promote=False, take_over=False)
        undo.callback(owner.release_or_say, settings.run_dir, b.path, b.name, say)
        saved = memory_state.open_for_resume(b.path)
        proc = spawn(prepared, saved)
        undo.callback(qemu.end, proc)
        try:
            wait_running(proc, prepared, until)
        except QemuDied as exc:
            if saved is None:
                raise
            raise QemuDied(
                f"{exc}; it was resuming from {memory_state.state_path(b.path)} (a --memory "
                "snapshot); to boot the guest afresh instead, remove that file"
            ) from None
        if saved is not None:
            memory_state.discard(b.path)
            say(f"{b.name}: resumed from the memory saved in its snapshot")
        protect_display(settings, prepared, say)
        auth = prepared.display_auth
        cfg = prepared.bundle.config
        record = BootRecord(
            bundle=str(prepared.bundle.path),
            config=attrs.evolve(cfg, boot_once=None),
            profile=prepared.profile.name,
            qemu_pid=proc.pid,
            started=time.time(),
            fmri=fmri,
            display=prepared.display,
            capacity=prepared.capacity,
            boot_ram=cfg.ram,
            display_auth=auth.describe() if auth else None,
            display_password=auth.password if auth else None,
        )
        boot_record.write(prepared.run, record)
        forget_boot_once(settings, prepared.bundle, say)
        return Booted(prepared, proc, record), undo.pop_all()


def protect_display(settings: HostSettings, prepared: Prepared, say: Say) -> None:
    """What the display's protection needs once QEMU runs: the 0.14 fork's password
    over QMP (it has no secret objects), and a warning for an open display."""
    auth, name = prepared.display_auth, prepared.bundle.name
    if auth is None:
        return
    if auth.password is not None and prepared.profile.name == "illumos-kvm":
        password = prepared.run.vnc_password.read_text()
        qmp.execute(prepared.run, "set_password", {"protocol": "vnc", "password": password})
    if auth.kind == "unauthenticated":
        say(
            f"{name}: warning: its display :{prepared.display} listens on {settings.vnc_listen} "
            "with no password (allow_unauthenticated = true in the host configuration): anyone "
            "who reaches the port has its keyboard and screen"
        )


def spawn(prepared: Prepared, saved: int | None) -> subprocess.Popen[bytes]:
    """QEMU, resuming from the saved state on descriptor saved when there is one."""
    if saved is None:
        return qemu.spawn(prepared.argv)
    try:
        return qemu.spawn((*prepared.argv, "-incoming", f"fd:{saved}"), pass_fds=(saved,))
    finally:
        os.close(saved)  # QEMU holds its own


def wait_running(proc: subprocess.Popen[bytes], prepared: Prepared, until: float) -> None:
    """Return once QMP reports the guest running; raise when QEMU exits first,
    stops the guest with an internal error, or the deadline passes."""
    name = prepared.bundle.name
    while time.monotonic() < until:
        if proc.poll() is not None:
            raise QemuDied(
                f"{name}: QEMU exited with status {proc.returncode} before the guest ran "
                "(QEMU's own message is just above)"
            )
        if prepared.run.control_qmp.exists():
            try:
                state = qmp.run_state(prepared.run)
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
        time.sleep(0.001)  # QMP answers some 30 ms after exec: look often
    raise NotRunningInTime(f"{name}: QEMU did not report running in time")


def _without_boot_once(booted_with: str) -> Callable[[Document], Document]:
    def change(doc: Document) -> Document:
        # Only the boot_once this boot used: one set since is for the next start.
        if doc.get("boot_once") == booted_with:
            doc["boot_once"] = None
        return doc

    return change


def forget_boot_once(settings: HostSettings, b: Bundle, say: Say) -> None:
    """boot_once means this start only: the next one boots in the usual order.
    The guest runs already, so a vm.json that cannot be written now is said,
    not fatal."""
    if b.config.boot_once is None:
        return
    try:
        bundle.update(b.path, settings, _without_boot_once(b.config.boot_once), whole=False)
    except (ConfigError, HostFault, BundleBusy) as exc:
        say(f"{b.name}: boot_once stays set in vm.json: {str(exc).splitlines()[0]}")
