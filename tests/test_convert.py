"""The converters alone (vmbundle.convert): vm.json -> libvirt XML / vmadm JSON ->
vm.json keeps every field the format can express; what it cannot is one warning
line per field; bad documents are refused with one line."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest

from vmbundle.convert import UNKNOWN_SIZE, ConversionError, Imported, libvirt, vmadm
from vmbundle.vm.model import Cdrom, Disk, MiB, Nic, NicBackend, VmConfig, Vnc

BUNDLE = Path("/tank/vms/web01")


def guest(**changes: object) -> VmConfig:
    cfg = VmConfig(
        schema_version=1,
        name="web01",
        uuid="6f1c2c3e-1a2b-4c5d-8e9f-0a1b2c3d4e5f",
        ram=2048 * MiB,
        vcpus=2,
        disks=(
            Disk(id="disk0", file="disk0.qcow2", size=UNKNOWN_SIZE, boot_index=0),
            Disk(id="disk1", file="disk1.qcow2", size=UNKNOWN_SIZE, bus="scsi", boot_index=1),
        ),
        cdroms=(Cdrom(id="cd0", iso="/tank/iso/install.iso", boot_index=2),),
        nics=(
            Nic(id="net0", mac="52:54:00:12:34:56"),
            Nic(id="net1", model="e1000", mac="52:54:00:ab:cd:ef"),
        ),
    )
    return attrs.evolve(cfg, **changes)


def imported_back(parsed: Imported, original: VmConfig) -> VmConfig:
    """The parsed guest as it becomes a bundle: each disk as large as its source."""
    sizes = {d.id: d.size for d in original.disks}
    return attrs.evolve(
        parsed.config, disks=tuple(attrs.evolve(d, size=sizes[d.id]) for d in parsed.config.disks)
    )


def libvirt_round_trip(cfg: VmConfig) -> tuple[VmConfig, tuple[str, ...], tuple[str, ...]]:
    out = libvirt.export(cfg, BUNDLE, "kvm")
    parsed = libvirt.parse(out.document.encode(), cfg.name)
    return imported_back(parsed, cfg), out.warnings, parsed.warnings


def test_libvirt_round_trip_keeps_every_field_libvirt_has() -> None:
    cfg = guest(
        description="the web server",
        machine="q35",
        cpu="host",
        on_poweroff="restart",
        on_reboot="disable",
        on_crash="preserve",
        vnc=Vnc(password="secret"),
        nics=(
            Nic(id="net0", mac="52:54:00:12:34:56", boot_index=3),
            Nic(id="lan", mac="52:54:00:00:00:02", backend=NicBackend("bridge", "br0")),
            Nic(id="wan", mac="52:54:00:00:00:03", backend=NicBackend("tap", "tap7")),
        ),
        cdroms=(Cdrom(id="cd0", iso="/tank/iso/install.iso", bus="sata"), Cdrom(id="cd1")),
    )
    back, export_warnings, import_warnings = libvirt_round_trip(cfg)
    assert back == cfg
    assert export_warnings == ()
    assert import_warnings == ()


def test_libvirt_export_names_the_bundles_files_and_validates_its_shape() -> None:
    doc = libvirt.export(guest(), BUNDLE, "qemu").document
    assert '<domain type="qemu">' in doc
    assert '<source file="/tank/vms/web01/disk0.qcow2" />' in doc
    assert '<boot order="1" />' in doc  # libvirt counts from 1, boot_index from 0
    assert '<alias name="ua-disk1" />' in doc
    assert 'model="virtio-scsi"' in doc


def test_libvirt_export_warns_once_per_field_it_cannot_hold() -> None:
    cfg = guest(
        boot_once="cd0",
        stop_timeout=30,
        autostart=True,
        nics=(Nic(id="net0", mac="52:54:00:12:34:56", backend=NicBackend("vnic", "vnic0")),),
    )
    warnings = libvirt.export(cfg, BUNDLE, "kvm").warnings
    assert warnings == (
        "web01: libvirt has no field for nics[0].backend=vnic:vnic0; left out",
        "web01: libvirt has no field for boot_once=cd0; left out",
        "web01: libvirt has no field for stop_timeout=30; left out",
        "web01: libvirt has no field for autostart=true; left out",
    )


def test_vmadm_round_trip_keeps_every_field_vmadm_has() -> None:
    cfg = guest(
        cpu="host",
        autostart=True,
        vnc=Vnc(password="pw"),
        boot_once="cd0",
        disks=(
            Disk(id="disk0", file="disk0.qcow2", size=UNKNOWN_SIZE, bus="ide", boot_index=0),
            Disk(id="disk1", file="disk1.qcow2", size=UNKNOWN_SIZE, bus="scsi", boot_index=1),
        ),
    )
    out = vmadm.export(cfg, BUNDLE)
    doc = json.loads(out.document)
    assert doc["brand"] == "kvm" and doc["ram"] == 2048 and doc["boot"] == "order=cd,once=d"
    assert doc["disks"][0] == {
        "media": "disk",
        "path": "/tank/vms/web01/disk0.qcow2",
        "size": 1,
        "model": "ide",
        "boot": True,
    }
    parsed = vmadm.parse(out.document.encode(), "web01")
    assert imported_back(parsed, cfg) == cfg
    # Only the network backends are lost: vmadm's NICs hang off nic tags.
    assert out.warnings == (
        "web01: vmadm has no field for nics[0].backend=user; left out",
        "web01: vmadm has no field for nics[1].backend=user; left out",
    )
    assert parsed.warnings == ()


def test_vmadm_export_warns_for_what_vmadm_cannot_hold() -> None:
    cfg = guest(
        machine="q35",
        cpu="Skylake-Server",
        description="x",
        on_crash="preserve",
        disks=(Disk(id="root", file="root.qcow2", size=UNKNOWN_SIZE, bus="sata", cache="none"),),
        cdroms=(Cdrom(id="cd0", boot_index=0),),
        nics=(),
    )
    warnings = vmadm.export(cfg, BUNDLE).warnings
    assert warnings == (
        "web01: vmadm has no field for cpu=Skylake-Server; left out",
        "web01: vmadm has no field for disks[0].bus=sata; left out",
        "web01: vmadm has no field for disks[0].cache=none; left out",
        "web01: vmadm has no field for cdroms[0]=an empty drive; left out",
        "web01: vmadm has no field for disks[0].id=root; left out",
        'web01: vmadm has no field for description="x"; left out',
        'web01: vmadm has no field for machine="q35"; left out',
        'web01: vmadm has no field for on_crash="preserve"; left out',
    )


def test_vmadm_import_reads_a_vmadm_get_payload_and_warns_for_the_rest() -> None:
    payload = {
        "brand": "kvm",
        "uuid": "0C3C9F3E-0000-4000-8000-000000000001",
        "alias": "db",
        "ram": 1024,
        "vcpus": 2,
        "state": "running",
        "zonepath": "/zones/0c3c9f3e",
        "quota": 20,
        "customer_metadata": {},
        "disks": [
            {"path": "/dev/zvol/rdsk/zones/db-disk0", "model": "virtio", "boot": True,
             "zpool": "zones", "size": 10240},
            {"size": 2048, "model": "scsi"},
        ],
        "nics": [{"mac": "90:B8:D0:11:22:33", "model": "e1000", "nic_tag": "external",
                  "ip": "10.0.0.5", "interface": "net0", "primary": True}],
    }  # fmt: skip
    parsed = vmadm.parse(json.dumps(payload).encode(), "db")
    cfg = parsed.config
    assert cfg.uuid == "0c3c9f3e-0000-4000-8000-000000000001"
    assert (cfg.ram, cfg.vcpus) == (1024 * MiB, 2)
    assert [d.bus for d in cfg.disks] == ["virtio", "scsi"]
    assert cfg.disks[1].size == 2048 * MiB  # no path: a new empty disk of that size
    assert [(s.disk_id, s.path) for s in parsed.sources] == [
        ("disk0", "/dev/zvol/rdsk/zones/db-disk0"),
        ("disk1", None),
    ]
    assert cfg.nics[0].mac == "90:b8:d0:11:22:33"
    assert cfg.nics[0].model == "e1000"
    assert parsed.warnings == (
        'db: vmbundle has no field for vmadm disks[0].zpool="zones"; left out',
        'db: vmbundle has no field for vmadm nics[0].nic_tag="external"; left out (the NIC '
        "uses the user-mode network; set its backend with vmbundle set)",
        'db: vmbundle has no field for vmadm nics[0].ip="10.0.0.5"; left out',
        "db: vmbundle has no field for vmadm nics[0].primary=true; left out",
        "db: vmbundle has no field for vmadm quota=20; left out",
    )


VIRT_INSTALL_LIKE = b"""<domain type="qemu">
  <name>other</name>
  <memory>262144</memory>
  <vcpu>1</vcpu>
  <os><type arch="x86_64" machine="pc-i440fx-7.2">hvm</type><boot dev="cdrom"/><boot dev="hd"/></os>
  <features><acpi/><apic/></features>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type="file" device="disk">
      <driver name="qemu" type="raw" discard="unmap"/>
      <source file="/var/lib/libvirt/images/a.img"/>
      <target dev="vda" bus="virtio"/>
    </disk>
    <disk type="file" device="cdrom"><source file="/srv/iso/x.iso"/><target dev="hdc" bus="ide"/></disk>
    <interface type="network"><source network="default"/><mac address="52:54:00:AA:BB:CC"/></interface>
    <memballoon model="virtio"/>
    <console type="pty"/>
  </devices>
