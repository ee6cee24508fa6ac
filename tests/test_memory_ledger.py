"""The memory ledger: its file, its lock, and which charges are stale."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import attrs

from vmbundle.memory import ledger
from vmbundle.memory.ledger import Charge, Ledger


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_charge_is_stale_once_its_owner_and_its_guest_are_both_gone() -> None:
    ledger = Ledger(
        baseline=6 << 30,
        charges={
            "starting": Charge(1 << 30, os.getpid()),  # its start method still runs
            "running": Charge(1 << 30, dead_pid()),  # started; QEMU runs
            "killed": Charge(1 << 30, dead_pid()),  # neither
        },
    )
    assert ledger.stale(lambda guest: guest == "running") == ["killed"]


def test_the_ledger_round_trips_through_its_file_under_the_lock(tmp_path: Path) -> None:
    with ledger.locked(tmp_path) as book:
        assert book.ledger == Ledger()
        book.save(Ledger(baseline=5 << 30, charges={"web01": Charge.mine(2 << 30)}))
    again = ledger.read(tmp_path)
    assert again.baseline == 5 << 30
    assert again.amounts() == {"web01": 2 << 30}
    assert again.charges["web01"].owner == os.getpid()


def test_a_damaged_ledger_reads_as_empty(tmp_path: Path) -> None:
    (tmp_path / ledger.FILE).write_text('{"charges": {"web01": {"bytes": "lots"}}}')
    assert ledger.read(tmp_path) == Ledger()


def test_an_arc_maximum_asked_anew_is_a_new_epoch_and_the_same_one_is_not() -> None:
    fresh = Ledger()
    # Nothing asked yet: the kernel's maximum is what is there.
    assert fresh.asking(8 << 30, current=8 << 30).epoch == 0
    asked = fresh.asking(6 << 30, current=8 << 30)
    assert (asked.arc_max, asked.epoch, asked.settled) == (6 << 30, 1, False)
    assert asked.asking(6 << 30, current=8 << 30).epoch == 1
    assert asked.asking(5 << 30, current=8 << 30).epoch == 2


def test_an_epoch_is_settled_once_set_or_failed() -> None:
    asked = Ledger(arc_max=6 << 30, epoch=3, applied=2)
    assert not asked.settled
    assert attrs.evolve(asked, applied=3).settled
    assert attrs.evolve(asked, fault=ledger.Fault(3, "mdb: no such symbol")).settled
    assert not attrs.evolve(asked, fault=ledger.Fault(2, "mdb: no such symbol")).settled


def test_the_baseline_is_forgotten_only_with_no_charge_and_the_arc_maximum_set() -> None:
    charged = Ledger(
        baseline=8 << 30, charges={"web01": Charge(1 << 30, 1)}, arc_max=7 << 30, epoch=1
    )
    assert charged.tidy() == charged
    released = attrs.evolve(charged, charges={}, arc_max=8 << 30, epoch=2, applied=1)
    assert released.tidy() == released  # the raise back to the baseline is not set yet
    done = attrs.evolve(released, applied=2).tidy()
    assert (done.baseline, done.arc_max, done.epoch, done.applied) == (None, None, 2, 2)


def test_epochs_and_a_fault_round_trip_through_the_file(tmp_path: Path) -> None:
    with ledger.locked(tmp_path) as book:
        book.save(Ledger(arc_max=6 << 30, epoch=4, applied=3, fault=ledger.Fault(4, "no")))
    assert ledger.read(tmp_path) == Ledger(
        arc_max=6 << 30, epoch=4, applied=3, fault=ledger.Fault(4, "no")
    )
