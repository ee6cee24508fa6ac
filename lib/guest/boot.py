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
from pathlib import Path

import attrs

from vmbundle.adapters import qemu
from vmbundle.errors import (
    BundleBusy,
    ConfigError,
    HostFault,
)
from vmbundle.guest import boot_record, memory_state, prepare
from vmbundle.guest.boot_record import BootRecord
from vmbundle.guest.prepare import Prepared
from vmbundle.guest.rundir import RunPaths
from vmbundle.guest.running import BOOT_SECONDS, QemuDied, wait_running
from vmbundle.memory import admission
from vmbundle.memory.arc import ArcBackend
from vmbundle.qemu import qmp
from vmbundle.settings import HostSettings
from vmbundle.vm import bundle, owner
from vmbundle.vm.bundle import Bundle, Document

Say = Callable[[str], None]


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
        prepared = take(settings, b, say, undo, until=until)
        saved = memory_state.open_for_resume(b.path)
        proc = spawn(prepared, saved)
        undo.callback(qemu.end, proc)
        try:
            wait_running(proc, prepared.run, b.name, until)
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
        record = record_of(prepared, fmri, proc.pid, time.time())
        boot_record.write(prepared.run, record)
        forget_boot_once(settings, prepared.bundle, say)
        return Booted(prepared, proc, record), undo.pop_all()


def take(
    settings: HostSettings,
    b: Bundle,
    say: Say,
    undo: ExitStack,
    *,
    until: float,
    owner_pid: int | None = None,
    arc_view: ArcBackend | None = None,
) -> Prepared:
    """What a boot takes before QEMU runs: the owner check, the memory charge, the
    run directory and display, the owner record; each registered on undo to be
    given back. owner_pid: the process that holds the charge and the display
    until QEMU runs (by default this one); arc_view: the controller's shared view
    of the ARC."""
    # First, so a guest another host may be running changes nothing here.
    me = owner.check_start(b.path, b.name)
    admission.reserve(settings, b.name, b.config, say, until=until, owner=owner_pid, view=arc_view)
    undo.callback(admission.release, settings, b.name, say)
    prepared = prepare.prepare(b, settings, owner=owner_pid)
    undo.callback(prepare.finish, b.name, prepared.run, settings)
    # Claimed only now that nothing in the config can refuse the start, which
    # leaves a bad bundle as it was.
    owner.take(settings.run_dir, b.path, b.name, me, promote=False, take_over=False)
    undo.callback(owner.release_or_say, settings.run_dir, b.path, b.name, say)
    return prepared


def give_back(settings: HostSettings, name: str, bundle_path: Path, say: Say) -> None:
    """Undo what take() took for a start that failed in another process."""
    owner.release_or_say(settings.run_dir, bundle_path, name, say)
    prepare.finish(name, RunPaths.for_guest(settings.run_dir, name), settings)
    admission.release(settings, name, say)


def record_of(prepared: Prepared, fmri: str | None, qemu_pid: int, started: float) -> BootRecord:
    """The boot record of a guest prepared so and running."""
    auth = prepared.display_auth
    cfg = prepared.bundle.config
    return BootRecord(
        bundle=str(prepared.bundle.path),
        config=attrs.evolve(cfg, boot_once=None),
        profile=prepared.profile.name,
        qemu_pid=qemu_pid,
        started=started,
        fmri=fmri,
        display=prepared.display,
        capacity=prepared.capacity,
        boot_ram=cfg.ram,
        display_auth=auth.describe() if auth else None,
        display_password=auth.password if auth else None,
    )


def protect_display(settings: HostSettings, prepared: Prepared, say: Say) -> None:
    """What the display's protection needs once QEMU runs: the 0.14 fork's password
    over QMP (it has no secret objects), and a warning for an open display."""
    auth = prepared.display_auth
    if auth is None:
        return
    if needs_password_over_qmp(prepared):
        password = prepared.run.vnc_password.read_text()
        qmp.execute(prepared.run, "set_password", {"protocol": "vnc", "password": password})
    warning = display_warning(settings, prepared)
    if warning is not None:
        say(warning)


def needs_password_over_qmp(prepared: Prepared) -> bool:
    auth = prepared.display_auth
    return auth is not None and auth.password is not None and prepared.profile.name == "illumos-kvm"


def display_warning(settings: HostSettings, prepared: Prepared) -> str | None:
    auth = prepared.display_auth
    if auth is None or auth.kind != "unauthenticated":
        return None
    return (
        f"{prepared.bundle.name}: warning: its display :{prepared.display} listens on "
        f"{settings.vnc_listen} with no password (allow_unauthenticated = true in the host "
        "configuration): anyone who reaches the port has its keyboard and screen"
    )


def spawn(prepared: Prepared, saved: int | None) -> subprocess.Popen[bytes]:
    """QEMU, resuming from the saved state on descriptor saved when there is one."""
    if saved is None:
        return qemu.spawn(prepared.argv)
    try:
        return qemu.spawn((*prepared.argv, "-incoming", f"fd:{saved}"), pass_fds=(saved,))
    finally:
        os.close(saved)  # QEMU holds its own


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
