"""vmbundle.adapters.qemu_img against the real qemu-img."""

from __future__ import annotations

import itertools
import os
import subprocess
from pathlib import Path

import pytest

from vmbundle.adapters import qemu_img
from vmbundle.errors import ToolError, VmbundleError

MiB = 1 << 20


def test_info_of_a_new_qcow2(tmp_path: Path) -> None:
    disk = tmp_path / "disk0.qcow2"
    qemu_img.create(disk, "qcow2", 64 * MiB)
    info = qemu_img.info(disk)
    assert info.filename == str(disk)
    assert info.format == "qcow2"
    assert info.virtual_size == 64 * MiB
    assert info.actual_size is not None and 0 < info.actual_size < 64 * MiB
    assert info.backing_filename is None
    assert info.backing_format is None


def test_info_of_a_new_raw_image_which_is_sparse(tmp_path: Path) -> None:
    disk = tmp_path / "disk0.img"
    qemu_img.create(disk, "raw", 64 * MiB)
    info = qemu_img.info(disk)
    assert (info.format, info.virtual_size) == ("raw", 64 * MiB)
    assert disk.stat().st_size == 64 * MiB
    assert info.actual_size is not None and info.actual_size < MiB


def test_create_never_overwrites(tmp_path: Path) -> None:
    disk = tmp_path / "disk0.qcow2"
    disk.write_bytes(b"precious")
    with pytest.raises(VmbundleError, match="already exists"):
        qemu_img.create(disk, "qcow2", MiB)
    assert disk.read_bytes() == b"precious"


def test_create_refuses_other_formats(tmp_path: Path) -> None:
    with pytest.raises(VmbundleError, match="not a disk format"):
        qemu_img.create(tmp_path / "d.vmdk", "vmdk", MiB)


def _overlay(top: Path, backing: str) -> None:
    subprocess.run(
        ["qemu-img", "create", "-f", "qcow2", "-b", backing, "-F", "qcow2", "-u", str(top), "64M"],
        check=True,
        capture_output=True,
    )


def test_info_reports_the_backing_file_as_a_full_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    qemu_img.create(tmp_path / "base.qcow2", "qcow2", 64 * MiB)
    _overlay(tmp_path / "top.qcow2", "base.qcow2")
    # Given a relative path, qemu-img would report the backing file relative to
    # the working directory; the adapter asks with an absolute one.
    monkeypatch.chdir(tmp_path)
    info = qemu_img.info(Path("top.qcow2"))
    assert info.backing_filename == str(tmp_path / "base.qcow2")
    assert info.backing_format == "qcow2"


def test_info_resolves_a_backing_file_against_the_image_directory(tmp_path: Path) -> None:
    qemu_img.create(tmp_path / "base.qcow2", "qcow2", 64 * MiB)
    (tmp_path / "sub").mkdir()
    _overlay(tmp_path / "sub" / "top.qcow2", "../base.qcow2")
    info = qemu_img.info(tmp_path / "sub" / "top.qcow2")
    assert info.backing_filename is not None
    assert os.path.realpath(info.backing_filename) == str(tmp_path / "base.qcow2")


def test_info_does_not_open_the_backing_file(tmp_path: Path) -> None:
    _overlay(tmp_path / "top.qcow2", "/nonexistent/base.qcow2")
    assert qemu_img.info(tmp_path / "top.qcow2").backing_filename == "/nonexistent/base.qcow2"


def test_info_of_a_missing_image_carries_the_qemu_img_message(tmp_path: Path) -> None:
    with pytest.raises(ToolError) as caught:
        qemu_img.info(tmp_path / "nothere.qcow2")
    assert str(caught.value).startswith("qemu-img: Could not open")
    assert "No such file or directory" in str(caught.value)
    assert caught.value.returncode == 1


@pytest.mark.parametrize("fmt", ["qcow2", "raw"])
def test_resize_grows(tmp_path: Path, fmt: str) -> None:
    disk = tmp_path / f"disk.{fmt}"
    qemu_img.create(disk, fmt, 64 * MiB)
    qemu_img.resize(disk, 96 * MiB, fmt)
    assert qemu_img.info(disk).virtual_size == 96 * MiB


@pytest.mark.parametrize("fmt", ["qcow2", "raw"])
def test_resize_shrinks_only_when_allowed(tmp_path: Path, fmt: str) -> None:
    disk = tmp_path / f"disk.{fmt}"
    qemu_img.create(disk, fmt, 64 * MiB)
    with pytest.raises(ToolError) as caught:
        qemu_img.resize(disk, 32 * MiB, fmt)
    # qemu-img prints a warning after its error; the error is what the line shows.
    assert str(caught.value) == "qemu-img: Use the --shrink option to perform a shrink operation."
    assert qemu_img.info(disk).virtual_size == 64 * MiB
    qemu_img.resize(disk, 32 * MiB, fmt, allow_shrink=True)
    assert qemu_img.info(disk).virtual_size == 32 * MiB


def test_convert_raw_to_qcow2_reports_rising_progress(tmp_path: Path) -> None:
    src = tmp_path / "src.img"
    with open(src, "wb") as f:
        # Data spread over the image, so that the copy takes several steps.
        for offset in range(0, 64 * MiB, 4 * MiB):
            f.seek(offset)
            f.write(os.urandom(256 * 1024))
        f.truncate(64 * MiB)
    dst = tmp_path / "dst.qcow2"
    seen: list[float] = []
    qemu_img.convert(src, "raw", dst, "qcow2", seen.append)
    assert len(seen) > 2
    assert all(a < b for a, b in itertools.pairwise(seen))
    assert seen[-1] == 100.0
    info = qemu_img.info(dst)
    assert (info.format, info.virtual_size) == ("qcow2", 64 * MiB)
    same = subprocess.run(
        ["qemu-img", "compare", "-f", "raw", "-F", "qcow2", str(src), str(dst)],
        capture_output=True,
        check=False,
    )
    assert same.returncode == 0, same.stdout


def test_convert_without_a_callback(tmp_path: Path) -> None:
    src = tmp_path / "src.qcow2"
    qemu_img.create(src, "qcow2", 8 * MiB)
    qemu_img.convert(src, "qcow2", tmp_path / "dst.img", "raw", None)
    assert qemu_img.info(tmp_path / "dst.img").format == "raw"


def test_convert_failure_carries_the_qemu_img_message(tmp_path: Path) -> None:
    with pytest.raises(ToolError) as caught:
        qemu_img.convert(tmp_path / "nothere.img", "raw", tmp_path / "d.qcow2", "qcow2", None)
    assert str(caught.value).startswith("qemu-img: Could not open")
    assert not (tmp_path / "d.qcow2").exists()


def test_a_given_binary_is_used(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="command not found"):
        qemu_img.info(tmp_path / "x.qcow2", binary=str(tmp_path / "qemu-img"))
    with pytest.raises(ToolError, match="command not found"):
        qemu_img.convert(
            tmp_path / "a", "raw", tmp_path / "b", "raw", None, binary=str(tmp_path / "qemu-img")
        )