</domain>"""


def test_libvirt_import_of_class_boot_order_and_leftovers() -> None:
    parsed = libvirt.parse(
        VIRT_INSTALL_LIKE, "other", new_uuid=lambda: "0" * 8 + "-0000-4000-8000-" + "0" * 12
    )
    cfg = parsed.config
    assert cfg.machine == "pc-i440fx-7.2" and cfg.ram == 256 * MiB and cfg.cpu == "qemu64"
    assert [(c.id, c.iso, c.boot_index) for c in cfg.cdroms] == [("cd0", "/srv/iso/x.iso", 0)]
    assert [(d.id, d.boot_index) for d in cfg.disks] == [("disk0", 1)]
    assert parsed.sources[0].format == "raw"
    assert cfg.nics[0].mac == "52:54:00:aa:bb:cc"
    assert parsed.warnings == (
        "other: vmbundle has no field for libvirt devices/interface (type=network "
        "network=default); left out, the NIC uses the user-mode network (set its backend "
        "with vmbundle set)",
        "other: vmbundle has no field for libvirt devices/disk[1]/driver/@discard=unmap; left out",
        "other: vmbundle has no field for libvirt devices/memballoon (model=virtio); left out",
    )


@pytest.mark.parametrize(
    ("document", "line"),
    [
        (b"<domain", "web01: not well-formed XML (unclosed token: line 1, column 0); give a domain as virsh dumpxml writes it"),
        (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa">]><domain type="kvm"/>',
         "web01: libvirt XML refused: a DOCTYPE is not allowed (it could declare entities); remove the DOCTYPE"),
        (b'<domain type="xen"><memory>1</memory></domain>',
         "web01: libvirt @type: 'xen' is not a QEMU guest; only type kvm or qemu can be imported"),
        (b'<domain type="kvm"><memory unit="MiB">256</memory><devices><disk device="disk">'
         b'<source file="/a"/><target dev="sda" bus="usb"/></disk></devices></domain>',
         "web01: libvirt devices/disk/target/@bus: 'usb' is not one vmbundle has; change it to one of virtio, scsi, sata, ide"),
        (b'<domain type="kvm"><memory unit="MiB">256</memory><devices><interface type="user">'
         b'<model type="rtl8139"/></interface></devices></domain>',
         "web01: libvirt devices/interface/model/@type: 'rtl8139' is not one vmbundle has; change it to one of virtio, e1000"),
        (b'<domain type="kvm"><memory unit="MiB">256</memory><on_crash>coredump-destroy</on_crash></domain>',
         "web01: libvirt on_crash: 'coredump-destroy' is not an action vmbundle has; change it to one of restart, destroy, preserve"),
    ],
)  # fmt: skip
def test_bad_libvirt_documents_are_refused_with_one_line(document: bytes, line: str) -> None:
    with pytest.raises(ConversionError) as refused:
        libvirt.parse(document, "web01")
    assert str(refused.value) == line


@pytest.mark.parametrize(
    ("document", "line"),
    [
        (b"{", "web01: not valid vmadm JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1)); give a payload as vmadm get prints it"),
        (b'{"brand": "joyent"}', 'web01: vmadm brand: "joyent" is not a KVM guest; only brand kvm can be imported'),
        (b'{"brand": "kvm", "ram": "lots"}', 'web01: vmadm ram: "lots" is not a whole number of at least 32; correct it'),
        (b'{"brand": "kvm", "disks": [{"model": "sata", "path": "/a"}]}',
         'web01: vmadm disks[0].model: "sata" is not one vmbundle has; change it to one of virtio, ide, scsi'),
        (b'{"brand": "kvm", "disks": [{"image_uuid": "x"}]}',
         "web01: vmadm disks[0]: its image_uuid names a SmartOS image vmbundle cannot fetch; give the image file as path"),
        (b'{"brand": "kvm", "boot": "order=z"}',
         "web01: vmadm boot: 'order=z' is not order= or once= of c, d and n; write it like order=cd,once=d"),
    ],
)  # fmt: skip
def test_bad_vmadm_documents_are_refused_with_one_line(document: bytes, line: str) -> None:
    with pytest.raises(ConversionError) as refused:
        vmadm.parse(document, "web01")
    assert str(refused.value) == line
