"""export and import-config through the real `vmbundle` command, with real
qemu-img, a real libvirtd (started by tests/support/libvirt.py when none runs),
virt-xml-validate and virt-install: an exported domain validates, is defined and
boots the test guest under libvirt from the bundle's own disks; a virt-install
domain and a hand-written vmadm payload import into bundles that validate (the
first boots under vmbundle); bad input is one line, and leaves nothing behind.

libvirt's QEMU runs as libvirt-qemu, which cannot enter pytest's 0700 tmp dirs:
the bundles libvirt boots live in a 0755 directory under /var/tmp, removed after;
libvirt's dynamic_ownership hands their files to libvirt-qemu while the domain
runs. The domains are of type qemu (TCG): /dev/kvm is root's only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from support.guest import test_guest_iso
from support.host import VMBUNDLE, TestHost, test_host
from support.libvirt import defined, domain_name, libvirt_daemon, virsh
from support.screen import shows_banner
from support.serial import SerialLog

OUT = Path(os.environ.get("VMBUNDLE_TEST_OUTPUT", "/tmp/vmbundle-test-output")) / "interchange"
needs_libvirt = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("libvirtd", "virsh", "virt-xml-validate", "virt-install")),
    reason="needs libvirt-daemon-system, libvirt-clients and virtinst (scripts/setup-host)",
)


@pytest.fixture
def world_readable() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="vmbundle-ix-", dir="/var/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def host(world_readable: Path) -> Iterator[TestHost]:
    root = world_readable / "root"
    iso = world_readable / "iso"
    for d in (root, iso):
        d.mkdir(mode=0o755)
    shutil.copy(test_guest_iso(), iso / "testguest.iso")
    (iso / "testguest.iso").chmod(0o644)
    with test_host(world_readable, root=root, iso_dir=iso, accelerator="tcg") as h:
        yield h


@pytest.fixture(scope="module")
def libvirtd() -> Iterator[str]:
    with libvirt_daemon() as uri:
        yield uri


def leftovers(host: TestHost) -> list[str]:
    return sorted(p.name for p in host.root.iterdir())


@needs_libvirt
def test_an_exported_domain_validates_and_boots_the_guest_under_libvirt(
    host: TestHost, libvirtd: str, world_readable: Path
) -> None:
    name = domain_name("vmbix")
    host.vmbundle(
        "create", name, "--ram", "256M", "--vcpus", "1", "--disk", "32M",
        "--iso", str(host.iso_dir / "testguest.iso"), "--nic", "user",
    )  # fmt: skip
    (host.root / name).chmod(0o755)
    out = host.vmbundle("export", name, "--format", "libvirt")
    assert out.stderr == ""  # a guest made by create fits libvirt whole
    xml = world_readable / "domain.xml"
    xml.write_text(out.stdout)
    checked = subprocess.run(
        ["virt-xml-validate", str(xml), "domain"], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr + checked.stdout
    with defined(xml, name):
        dumped = virsh("dumpxml", name).stdout
        assert str(host.root / name / "disk0.qcow2") in dumped
        virsh("start", name)
        assert virsh("domstate", name).stdout.strip() == "running"
        shot = world_readable / "screen.ppm"
        deadline = time.monotonic() + 120
        banner = False
        while not banner and time.monotonic() < deadline:
            # The screen of the guest's own banner: booted from the bundle's CD-ROM
            # after the bundle's empty disk, as boot order 1, 2 say.
            if virsh("screenshot", name, str(shot), check=False).returncode == 0:
                banner = shows_banner(shot)
            time.sleep(0 if banner else 1)
        OUT.mkdir(parents=True, exist_ok=True)
        with Image.open(shot) as img:
            img.save(OUT / "libvirt-banner.png")
        assert banner, "the guest's banner never showed under libvirt"
        assert virsh("domstate", name).stdout.strip() == "running"
    assert name not in virsh("list", "--all", "--name").stdout.split()


@needs_libvirt
def test_a_virt_install_domain_imports_validates_and_boots_under_vmbundle(
    host: TestHost, world_readable: Path, libvirtd: str
) -> None:
    image = world_readable / "guest.img"
    shutil.copy(test_guest_iso(), image)  # an isohybrid ISO boots as a disk too
    printed = subprocess.run(
        [
            "virt-install", "--connect", libvirtd, "--print-xml", "--virt-type", "qemu",
            "--name", domain_name("vmbvi"), "--memory", "256", "--vcpus", "1",
            "--osinfo", "detect=on,require=off", "--import", "--network", "none",
            "--disk", f"path={image},format=raw,bus=virtio", "--graphics", "vnc",
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    xml = world_readable / "vi.xml"
    xml.write_text(printed.stdout)
    done = host.vmbundle("import-config", str(xml), "--format", "libvirt", "--name", "vi01")
    assert done.stdout.startswith(f"vi01: created at {host.root / 'vi01'} (directory)")
    # Each thing vmbundle has no field for is one warning line naming it.
    for line in done.stderr.splitlines():
        assert line.startswith("vi01: vmbundle has no field for libvirt ") and line.endswith(
            "left out"
        ), line
    assert any("devices/input (type=tablet bus=usb)" in line for line in done.stderr.splitlines())
    assert host.vmbundle("validate", "vi01").stdout == "vi01: valid\n"
    doc = json.loads((host.root / "vi01" / "vm.json").read_text())
    assert [(d["file"], d["format"], d["boot_index"]) for d in doc["disks"]] == [
        ("disk0.qcow2", "qcow2", 0)
    ]
    run = host.popen("run", "vi01")
    try:
        serial = SerialLog(host.run_dir / "vi01" / "console.sock", timeout=60)
        serial.wait_for(r"^vmbundle-testguest: ready$", timeout=120)
        assert f"vmbundle-testguest: disk vda bytes {image.stat().st_size}" in serial.text
    finally:
        run.terminate()
        run.wait(timeout=30)


def vmadm_payload(image: Path) -> dict[str, object]:
    return {
        "brand": "kvm",
        "alias": "db01",
        "uuid": "3f2a8c1e-5b6d-4e7f-8a9b-0c1d2e3f4a5b",
        "ram": 256,
        "vcpus": 1,
        "disks": [
            {"path": str(image), "model": "virtio", "boot": True},
            {"size": 16, "model": "ide"},
            {"media": "cdrom", "path": "/somewhere/else/testguest.iso", "model": "ide"},
        ],
        "nics": [{"mac": "90:b8:d0:01:02:03", "model": "virtio", "nic_tag": "admin"}],
    }


def test_vmadm_import_export_and_round_trip(host: TestHost, tmp_path: Path) -> None:
    image = tmp_path / "source.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "48M"], check=True)
    payload = tmp_path / "db01.json"
    payload.write_text(json.dumps(vmadm_payload(image)))
    done = host.vmbundle("import-config", str(payload), "--format", "vmadm", "--name", "db01")
    assert done.stderr.splitlines() == [
        'db01: vmbundle has no field for vmadm nics[0].nic_tag="admin"; left out (the NIC uses '
        "the user-mode network; set its backend with vmbundle set)",
        f"db01: cdroms[0] (cd0): /somewhere/else/testguest.iso taken from {host.iso_dir}/testguest.iso",
    ]
    assert host.vmbundle("validate", "db01").stdout == "db01: valid\n"
    doc = json.loads((host.root / "db01" / "vm.json").read_text())
    assert doc["uuid"] == "3f2a8c1e-5b6d-4e7f-8a9b-0c1d2e3f4a5b"
    assert [(d["id"], d["size"], d["bus"], d["boot_index"]) for d in doc["disks"]] == [
        ("disk0", "48M", "virtio", 0),
        ("disk1", "16M", "ide", 1),
    ]
    assert doc["nics"][0]["mac"] == "90:b8:d0:01:02:03"
    assert doc["cdroms"][0]["iso"] == str(host.iso_dir / "testguest.iso")

    exported = host.vmbundle("export", "db01", "--format", "vmadm")
    assert exported.stderr == "db01: vmadm has no field for nics[0].backend=user; left out\n"
    again = tmp_path / "again.json"
    again.write_text(exported.stdout)
    host.vmbundle("import-config", str(again), "--format", "vmadm", "--name", "db02")
    copy = json.loads((host.root / "db02" / "vm.json").read_text())
    assert {**copy, "name": "db01"} == doc  # the whole config, from the bundle's own disks


def test_bad_input_is_one_line_and_leaves_nothing_behind(host: TestHost, tmp_path: Path) -> None:
    image = tmp_path / "source.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "16M"], check=True)
    missing = vmadm_payload(tmp_path / "nope.qcow2")
    second_bad = vmadm_payload(image)
    # Every source is checked before the bundle is made: a text file is no disk.
    (tmp_path / "text.img").write_text("not an image at all\n")
    second_bad["disks"] = [*second_bad["disks"], {"path": str(tmp_path / "text.img")}]  # type: ignore[list-item]
    no_iso = vmadm_payload(image)
    no_iso["disks"] = [{"media": "cdrom", "path": "/elsewhere/missing.iso"}]
    cases = {
        "garbage.xml": ("libvirt", "<domain type='kvm'><memory>", "bad01: not well-formed XML"),
        "missing.json": ("vmadm", json.dumps(missing), f"bad01: disks[0] (disk0): the image {tmp_path}/nope.qcow2 does not exist; correct its path in the document"),
        "dir.json": ("vmadm", json.dumps({**missing, "disks": [{"path": str(tmp_path)}]}), f"bad01: disks[0] (disk0): {tmp_path} is not an image file or a block device; name the image itself"),
        "raw.json": ("vmadm", json.dumps(second_bad), f"bad01: disks[2] (disk2): {tmp_path}/text.img holds 512 bytes, not a disk of whole KiB and at least 1M; is it the right file?"),
        "iso.json": ("vmadm", json.dumps(no_iso), f"bad01: cdroms[0] (cd0): the ISO /elsewhere/missing.iso is in no ISO directory ({host.iso_dir}); copy missing.iso into one"),
        "brand.json": ("vmadm", '{"brand": "lx"}', 'bad01: vmadm brand: "lx" is not a KVM guest'),
    }  # fmt: skip
    for file, (fmt, text, line) in cases.items():
        (tmp_path / file).write_text(text)
        refused = host.vmbundle(
            "import-config", str(tmp_path / file), "--format", fmt, "--name", "bad01", check=False
        )
        assert refused.returncode == 1, (file, refused.stderr)
        assert len(refused.stderr.splitlines()) == 1, (file, refused.stderr)
        assert refused.stderr.startswith(line), (file, refused.stderr)
        assert leftovers(host) == [], file

    # A failure while the bundle is being made takes it away again: a qemu-img that
    # copies the first image and fails on the second.
    second = tmp_path / "second.qcow2"
    shutil.copy(image, second)
    fake = tmp_path / "qemu-img"
    fake.write_text(
        "#!/bin/sh\ncase \"$*\" in *convert*second.qcow2*) echo 'qemu-img: broken' >&2; exit 1;; esac\n"
        f'exec {shutil.which("qemu-img")} "$@"\n'
    )
    fake.chmod(0o755)
    cfg = host.config.read_text().replace("[qemu]\n", f'[qemu]\nimg = "{fake}"\n')
    (tmp_path / "fake.toml").write_text(cfg)
    half = vmadm_payload(image)
    half["disks"] = [{"path": str(image)}, {"path": str(second), "model": "ide"}]
    (tmp_path / "half.json").write_text(json.dumps(half))
    refused = subprocess.run(
        [VMBUNDLE, "--config", str(tmp_path / "fake.toml"), "import-config",
         str(tmp_path / "half.json"), "--format", "vmadm", "--name", "bad02"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.splitlines() == [f"bad02: {fake}: broken"], refused.stderr
    assert leftovers(host) == []

    usage = host.vmbundle("import-config", "x.json", "--format", "ovf", "--name", "a", check=False)
    assert usage.returncode == 2
    bad_name = host.vmbundle(
        "import-config", str(tmp_path / "missing.json"), "--format", "vmadm", "--name", "9x",
        check=False,
    )  # fmt: skip
    assert bad_name.returncode == 2 and len(bad_name.stderr.splitlines()) == 1
