"""The host's ledger of memory charges, in the run directory (memory.json).

Changed only under a host-wide flock (memory.lock), so admissions made at the
same moment see each other. Each charge names the guest and the process that
reserved it (a start method): a charge is stale, and reconcile drops it, once
that process has ended and the guest's QEMU is not running, the rule the
display table uses. The baseline is the ARC maximum saved before the first
change, kept until the last charge goes.
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
class Ledger:
    baseline: int | None = None
    charges: dict[str, Charge] = attrs.field(factory=dict)

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
        return Ledger(
            baseline=doc.get("baseline"),
            charges={
                str(g): Charge(int(c["bytes"]), int(c["owner"]))
                for g, c in doc.get("charges", {}).items()
            },
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
