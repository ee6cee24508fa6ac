"""Choosing the accelerator."""

from __future__ import annotations

import os
from pathlib import Path

from vmbundle.launch import choose_accel


def test_explicit_accelerator_is_kept() -> None:
    assert choose_accel("kvm") == "kvm"
    assert choose_accel("tcg") == "tcg"


def test_auto_picks_kvm_only_where_it_runs_a_stock_guest() -> None:
    usable = os.access("/dev/kvm", os.R_OK | os.W_OK)
    hardware = any(Path("/sys/module", m).exists() for m in ("kvm_intel", "kvm_amd"))
    assert choose_accel("auto") == ("kvm" if usable and hardware else "tcg")
