"""Choosing the accelerator."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmbundle.guest.prepare import choose_accel


@pytest.fixture
def kvm(tmp_path: Path) -> Path:
    device = tmp_path / "kvm"
    device.write_bytes(b"")
    return device


def test_explicit_accelerator_is_kept(tmp_path: Path) -> None:
    assert choose_accel("kvm", tmp_path / "absent") == "kvm"
    assert choose_accel("tcg") == "tcg"


def test_auto_without_an_openable_kvm_device_is_tcg(tmp_path: Path) -> None:
    assert choose_accel("auto", tmp_path / "absent", tmp_path) == "tcg"


def test_auto_with_hardware_kvm_is_kvm(kvm: Path, tmp_path: Path) -> None:
    modules = tmp_path / "module"
    (modules / "kvm_amd").mkdir(parents=True)
    assert choose_accel("auto", kvm, modules) == "kvm"


def test_auto_on_the_nested_pvm_hypervisor_is_tcg(kvm: Path, tmp_path: Path) -> None:
    modules = tmp_path / "module"
    (modules / "kvm_pvm").mkdir(parents=True)
    (modules / "kvm").mkdir()
    assert choose_accel("auto", kvm, modules) == "tcg"


def test_auto_without_sys_module_as_on_illumos_is_kvm(kvm: Path, tmp_path: Path) -> None:
    assert choose_accel("auto", kvm, tmp_path / "no-sys-module") == "kvm"
