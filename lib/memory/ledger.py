"""The host's ledger of memory charges, in the run directory (memory.json).

Changed only under a host-wide flock (memory.lock), so admissions made at the
same moment see each other; the lock is held for the arithmetic and the file's
write only, never while a tool (kstat, mdb) runs. Each charge names the guest
and the process that reserved it (a start method): a charge is stale, and
reconcile drops it, once that process has ended and the guest's QEMU is not
running, the rule the display table uses. The baseline is the ARC maximum saved
before the first change, kept until the last charge goes and the ARC maximum is
back at it.

The ARC maximum the charges call for is `arc_max`, numbered by `epoch` each
time it changes; `applied` is the newest epoch known to be set in the kernel
(vmbundle.memory.arc_target applies it), and `fault` the line of an epoch whose
setting failed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs

from vmbundle.atomic import write_atomic
from vmbundle.guest.process import pid_alive
from vmbundle.locks import exclusive

FILE = "memory.json"
LOCK = "memory.lock"


@attrs.frozen
class Charge:
    bytes: int
    owner: int
    """The pid of the process that reserved it."""

    @classmethod
    def mine(cls, amount: int) -> Charge:
        """A charge reserved by this process."""
        return cls(amount, os.getpid())


@attrs.frozen
class Fault:
    epoch: int
    line: str


@attrs.frozen
class Ledger:
    baseline: int | None = None
    charges: dict[str, Charge] = attrs.field(factory=dict)
    arc_max: int | None = None
    """The ARC maximum these charges call for; None when nothing was asked yet."""
    epoch: int = 0
    applied: int = 0
    fault: Fault | None = None

    @property
    def settled(self) -> bool:
        """Whether the newest ARC maximum asked for was set, or failed to be."""
        failed = self.fault.epoch if self.fault is not None else 0
        return max(self.applied, failed) >= self.epoch

    def tidy(self) -> Ledger:
        """With no charge left and the ARC maximum back where it was asked, the
        baseline is forgotten: the administrator may change it before the next guest."""
        if self.charges or self.applied < self.epoch:
            return self
        return attrs.evolve(self, baseline=None, arc_max=None)

    def asking(self, arc_max: int, current: int) -> Ledger:
        """This ledger asking for arc_max (current: the kernel's maximum when the
        ledger has asked nothing yet): a new epoch when that is a change."""
        if arc_max == (self.arc_max if self.arc_max is not None else current):
            return attrs.evolve(self, arc_max=arc_max)
        return attrs.evolve(self, arc_max=arc_max, epoch=self.epoch + 1)

    def amounts(self) -> dict[str, int]:
        return {g: c.bytes for g, c in self.charges.items()}

    def stale(self, guest_running: Callable[[str], bool]) -> list[str]:
        """Guests charged with neither their reserving process nor their QEMU alive."""
        return sorted(
            g for g, c in self.charges.items() if not pid_alive(c.owner) and not guest_running(g)
        )


def _read(run_dir: Path) -> Ledger:
    try:
        doc = json.loads((run_dir / FILE).read_text())
        fault = doc.get("fault")
        return Ledger(
            baseline=doc.get("baseline"),
            charges={
                str(g): Charge(int(c["bytes"]), int(c["owner"]))
                for g, c in doc.get("charges", {}).items()
            },
            arc_max=None if doc.get("arc_max") is None else int(doc["arc_max"]),
            epoch=int(doc.get("epoch", 0)),
            applied=int(doc.get("applied", 0)),
            fault=None if fault is None else Fault(int(fault["epoch"]), str(fault["line"])),
        )
    except FileNotFoundError:
        return Ledger()
    except (ValueError, KeyError, TypeError, AttributeError):
        # A damaged ledger would block every start: start afresh; reconcile and
        # the next admissions rebuild it from the guests that run.
        return Ledger()


def _write(run_dir: Path, ledger: Ledger) -> None:
    doc = {
        "baseline": ledger.baseline,
        "charges": {g: attrs.asdict(c) for g, c in sorted(ledger.charges.items())},
        "arc_max": ledger.arc_max,
        "epoch": ledger.epoch,
        "applied": ledger.applied,
        "fault": None if ledger.fault is None else attrs.asdict(ledger.fault),
    }
    write_atomic(run_dir / FILE, (json.dumps(doc, indent=1) + "\n").encode(), durable=False)


class Book:
    """The ledger as read under the lock; `save` writes it back before the lock goes."""

    def __init__(self, run_dir: Path, ledger: Ledger) -> None:
        self.run_dir = run_dir
        self.ledger = ledger

    def save(self, ledger: Ledger) -> None:
        _write(self.run_dir, ledger)
        self.ledger = ledger


@contextmanager
def locked(run_dir: Path, timeout: float = 60.0) -> Iterator[Book]:
    run_dir.mkdir(parents=True, exist_ok=True)
    with exclusive(run_dir / LOCK, timeout):
        yield Book(run_dir, _read(run_dir))


def read(run_dir: Path) -> Ledger:
    """The ledger as it is now, for display (no lock: the file is replaced whole)."""
    return _read(run_dir)
