"""The bundle commands end to end through the real `vmbundle` command: on a zfs-fuse
dataset and on a plain directory, with real qemu-img images."""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.bad_bundles import fingerprint
from support.host import TestHost, test_host
from support.zfs_pool import Pool


def qemu_img_info(path: Path) -> dict[str, object]:
    out = subprocess.run(
        ["qemu-img", "info", "--output=json", "-U", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    doc: dict[str, object] = json.loads(out)
    return doc


@pytest.fixture
def dir_host(tmp_path: Path) -> Iterator[TestHost]:
    with test_host(tmp_path) as h:
        yield h


@pytest.mark.zfs
def test_create_on_a_zfs_root_makes_a_child_dataset(zfs_pool: Pool, tmp_path: Path) -> None:
    subprocess.run(["zfs", "create", f"{zfs_pool.name}/vms"], check=True)
    try:
        with test_host(tmp_path, root=f"{zfs_pool.name}/vms") as h:
            out = h.vmbundle(
                "create", "web01", "--ram", "256M", "--vcpus", "1", "--disk", "1G"
            ).stdout
            bundle = zfs_pool.mountpoint / "vms" / "web01"
            assert f"({'dataset'} {zfs_pool.name}/vms/web01)" in out
            names = subprocess.run(
                ["zfs", "list", "-H", "-o", "name,mountpoint", "-t", "filesystem"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.splitlines()
            assert f"{zfs_pool.name}/vms/web01\t{bundle}" in names
            assert qemu_img_info(bundle / "disk0.qcow2")["virtual-size"] == 1 << 30
            assert h.vmbundle("validate", "web01").stdout == "web01: valid\n"
            # A snapshot sent and received is a whole guest: config and disks together.
            subprocess.run(["zfs", "snapshot", f"{zfs_pool.name}/vms/web01@s1"], check=True)
            send = subprocess.Popen(
                ["zfs", "send", f"{zfs_pool.name}/vms/web01@s1"], stdout=subprocess.PIPE
            )
            subprocess.run(
                ["zfs", "recv", f"{zfs_pool.name}/vms/copy"], stdin=send.stdout, check=True
            )
            send.wait()
            copy = zfs_pool.mountpoint / "vms" / "copy"
            bad = h.vmbundle("validate", str(copy), check=False)
            assert bad.returncode == 1
            assert "web01: name: is 'web01' but the bundle is named 'copy'" in bad.stderr
            h.vmbundle("set", str(copy), "name=copy", "uuid=6a0c3a4e-0000-4000-8000-000000000001")
            assert h.vmbundle("validate", "copy").stdout == "copy: valid\n"
            h.vmbundle("destroy", "web01", "--yes")
            h.vmbundle("destroy", "copy", "--yes")
            left = subprocess.run(
                ["zfs", "list", "-H", "-o", "name", "-r", f"{zfs_pool.name}/vms"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            assert left == [f"{zfs_pool.name}/vms"]
    finally:
        subprocess.run(["zfs", "destroy", "-r", f"{zfs_pool.name}/vms"], capture_output=True)


def test_create_on_a_directory_root(dir_host: TestHost) -> None:
    out = dir_host.vmbundle(
        "create",
        "db01",
        "--ram",
        "512M",
        "--vcpus",
        "2",
        "--disk",
        "2G",
        "--disk",
        "1G,bus=sata,format=raw",
        "--cdrom",
        "--nic",
        "user",
        "--nic",
        "tap:tap0,model=e1000",
        "--boot",
        "cd0,disk0",
    ).stdout
    assert "(directory)" in out
    bundle = dir_host.root / "db01"
    doc = json.loads((bundle / "vm.json").read_text())
    assert [d["file"] for d in doc["disks"]] == ["disk0.qcow2", "disk1.img"]
    assert qemu_img_info(bundle / "disk1.img")["format"] == "raw"
    assert [(d["id"], d["boot_index"]) for d in doc["disks"] + doc["cdroms"]] == [
        ("disk0", 1),
        ("disk1", None),
        ("cd0", 0),
    ]
    macs = [n["mac"] for n in doc["nics"]]
    assert all(m.startswith("52:54:00:") for m in macs) and len(set(macs)) == 2
    shown = json.loads(dir_host.vmbundle("show", "db01", "--json").stdout)
    assert shown["config"] == doc and shown["path"] == str(bundle)
    human = dir_host.vmbundle("show", "db01").stdout
    assert "disk disk1" in human and "tap:tap0" in human


def test_create_refuses_bad_input_and_leaves_nothing(dir_host: TestHost) -> None:
    cases = [
        (["bad name!", "--ram", "1G", "--vcpus", "1"], "name: must be a name like web01"),
        (["web01", "--ram", "1Gb", "--vcpus", "1"], "--ram: must be a size like 20G, got '1Gb'"),
        (
            ["web01", "--ram", "1G", "--vcpus", "999"],
            "web01: vcpus: must be from 1 to 255, got 999",
        ),
        (
            ["web01", "--ram", "1G", "--vcpus", "1", "--disk", "1G,bus=usb"],
            "web01: disks[0].bus: must be one of",
        ),
        (
            ["web01", "--ram", "1G", "--vcpus", "1", "--iso", "/etc/hostname"],
            "is neither in the bundle nor in an ISO directory",
        ),
        (
            ["web01", "--ram", "1G", "--vcpus", "1", "--nic", "vnic:vnic0"],
            "vnic needs the illumos KVM QEMU",
        ),
        (["web01", "--ram", "1G", "--vcpus", "1", "--boot", "cd0"], "--boot: no device 'cd0'"),
    ]
    for args, message in cases:
        proc = dir_host.vmbundle("create", *args, check=False)
        assert proc.returncode != 0, args
        assert message in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) >= 1
    assert list(dir_host.root.iterdir()) == []
    dir_host.vmbundle("create", "web01", "--ram", "256M", "--vcpus", "1")
    again = dir_host.vmbundle("create", "web01", "--ram", "256M", "--vcpus", "1", check=False)
    assert again.returncode != 0 and "exists" in again.stderr


def test_set_edits_atomically_and_refuses_bad_values(dir_host: TestHost) -> None:
    dir_host.vmbundle("create", "web01", "--ram", "256M", "--vcpus", "1", "--disk", "1G")
    dir_host.vmbundle(
        "set",
        "web01",
        "ram=1G",
        "disks.disk0.cache=none",
        "vnc.password=s3cret",
        "description=file server",
    )
    doc = json.loads((dir_host.root / "web01" / "vm.json").read_text())
    assert (doc["ram"], doc["disks"][0]["cache"], doc["vnc"]["password"]) == (
        "1G",
        "none",
        "s3cret",
    )
    before = fingerprint(dir_host.root)
    for assignment, message in [
        ("ram=lots", 'web01: ram: must be a size like 20G, got "lots"'),
        ("rma=1G", "web01: rma: unknown key; did you mean 'ram'?"),
        ("vcpus=64", "web01: vcpus: 64 is more than this host's"),
        ("disks.disk0.file=../x.qcow2", "must be a path inside the bundle"),
        ("nonsense", "write KEY=VALUE"),
        ("name=other", "name: is 'other' but the bundle is named 'web01'"),
    ]:
        proc = dir_host.vmbundle("set", "web01", "vcpus=1", assignment, check=False)
        assert proc.returncode != 0
        assert message in proc.stderr, (assignment, proc.stderr)
    assert fingerprint(dir_host.root) == before
    assert not [p for p in (dir_host.root / "web01").iterdir() if p.name.startswith(".")]


def test_disk_add_resize_and_iso(dir_host: TestHost, tmp_path: Path) -> None:
    dir_host.vmbundle("create", "web01", "--ram", "256M", "--vcpus", "1", "--disk", "1G")
    bundle = dir_host.root / "web01"
    bad_bus = dir_host.vmbundle("disk", "add", "web01", "2G", "--bus", "usb", check=False)
    assert bad_bus.returncode == 96 and "web01: disks[1].bus: must be one of" in bad_bus.stderr
    assert not (bundle / "disk1.qcow2").exists()
    dir_host.vmbundle("disk", "add", "web01", "2G", "--bus", "scsi")
    src = tmp_path / "src.raw"
    subprocess.run(
        ["qemu-img", "create", "-f", "raw", str(src), "64M"], check=True, capture_output=True
    )
    dir_host.vmbundle("disk", "add", "web01", "--from", str(src))
    doc = json.loads((bundle / "vm.json").read_text())
    assert [(d["id"], d["size"], d["bus"]) for d in doc["disks"]] == [
        ("disk0", "1G", "virtio"),
        ("disk1", "2G", "scsi"),
        ("disk2", "64M", "virtio"),
    ]
    assert qemu_img_info(bundle / "disk2.qcow2")["format"] == "qcow2"

    out = dir_host.vmbundle("disk", "resize", "web01", "disk0", "3G").stdout
    assert "disk0 is now 3G (offline)" in out
    assert qemu_img_info(bundle / "disk0.qcow2")["virtual-size"] == 3 << 30
    shrink = dir_host.vmbundle("disk", "resize", "web01", "disk0", "2G", check=False)
    assert shrink.returncode == 2 and "add --allow-shrink" in shrink.stderr
    assert qemu_img_info(bundle / "disk0.qcow2")["virtual-size"] == 3 << 30
    dir_host.vmbundle("disk", "resize", "web01", "disk0", "2G", "--allow-shrink")
    assert qemu_img_info(bundle / "disk0.qcow2")["virtual-size"] == 2 << 30

    iso = dir_host.iso_dir / "tools.iso"
    iso.write_bytes(b"\0" * 4096)
    dir_host.vmbundle("iso", "attach", "web01", str(iso))
    assert json.loads((bundle / "vm.json").read_text())["cdroms"] == [
        {"id": "cd0", "iso": str(iso), "bus": "ide", "boot_index": None}
    ]
    outside = tmp_path / "elsewhere.iso"
    outside.write_bytes(b"\0" * 4096)
    refused = dir_host.vmbundle("iso", "attach", "web01", str(outside), check=False)
    assert refused.returncode == 96 and "cdroms[0].iso" in refused.stderr
    dir_host.vmbundle("iso", "detach", "web01")
    assert json.loads((bundle / "vm.json").read_text())["cdroms"][0]["iso"] is None


def test_qemu_argv_is_what_run_executes(dir_host: TestHost) -> None:
    dir_host.vmbundle(
        "create", "web01", "--ram", "256M", "--vcpus", "1", "--disk", "1G", "--nic", "user"
    )
    argv = shlex.split(dir_host.vmbundle("qemu-argv", "web01", "--display", "42").stdout)
    assert argv[0] == "qemu-system-x86_64"
    bundle = dir_host.root / "web01"
    assert f"if=none,id=drive-disk0,file={bundle}/disk0.qcow2,format=qcow2,cache=writeback" in argv
    assert "127.0.0.1:42,id=display" in argv
    assert (
        f"socket,id=qmp-control,path={dir_host.run_dir}/web01/control.qmp,server=on,wait=off"
        in argv
    )


def test_destroy_needs_yes(dir_host: TestHost) -> None:
    dir_host.vmbundle("create", "web01", "--ram", "256M", "--vcpus", "1", "--disk", "1G")
    proc = dir_host.vmbundle("destroy", "web01", check=False)
    assert proc.returncode == 2 and "add --yes" in proc.stderr
    assert (dir_host.root / "web01" / "disk0.qcow2").exists()
    dir_host.vmbundle("destroy", "web01", "--yes")
    assert not (dir_host.root / "web01").exists()


def test_schema_is_json_schema() -> None:
    from support.host import VMBUNDLE

    out = subprocess.run([VMBUNDLE, "schema"], capture_output=True, text=True, check=True).stdout
    schema = json.loads(out)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert "disks" in schema["properties"]
