"""The corpus of bad bundles: each case builds one bundle and names the line that
`vmbundle validate` and `vmbundle run` must print for it."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

UUID = "0b6f1d2e-3c4a-4b5c-8d6e-7f8091a2b3c4"


def good_doc(name: str) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "name": name,
        "uuid": UUID,
        "ram": "256M",
        "vcpus": 1,
        "disks": [{"id": "disk0", "file": "disk0.qcow2", "size": "64M"}],
        "cdroms": [{"id": "cd0", "iso": None}],
        "nics": [{"id": "net0", "mac": "52:54:00:00:00:01", "backend": {"type": "user"}}],
    }


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


Setup = Callable[[Path, Path], None]  # (bundle dir, a scratch dir outside it)


def _nothing(bundle: Path, outside: Path) -> None:
    pass


@attrs.frozen
class Case:
    name: str
    expect: str
    doc: Callable[[dict[str, Any]], Any] = lambda d: d
    setup: Setup = _nothing
    raw: bytes | None = None  # vm.json bytes, instead of doc


def _edit(**changes: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def apply(d: dict[str, Any]) -> dict[str, Any]:
        d.update(changes)
        return d

    return apply


def _entry(group: str, **changes: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """An edit of the first entry of a list (disks, cdroms, nics)."""

    def apply(d: dict[str, Any]) -> dict[str, Any]:
        d[group][0].update(changes)
        return d

    return apply


def _symlink_disk_outside(bundle: Path, outside: Path) -> None:
    (bundle / "disk0.qcow2").unlink()
    qemu_img("create", "-f", "qcow2", str(outside / "victim.qcow2"), "64M")
    os.symlink(outside / "victim.qcow2", bundle / "disk0.qcow2")


def _backing_outside(bundle: Path, outside: Path) -> None:
    qemu_img("create", "-f", "qcow2", str(outside / "base.qcow2"), "64M")
    (bundle / "disk0.qcow2").unlink()
    qemu_img(
        "create",
        "-f",
        "qcow2",
        "-b",
        str(outside / "base.qcow2"),
        "-F",
        "qcow2",
        str(bundle / "disk0.qcow2"),
    )


def _backing_relative_escape(bundle: Path, outside: Path) -> None:
    qemu_img("create", "-f", "qcow2", str(bundle.parent / "shared-base.qcow2"), "64M")
    (bundle / "disk0.qcow2").unlink()
    qemu_img(
        "create",
        "-f",
        "qcow2",
        "-b",
        "../shared-base.qcow2",
        "-F",
        "qcow2",
        str(bundle / "disk0.qcow2"),
    )


def _backing_json(bundle: Path, outside: Path) -> None:
    qemu_img("create", "-f", "qcow2", str(outside / "base.qcow2"), "64M")
    (bundle / "disk0.qcow2").unlink()
    target = 'json:{"driver": "qcow2", "file": {"driver": "file", "filename": "%s"}}' % (
        outside / "base.qcow2"
    )
    qemu_img(
        "create",
        "-f",
        "qcow2",
        "-u",
        "-b",
        target,
        "-F",
        "qcow2",
        str(bundle / "disk0.qcow2"),
        "64M",
    )


def _backing_missing(bundle: Path, outside: Path) -> None:
    qemu_img("create", "-f", "qcow2", str(bundle / "base.qcow2"), "64M")
    (bundle / "disk0.qcow2").unlink()
    qemu_img(
        "create",
        "-f",
        "qcow2",
        "-b",
        str(bundle / "base.qcow2"),
        "-F",
        "qcow2",
        str(bundle / "disk0.qcow2"),
    )
    (bundle / "base.qcow2").unlink()


def _disk_is_directory(bundle: Path, outside: Path) -> None:
    (bundle / "disk0.qcow2").unlink()
    (bundle / "disk0.qcow2").mkdir()


def _iso_link_outside(bundle: Path, outside: Path) -> None:
    (outside / "secret.iso").write_bytes(b"x" * 2048)
    os.symlink(outside / "secret.iso", bundle / "install.iso")


def _no_disk_file(bundle: Path, outside: Path) -> None:
    (bundle / "disk0.qcow2").unlink()


def _two_disks_same_id(d: dict[str, Any]) -> dict[str, Any]:
    d["disks"].append({"id": "disk0", "file": "disk1.qcow2", "size": "64M"})
    return d


def _two_nics_same_mac(d: dict[str, Any]) -> dict[str, Any]:
    d["nics"].append({"id": "net1", "mac": "52:54:00:00:00:01"})
    return d


def _make_disk1(bundle: Path, outside: Path) -> None:
    qemu_img("create", "-f", "qcow2", str(bundle / "disk1.qcow2"), "64M")


CASES = [
    Case("not_json", "{name}: vm.json is not valid JSON", raw=b'{"name": '),
    Case("not_object", "{name}: vm.json must hold a JSON object", raw=b"[]"),
    Case("duplicate_key", "appears twice", raw=b'{"vcpus": 1, "vcpus": 2}'),
    Case("too_large", "vm.json is larger than 1048576 bytes", raw=b" " * (1 << 20) + b"{}"),
    Case("unknown_key", "{name}: vcpu: unknown key; did you mean 'vcpus'?", _edit(vcpu=2)),
    Case(
        "missing_uuid",
        "{name}: uuid: is missing; add it",
        lambda d: {k: v for k, v in d.items() if k != "uuid"},
    ),
    Case("bad_name", "name: must be a name like web01", _edit(name="1web")),
    Case("name_mismatch", "name: is 'other' but the bundle is named", _edit(name="other")),
    Case("newer_schema", "upgrade vmbundle", _edit(schema_version=2)),
    Case("ram_too_small", "{name}: ram: must be from 32M to 4T, got 16M", _edit(ram="16M")),
    Case("ram_not_size", '{name}: ram: must be a size like 20G, got "2GB"', _edit(ram="2GB")),
    Case("ram_beyond_host", "{name}: ram: 4T is more than this host's memory", _edit(ram="4T")),
    Case("vcpus_zero", "{name}: vcpus: must be from 1 to 255, got 0", _edit(vcpus=0)),
    Case("vcpus_beyond_host", "{name}: vcpus: 255 is more than this host's", _edit(vcpus=255)),
    Case(
        "stop_timeout_zero",
        "{name}: stop_timeout: must be from 1 to 600, got 0",
        _edit(stop_timeout=0),
    ),
    Case(
        "disk_absolute",
        "{name}: disks[0].file: '/etc/passwd' must be a path inside the bundle",
        _entry("disks", file="/etc/passwd"),
    ),
    Case(
        "disk_dotdot",
        "{name}: disks[0].file: '../x.qcow2' must be a path inside the bundle",
        _entry("disks", file="../x.qcow2"),
    ),
    Case(
        "disk_symlink_outside",
        "{name}: disks[0].file: 'disk0.qcow2' leads outside the bundle",
        setup=_symlink_disk_outside,
    ),
    Case(
        "disk_missing",
        "{name}: disks[0].file: 'disk0.qcow2' does not exist in the bundle",
        setup=_no_disk_file,
    ),
    Case(
        "disk_is_directory",
        "{name}: disks[0].file: 'disk0.qcow2' is not a regular file",
        setup=_disk_is_directory,
    ),
    Case(
        "disk_format_mismatch",
        "{name}: disks[0].format: says raw but the image is qcow2",
        _entry("disks", format="raw"),
    ),
    Case(
        "disk_size_mismatch",
        "{name}: disks[0].size: says 1G but the image holds 67108864 bytes",
        _entry("disks", size="1G"),
    ),
    Case(
        "disk_bad_bus",
        "{name}: disks[0].bus: must be one of virtio|scsi|sata|ide",
        _entry("disks", bus="usb"),
    ),
    Case(
        "disk_newline_in_file",
        "{name}: disks[0].file: must not contain control characters",
        _entry("disks", file="a\nb.qcow2"),
    ),
    Case("backing_outside", "{name}: disks[0].file: its backing file", setup=_backing_outside),
    Case("backing_relative_escape", "is outside the bundle", setup=_backing_relative_escape),
    Case("backing_json_protocol", "is outside the bundle", setup=_backing_json),
    Case("backing_missing", "{name}: disks[0].file: its backing file", setup=_backing_missing),
    Case(
        "duplicate_disk_id",
        "{name}: disks[1].id: 'disk0' is used by another device",
        _two_disks_same_id,
        _make_disk1,
    ),
    Case(
        "duplicate_mac",
        "{name}: nics[1].mac: 52:54:00:00:00:01 is used by another NIC",
        _two_nics_same_mac,
    ),
    Case(
        "bad_mac",
        "{name}: nics[0].mac: must be a MAC address",
        _entry("nics", mac="52:54:00:00:00"),
    ),
    Case(
        "iso_outside_iso_dirs",
        "{name}: cdroms[0].iso: '/etc/hostname' is neither in the bundle nor in an ISO directory",
        _entry("cdroms", iso="/etc/hostname"),
    ),
    Case(
        "iso_link_outside",
        "{name}: cdroms[0].iso: 'install.iso' leads outside the bundle",
        _entry("cdroms", iso="install.iso"),
        _iso_link_outside,
    ),
    Case(
        "vnc_password_long",
        "{name}: vnc.password: must be at most 8 characters",
        _edit(vnc={"password": "123456789"}),
    ),
    Case(
        "boot_once_unknown",
        "{name}: boot_once: 'cd9' is not a device of this guest",
        _edit(boot_once="cd9"),
    ),
    Case(
        "vnic_on_modern_qemu",
        "{name}: nics[0].backend.type: vnic needs the illumos KVM QEMU",
        _entry("nics", backend={"type": "vnic", "name": "vnic0"}),
    ),
]


def build(case: Case, root: Path, outside: Path) -> Path:
    bundle = root / case.name
    bundle.mkdir(parents=True)
    qemu_img("create", "-f", "qcow2", str(bundle / "disk0.qcow2"), "64M")
    if case.raw is not None:
        (bundle / "vm.json").write_bytes(case.raw)
    else:
        doc = case.doc(good_doc(case.name))
        (bundle / "vm.json").write_text(json.dumps(doc, indent=2))
    case.setup(bundle, outside)
    return bundle


def fingerprint(path: Path) -> dict[str, tuple[Any, ...]]:
    """Every file's bytes, mode, mtime and link target under path."""
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            if p.is_symlink():
                out[str(p)] = ("link", os.readlink(p), st.st_mtime_ns)
            elif p.is_file():
                out[str(p)] = ("file", p.read_bytes(), st.st_mode, st.st_mtime_ns)
            else:
                out[str(p)] = ("dir", st.st_mode)
    return out
