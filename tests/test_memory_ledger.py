"""The memory ledger: its file, its lock, and which charges are stale."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

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
