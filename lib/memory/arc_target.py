"""The ARC maximum the ledger asks for, set in the kernel by one process at a time.

An admission changes the ledger under its lock and lets the lock go; setting the
maximum (kstat and mdb, or zfscache) then runs with no lock that another
admission waits on. The process holding arc.lock sets the newest maximum the
ledger asks for, and again until nothing newer is asked, so sixteen admissions
at once cost one or two settings, not sixteen in a queue. A process that finds
arc.lock taken leaves the setting to its holder and waits for its own epoch; one
that finds it free (its holder died) takes over.

Every epoch's maximum counts every charge in the ledger at that time, so once an
epoch at least as new as a guest's own is set, the kernel has room for it.
"""

from __future__ import annotations

import time
from pathlib import Path

import attrs

from vmbundle.errors import VmbundleError
from vmbundle.locks import try_exclusive
from vmbundle.memory import ledger as memory_ledger
from vmbundle.memory.arc import ArcBackend
from vmbundle.memory.ledger import Fault

LOCK = "arc.lock"
WAIT_SECONDS = 60.0


class ArcNotSet(VmbundleError):
    """The kernel's ARC maximum could not be set to what the ledger asks for."""


def settle(run_dir: Path, arc_backend: ArcBackend) -> None:
    """Set the newest maximum asked for, unless another process is setting it
    (that one sets the newest too); return once nothing newer is asked."""
    while True:
        with try_exclusive(run_dir / LOCK) as setter:
            if not setter:
                return
            while not (asked := memory_ledger.read(run_dir)).settled:
                assert asked.arc_max is not None  # an epoch is asked only with a maximum
                try:
                    arc_backend.set_max(asked.arc_max)
                except VmbundleError as exc:
                    _record(run_dir, asked.epoch, Fault(asked.epoch, str(exc)))
                else:
                    _record(run_dir, asked.epoch, None)
        # Asked for after the last look but before arc.lock went, by a process
        # that found it taken: nobody else will set that one.
        if memory_ledger.read(run_dir).settled:
            return


def _record(run_dir: Path, epoch: int, fault: Fault | None) -> None:
    with memory_ledger.locked(run_dir) as book:
        now = book.ledger
        if fault is None:
            done = attrs.evolve(now, applied=max(now.applied, epoch))
        else:
            done = attrs.evolve(now, fault=fault)
        book.save(done.tidy())


def wait(run_dir: Path, arc_backend: ArcBackend, epoch: int, until: float | None = None) -> None:
    """Return once the kernel has an ARC maximum of epoch or newer; ArcNotSet when
    setting it failed, or when it is not set by `until` (a monotonic time)."""
    deadline = time.monotonic() + WAIT_SECONDS if until is None else until
    while True:
        settle(run_dir, arc_backend)
        now = memory_ledger.read(run_dir)
        if now.epoch < epoch:
            raise ArcNotSet(f"{run_dir / memory_ledger.FILE} was replaced meanwhile; try again")
        if now.applied >= epoch:
            return
        if now.fault is not None and now.fault.epoch >= epoch:
            raise ArcNotSet(f"the ARC maximum could not be set: {now.fault.line}")
        if time.monotonic() >= deadline:
            raise ArcNotSet(
                f"the ARC maximum asked for (epoch {epoch}) was not set in time; "
                f"another vmbundle process holds {run_dir / LOCK}"
            )
        time.sleep(0.005)
