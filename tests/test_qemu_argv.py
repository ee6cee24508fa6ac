"""The QEMU command line: golden argv for both profiles, escaping, the errors a
profile raises, and which QEMU a binary is (version parsing, probe and its cache).

Goldens live in tests/golden/argv-*.txt, one argv element per line. After an
intended change, regenerate them with VMBUNDLE_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import difflib
import itertools
import os
import stat
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from vmbundle.errors import ConfigError, VmbundleError
from vmbundle.guest.rundir import RunPaths
from vmbundle.qemu import profile as qemu_profile
from vmbundle.qemu.argv import ArgvFacts, build_argv
from vmbundle.qemu.opts import (
    Unrepresentable,
    check_bare,
    check_plain,
    escape,
    escape_implied,
    join,
)
from vmbundle.qemu.profile import Profile, parse_version_output
from vmbundle.vm import codec
from vmbundle.vm.model import Cdrom, Disk, MiB, Nic, NicBackend, VmConfig, Vnc

GOLDEN = Path(__file__).parent / "golden"
UPDATE_GOLDEN = os.environ.get("VMBUNDLE_UPDATE_GOLDEN") == "1"

MODERN = Profile("modern", (7, 2, 22))
ILLUMOS = Profile("illumos-kvm", (0, 14, 1))
UUID = "0b6f1d2e-3c4a-4b5c-8d6e-7f8091a2b3c4"
BUNDLE = Path("/tank/vms/web01")
RUN = RunPaths(Path("/var/run/vmbundle/web01"))
ISO = Path("/export/iso/debian-12.iso")
REAL_QEMU = Path("/usr/bin/qemu-system-x86_64")


def facts(profile: Profile = MODERN, **changes: Any) -> ArgvFacts:
    base = ArgvFacts(
        binary="/smartdc/bin/qemu-system-x86_64"
        if profile.name == "illumos-kvm"
        else "qemu-system-x86_64",
        profile=profile,
        accel="kvm",
        bundle_dir=BUNDLE,
        run=RUN,
        display=7,
        vnc_listen="127.0.0.1",
        isos={},
        host_cpus=4,
    )
    return attrs.evolve(base, **changes)


def guest(**changes: Any) -> VmConfig:
    return attrs.evolve(
        VmConfig(schema_version=1, name="web01", uuid=UUID, ram=2048 * MiB, vcpus=2), **changes
    )


def full_modern(machine: str = "pc") -> VmConfig:
    """Two disks on different buses, an ISO and an empty CD-ROM, user and tap NICs,
    a VNC password, boot_index ordering and boot_once."""
    return guest(
        machine=machine,
        disks=(
            Disk(id="disk0", file="disk0.qcow2", size=20 << 30, boot_index=0),
            Disk(id="disk1", file="data.raw", size=1 << 30, format="raw", bus="sata", cache="none"),
        ),
        cdroms=(
            Cdrom(id="cd0", iso=str(ISO), bus="ide"),
            Cdrom(id="cd1", bus="scsi", boot_index=3),
        ),
        nics=(
            Nic(id="nic0", mac="52:54:00:12:34:56", boot_index=5),
            Nic(
                id="nic1",
                model="e1000",
                mac="52:54:00:12:34:57",
                backend=NicBackend("tap", "tap0"),
            ),
        ),
        boot_once="cd0",
        vnc=Vnc(password="secret12"),
    )


def full_illumos() -> VmConfig:
    """The same guest as the fork can run it: no SATA or SCSI, a vnic instead of a tap."""
    return guest(
        disks=(
            Disk(id="disk0", file="disk0.qcow2", size=20 << 30, boot_index=0),
            Disk(id="disk1", file="data.raw", size=1 << 30, format="raw", bus="ide", cache="none"),
        ),
        cdroms=(
            Cdrom(id="cd0", iso=str(ISO), bus="ide"),
            Cdrom(id="cd1", bus="ide", boot_index=3),
        ),
        nics=(
            Nic(
                id="nic0",
                mac="52:54:00:12:34:56",
                backend=NicBackend("vnic", "vnic0"),
                boot_index=5,
            ),
            Nic(id="nic1", model="e1000", mac="52:54:00:12:34:57"),
        ),
        boot_once="cd0",
        vnc=Vnc(password="secret12"),
    )


def minimal() -> VmConfig:
    return guest(ram=512 * MiB, vcpus=1, vnc=Vnc(enabled=False))


FULL_ISOS = {"cd0": ISO, "cd1": None}

GOLDEN_CASES: dict[str, tuple[VmConfig, ArgvFacts]] = {
    "modern-full-pc-kvm": (full_modern("pc"), facts(isos=FULL_ISOS)),
    "modern-full-q35-kvm": (full_modern("q35"), facts(isos=FULL_ISOS)),
    # The minimal pairs differ in one thing each: the accelerator, then the machine.
    "modern-minimal-pc-kvm": (minimal(), facts(display=None)),
    "modern-minimal-pc-tcg": (minimal(), facts(accel="tcg", display=None)),
    "modern-minimal-q35-kvm": (attrs.evolve(minimal(), machine="q35"), facts(display=None)),
    # VNC on but no desktop display: only the web console's private server.
    "modern-webonly-pc-kvm": (
        attrs.evolve(minimal(), vnc=Vnc(password="secret12")),
        facts(display=None),
    ),
    "illumos-full-kvm": (full_illumos(), facts(ILLUMOS, isos=FULL_ISOS)),
    "illumos-minimal-kvm": (minimal(), facts(ILLUMOS, display=None)),
    "illumos-minimal-tcg": (minimal(), facts(ILLUMOS, accel="tcg", display=None)),
}


def check_golden(name: str, argv: list[str]) -> None:
    path = GOLDEN / f"argv-{name}.txt"
    text = "".join(f"{arg}\n" for arg in argv)
    if UPDATE_GOLDEN:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
        return
    if not path.exists():
        pytest.fail(f"{path} is missing; create it with VMBUNDLE_UPDATE_GOLDEN=1 and review it")
    expected = path.read_text()
    if text != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                text.splitlines(keepends=True),
                str(path),
                "built",
            )
        )
        pytest.fail(f"argv differs from {path.name} (VMBUNDLE_UPDATE_GOLDEN=1 to accept):\n{diff}")


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden_argv(name: str) -> None:
    cfg, f = GOLDEN_CASES[name]
    # Every golden guest is a valid vm.json, as the loader sees it.
    assert codec.structure(codec.unstructure(cfg)) == cfg
    check_golden(name, build_argv(cfg, f))


def test_every_golden_file_has_a_case() -> None:
    names = {p.name.removeprefix("argv-").removesuffix(".txt") for p in GOLDEN.glob("argv-*.txt")}
    assert names <= set(GOLDEN_CASES), f"stale golden files: {names - set(GOLDEN_CASES)}"


def after(argv: list[str], option: str) -> list[str]:
    """The arguments of every occurrence of option."""
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == option]


# --- boot order -----------------------------------------------------------


def test_boot_once_goes_first_then_boot_index_lowest_first() -> None:
    argv = build_argv(full_modern(), facts(isos=FULL_ISOS))
    devices = after(argv, "-device")
    assert [d for d in devices if "bootindex" in d] == [
        "virtio-blk-pci,drive=drive-disk0,id=disk0,bootindex=1",
        "ide-cd,bus=ide.0,unit=0,drive=drive-cd0,id=cd0,bootindex=0",
        "scsi-cd,bus=scsi0.0,scsi-id=0,drive=drive-cd1,id=cd1,bootindex=2",
        "virtio-net-pci,netdev=netdev-nic0,mac=52:54:00:12:34:56,id=nic0,bootindex=3",
    ]
    assert not any("bootindex" in d for d in devices if d.startswith(("e1000", "ide-hd")))


def test_without_boot_settings_no_device_gets_a_bootindex() -> None:
    cfg = attrs.evolve(
        full_modern(),
        boot_once=None,
        disks=tuple(attrs.evolve(d, boot_index=None) for d in full_modern().disks),
        cdroms=tuple(attrs.evolve(c, boot_index=None) for c in full_modern().cdroms),
        nics=tuple(attrs.evolve(n, boot_index=None) for n in full_modern().nics),
    )
    assert not any("bootindex" in a for a in build_argv(cfg, facts(isos=FULL_ISOS)))


def test_illumos_boot_letters_and_once() -> None:
    argv = build_argv(full_illumos(), facts(ILLUMOS, isos=FULL_ISOS))
    assert after(argv, "-boot") == ["order=cdn,once=d"]
    boot_on = [d for d in after(argv, "-drive") if d.endswith(",boot=on")]
    assert boot_on == [d for d in after(argv, "-drive") if "id=drive-disk0" in d]


def test_illumos_default_boot_order_is_disk_then_cdrom() -> None:
    assert after(build_argv(minimal(), facts(ILLUMOS)), "-boot") == ["order=cd"]


def test_illumos_boot_on_goes_to_the_disk_that_boots_first() -> None:
    cfg = guest(
        disks=(
            Disk(id="a", file="a.qcow2", size=MiB, boot_index=7),
            Disk(id="b", file="b.qcow2", size=MiB, bus="ide", boot_index=2),
        ),
    )
    drives = after(build_argv(cfg, facts(ILLUMOS)), "-drive")
    assert [d.endswith(",boot=on") for d in drives] == [False, True]
    assert "index=0" in drives[0] and "if=virtio" in drives[0]
    assert "index=0" in drives[1] and "if=ide" in drives[1]


# --- where devices plug in --------------------------------------------------


def _disks(bus: str, n: int, prefix: str = "d") -> tuple[Disk, ...]:
    return tuple(
        Disk(id=f"{prefix}{i}", file=f"{prefix}{i}.raw", size=MiB, bus=bus) for i in range(n)
    )


def test_pc_ide_places_fill_bus_then_unit() -> None:
    cfg = guest(disks=_disks("ide", 3), cdroms=(Cdrom(id="cd0"),))
    places = [
        d.split(",")[1:3] for d in after(build_argv(cfg, facts(isos={"cd0": None})), "-device")
    ]
    assert places[-4:] == [
        ["bus=ide.0", "unit=0"],
        ["bus=ide.0", "unit=1"],
        ["bus=ide.1", "unit=0"],
        ["bus=ide.1", "unit=1"],
    ]


def test_q35_ide_and_sata_share_the_builtin_ahci() -> None:
    cfg = guest(machine="q35", disks=_disks("sata", 2), cdroms=(Cdrom(id="cd0"),))
    argv = build_argv(cfg, facts(isos={"cd0": None}))
    devices = after(argv, "-device")
    assert not any(d.startswith("ich9-ahci") for d in devices)
    assert [d.split(",")[1] for d in devices if d.startswith("ide-")] == [
        "bus=ide.0",
        "bus=ide.1",
        "bus=ide.2",
    ]


def test_pc_sata_gets_one_ahci_controller() -> None:
    argv = build_argv(guest(disks=_disks("sata", 2)), facts())
    devices = after(argv, "-device")
    assert devices.count("ich9-ahci,id=sata0") == 1
    assert devices.index("ich9-ahci,id=sata0") < devices.index(
        "ide-hd,bus=sata0.0,drive=drive-d0,id=d0"
    )


# --- escaping -------------------------------------------------------------


def test_qemu_opts_escaping_rules() -> None:
    assert escape("/a,b,,c") == "/a,,b,,,,c"
    assert escape("/a=b:c") == "/a=b:c"
    assert escape_implied("unix:/r,un/vnc.sock") == "unix:/r,,un/vnc.sock"
    assert check_plain("/a,b") == "/a,b"
    assert join("socket", [("id", "x"), ("server", None), ("path", "/a,b")]) == (
        "socket,id=x,server,path=/a,,b"
    )
    assert join(None, [("n", 3)]) == "n=3"
    for bad in ("a\nb", "a\x00b", "a\tb", "a\x7fb", "a\x85b"):
        with pytest.raises(Unrepresentable):
            escape(bad)
    with pytest.raises(Unrepresentable, match="'='"):
        escape_implied("unix:/a=b/vnc.sock")
    with pytest.raises(Unrepresentable, match="','"):
        check_bare("qemu64,+vmx")
    with pytest.raises(ValueError):
        join(None, [("Bad,Key", "x")])


def test_a_comma_in_the_bundle_path_is_doubled() -> None:
    cfg = guest(
        disks=(Disk(id="disk0", file="disk,0.qcow2", size=MiB),),
        cdroms=(Cdrom(id="cd0", iso="/iso/a,b.iso"),),
    )
    for profile in (MODERN, ILLUMOS):
        argv = build_argv(
            cfg,
            facts(
                profile, bundle_dir=Path("/tank/vms,x/web01"), isos={"cd0": Path("/iso/a,b.iso")}
            ),
        )
        drives = after(argv, "-drive")
        assert any("file=/tank/vms,,x/web01/disk,,0.qcow2," in d for d in drives)
        assert any("file=/iso/a,,b.iso" in d for d in drives)


def test_a_comma_in_the_run_dir_is_doubled_in_options_but_not_in_pidfile() -> None:
    run = RunPaths(Path("/run/a,b/web01"))
    argv = build_argv(guest(), facts(run=run))
    assert after(argv, "-pidfile") == ["/run/a,b/web01/qemu.pid"]
    assert "unix:/run/a,,b/web01/vnc.sock,id=web" in after(argv, "-vnc")
    assert any("path=/run/a,,b/web01/control.qmp," in c for c in after(argv, "-chardev"))


def test_a_newline_in_the_bundle_path_is_refused() -> None:
    cfg = guest(disks=(Disk(id="disk0", file="disk0.qcow2", size=MiB),))
    with pytest.raises(ConfigError) as info:
        build_argv(cfg, facts(bundle_dir=Path("/tank/vms/we\nb01")))
    assert info.value.problems == (
        "web01: disks[0].file: the path '/tank/vms/we\\nb01/disk0.qcow2' holds a newline, "
        "which vmbundle does not pass to QEMU; rename or move it to a path without control "
        "characters",
    )
    assert info.value.exit_code == 96


def test_a_control_character_in_an_iso_path_is_refused() -> None:
    cfg = guest(cdroms=(Cdrom(id="cd0", iso="/iso/x.iso"),))
    with pytest.raises(ConfigError, match=r"web01: cdroms\[0\]\.iso: .*holds a tab"):
        build_argv(cfg, facts(isos={"cd0": Path("/iso/a\tb.iso")}))


def test_a_newline_in_the_run_dir_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"web01: run\.dir: .*holds a newline"):
        build_argv(guest(), facts(run=RunPaths(Path("/run/a\nb/web01"))))


def test_an_equals_sign_in_the_run_dir_is_refused_only_where_it_is_an_implied_value() -> None:
    run = RunPaths(Path("/run/a=b/web01"))
    with pytest.raises(ConfigError, match=r"web01: run\.dir: the path '/run/a=b/web01/vnc.sock'"):
        build_argv(guest(), facts(run=run))
    # No VNC unix socket, no implied value: '=' inside path=... is fine.
    build_argv(guest(vnc=Vnc(enabled=False)), facts(run=run))
    build_argv(guest(), facts(ILLUMOS, run=run))


def test_modern_passes_a_colon_in_an_absolute_path_as_it_is() -> None:
    cfg = guest(disks=(Disk(id="disk0", file="nbd:disk0.qcow2", size=MiB),))
    drives = after(build_argv(cfg, facts()), "-drive")
    assert "file=/tank/vms/web01/nbd:disk0.qcow2" in drives[0]


# --- errors that depend on the profile --------------------------------------


def problems(cfg: VmConfig, f: ArgvFacts) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        build_argv(cfg, f)
    return info.value.problems


def test_modern_refuses_a_vnic() -> None:
    cfg = guest(
        nics=(Nic(id="net0", mac="52:54:00:00:00:01", backend=NicBackend("vnic", "vnic0")),)
    )
    assert problems(cfg, facts(profile=Profile("modern", (7, 2, 0)))) == (
        "web01: nics[0].backend.type: vnic needs the illumos KVM QEMU (0.14.1); "
        "this QEMU is 7.2.0: use tap or bridge",
    )


def test_modern_refuses_a_machine_version_newer_than_itself() -> None:
    assert problems(guest(machine="pc-q35-8.1"), facts()) == (
        "web01: machine: pc-q35-8.1 is newer than this QEMU (7.2.22); "
        "use q35, or a version up to pc-q35-7.2",
    )
    build_argv(guest(machine="pc-i440fx-7.2"), facts())


def test_modern_pc_has_four_ide_places() -> None:
    cfg = guest(disks=_disks("ide", 4), cdroms=(Cdrom(id="cd0"),))
    assert problems(cfg, facts(isos={"cd0": None})) == (
        "web01: cdroms[0].bus: no IDE place left: the pc machine has 4 (2 buses x 2 units), "
        "shared by IDE disks and CD-ROMs; put this one on sata or scsi",
    )


def test_modern_q35_has_six_ahci_ports() -> None:
    cfg = guest(machine="q35", disks=_disks("ide", 4) + _disks("sata", 3, prefix="s"))
    assert problems(cfg, facts()) == (
        "web01: disks[6].bus: no AHCI port left: q35 has 6, shared by ide and sata devices; "
        "put this one on virtio or scsi",
    )


def test_modern_pc_has_six_sata_ports() -> None:
    assert problems(guest(disks=_disks("sata", 7)), facts()) == (
        "web01: disks[6].bus: no SATA port left: the AHCI controller has 6; "
        "put this one on virtio, ide or scsi",
    )


def test_illumos_refuses_what_the_fork_lacks_all_at_once() -> None:
    cfg = guest(
        machine="q35",
        disks=(
            Disk(id="disk0", file="disk0.qcow2", size=MiB, bus="scsi"),
            Disk(id="disk1", file="disk1.qcow2", size=MiB, cache="directsync"),
            Disk(id="disk2", file="a:b.qcow2", size=MiB),
        ),
        cdroms=(Cdrom(id="cd0", bus="sata"),),
        nics=(Nic(id="net0", mac="52:54:00:00:00:01", backend=NicBackend("bridge", "br0")),),
    )
    assert problems(cfg, facts(ILLUMOS, isos={"cd0": None})) == (
        "web01: machine: q35 needs QEMU 7.0 or later; this QEMU is the illumos KVM fork 0.14.1: use pc",
        "web01: disks[0].bus: scsi needs QEMU 7.0 or later; this QEMU is the illumos KVM fork "
        "0.14.1: use virtio or ide",
        "web01: disks[1].cache: directsync needs QEMU 1.0 or later; this QEMU is the illumos KVM "
        "fork 0.14.1: use none or writethrough",
        "web01: disks[2].file: the path '/tank/vms/web01/a:b.qcow2' holds ':', which QEMU 0.14.1 "
        "reads as a protocol prefix; rename or move it to a path without ':'",
        "web01: cdroms[0].bus: sata needs QEMU 7.0 or later; this QEMU is the illumos KVM fork "
        "0.14.1: use ide",
        "web01: nics[0].backend.type: bridge needs QEMU 7.0 or later; this QEMU is the illumos "
        "KVM fork 0.14.1: use vnic",
    )


def test_illumos_refuses_versioned_machine_types() -> None:
    assert problems(guest(machine="pc-i440fx-2.0"), facts(ILLUMOS)) == (
        "web01: machine: pc-i440fx-2.0 needs QEMU 1.4 or later; this QEMU is the illumos KVM "
        "fork 0.14.1: use pc",
    )


def test_illumos_has_four_ide_places() -> None:
    cfg = guest(disks=_disks("ide", 3), cdroms=(Cdrom(id="cd0"), Cdrom(id="cd1")))
    assert problems(cfg, facts(ILLUMOS, isos={"cd0": None, "cd1": None})) == (
        "web01: cdroms[1].bus: no IDE place left: this QEMU has 4 (2 buses x 2 units), "
        "shared by IDE disks and CD-ROMs; put the disks on virtio",
    )


def test_illumos_refuses_a_value_its_option_parser_would_cut() -> None:
    long_dir = Path("/tank/" + "d" * 1020)
    cfg = guest(disks=(Disk(id="disk0", file="disk0.qcow2", size=MiB),))
    (line,) = problems(cfg, facts(ILLUMOS, bundle_dir=long_dir))
    assert line.startswith("web01: disks[0].file: the path '/tank/ddd")
    assert line.endswith("bytes, and QEMU 0.14.1 cuts option values at 1023; use a shorter path")
    build_argv(cfg, facts(bundle_dir=long_dir))


@pytest.mark.parametrize("profile", [MODERN, ILLUMOS], ids=lambda p: p.name)
def test_a_socket_path_over_107_bytes_is_refused(profile: Profile) -> None:
    # /var/run/ + 78 + /web01 + /controller.qmp = 108 bytes; one less is fine.
    build_argv(guest(), facts(profile, run=RunPaths(Path("/var/run/" + "r" * 77 + "/web01"))))
    run = RunPaths(Path("/var/run/" + "r" * 78 + "/web01"))
    lines = problems(guest(), facts(profile, run=run))
    assert lines[0].startswith("web01: name: the socket path '/var/run/rrr")
    assert "shorten the guest's name or set run.dir in vmbundle.toml" in lines[0]
    assert "controller.qmp' is 108 bytes, and QEMU takes at most 107" in lines[0]
    assert len(lines) == 1


def test_caller_bugs_are_value_errors() -> None:
    no_mac = guest(nics=(Nic(id="net0"),))
    with pytest.raises(ValueError, match="no MAC"):
        build_argv(no_mac, facts())
    with pytest.raises(ValueError, match="no MAC"):
        build_argv(no_mac, facts(ILLUMOS))
    with pytest.raises(ValueError, match="no ISO decision"):
        build_argv(guest(cdroms=(Cdrom(id="cd0"),)), facts(isos={}))
    with pytest.raises(ValueError, match="absolute"):
        build_argv(guest(), facts(bundle_dir=Path("vms/web01")))
    with pytest.raises(ValueError, match="absolute"):
        build_argv(guest(cdroms=(Cdrom(id="cd0"),)), facts(isos={"cd0": Path("a.iso")}))


def test_vnc_variants() -> None:
    argv = build_argv(guest(), facts(vnc_listen="::1", display=12))
    assert after(argv, "-vnc") == [
        "unix:/var/run/vmbundle/web01/vnc.sock,id=web",
        "[::1]:12,id=display",
    ]
    assert "-object" not in argv
    argv = build_argv(guest(vnc=Vnc(password="pw")), facts(ILLUMOS, display=12))
    assert after(argv, "-vnc") == ["127.0.0.1:12,password"]
    assert after(build_argv(guest(), facts(ILLUMOS, display=None)), "-vnc") == ["none"]


# --- property: every config value reaches QEMU as it was -------------------


def parse_qemu_opts(arg: str, implied_key: str | None) -> list[tuple[str, str | None]]:
    """QEMU's own reading of an option argument (qemu-option.c opts_do_parse/get_opt_value)."""

    def value_at(p: int) -> tuple[str, int]:
        out = []
        while p < len(arg):
            if arg[p] == ",":
                if arg[p + 1 : p + 2] != ",":
                    break
                p += 1
            out.append(arg[p])
            p += 1
        return "".join(out), p

    pairs: list[tuple[str, str | None]] = []
    p = 0
    while p < len(arg):
        pe, pc = arg.find("=", p), arg.find(",", p)
        if pe == -1 or (pc != -1 and pc < pe):
            if p == 0 and implied_key is not None:
                value, p = value_at(p)
                pairs.append((implied_key, value))
            else:
                end = len(arg) if pc == -1 else pc
                pairs.append((arg[p:end], None))
                p = end
        else:
            key = arg[p:pe]
            value, p = value_at(pe + 1)
            pairs.append((key, value))
        p += 1  # the comma between pairs
    return pairs


IMPLIED = {
    "-machine": "type",
    "-chardev": "backend",
    "-device": "driver",
    "-netdev": "type",
    "-net": "type",
    "-vnc": "vnc",
    "-object": "qom-type",
}
OPTIONS_WITH_PAIRS = {*IMPLIED, "-name", "-smbios", "-mon", "-drive", "-boot"}
# Every key build_argv writes; an unescaped comma in a value would start another.
KEYS = {
    *IMPLIED.values(),
    "guest",
    "debug-threads",
    "manufacturer",
    "product",
    "serial",
    "uuid",
    "id",
    "chassis",
    "path",
    "server",
    "wait",
    "nowait",
    "chardev",
    "mode",
    "drive",
    "bus",
    "unit",
    "scsi-id",
    "bootindex",
    "if",
    "file",
    "format",
    "cache",
    "media",
    "readonly",
    "index",
    "boot",
    "netdev",
    "mac",
    "ifname",
    "script",
    "downscript",
    "br",
    "password-secret",
    "macaddr",
    "vlan",
    "name",
    "model",
    "tx",
    "x-txtimer",
    "x-txburst",
    "order",
    "once",
    "password",
}

SEGMENT = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/"),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in (".", ".."))
COMMA_SEGMENT = st.one_of(
    SEGMENT, st.sampled_from(["a,b", ",", ",,", "x,file=/etc/passwd", "k=v,"])
)


@st.composite
def abs_paths(draw: st.DrawFn, max_parts: int = 3) -> Path:
    parts = draw(st.lists(COMMA_SEGMENT, min_size=1, max_size=max_parts))
    return Path("/" + "/".join(parts))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[VmConfig, ArgvFacts]:
    illumos = draw(st.booleans())
    profile = ILLUMOS if illumos else MODERN
    n_disks, n_cds, n_nics = (
        draw(st.integers(0, 4)),
        draw(st.integers(0, 2)),
        draw(st.integers(0, 3)),
    )
    ids = draw(
        st.lists(
            st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True),
            min_size=n_disks + n_cds + n_nics,
            max_size=n_disks + n_cds + n_nics,
            unique=True,
        )
    )
    boot = draw(
        st.lists(
            st.one_of(st.none(), st.integers(0, 99)),
            min_size=len(ids),
            max_size=len(ids),
        ).filter(
            lambda b: len([x for x in b if x is not None]) == len({x for x in b if x is not None})
        )
    )
    files = draw(st.lists(SEGMENT, min_size=n_disks, max_size=n_disks, unique=True))
    disk_buses = ("virtio", "ide") if illumos else ("virtio", "scsi", "sata", "ide")
    caches = ("writeback", "none", "writethrough", "unsafe") + (() if illumos else ("directsync",))
    disks = tuple(
        Disk(
            id=ids[i],
            file=files[i],
            size=MiB,
            format=draw(st.sampled_from(("qcow2", "raw"))),
            bus=draw(st.sampled_from(disk_buses)),
            cache=draw(st.sampled_from(caches)),
            boot_index=boot[i],
        )
        for i in range(n_disks)
    )
    isos: dict[str, Path | None] = {}
    cdroms = []
    for k in range(n_cds):
        i = n_disks + k
        iso = draw(st.one_of(st.none(), abs_paths()))
        isos[ids[i]] = iso
        bus = "ide" if illumos else draw(st.sampled_from(("ide", "sata", "scsi")))
        cdroms.append(
            Cdrom(id=ids[i], iso=None if iso is None else str(iso), bus=bus, boot_index=boot[i])
        )
    kinds = ("user", "tap", "vnic") if illumos else ("user", "tap", "bridge")
    nics = []
    for k in range(n_nics):
        i = n_disks + n_cds + k
        kind = draw(st.sampled_from(kinds))
        name = (
            None
            if kind == "user"
            else draw(st.from_regex(r"[a-z][a-z0-9_]{0,8}[0-9]", fullmatch=True))
        )
        nics.append(
            Nic(
                id=ids[i],
                model=draw(st.sampled_from(("virtio", "e1000"))),
                mac=f"52:54:00:00:00:{k:02x}",
                backend=NicBackend(kind, name),
                boot_index=boot[i],
            )
        )
    machine = (
        "pc" if illumos else draw(st.sampled_from(("pc", "q35", "pc-i440fx-7.2", "pc-q35-6.0")))
    )
    cfg = guest(
        name=draw(st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,20}", fullmatch=True)),
        machine=machine,
        cpu=draw(st.sampled_from(("qemu64", "kvm64", "Haswell-noTSX"))),
        disks=disks,
        cdroms=tuple(cdroms),
        nics=tuple(nics),
        boot_once=draw(st.one_of(st.none(), st.sampled_from(ids))) if ids else None,
        vnc=Vnc(
            enabled=draw(st.booleans()),
            password=draw(st.one_of(st.none(), st.from_regex(r"[!-~]{1,8}", fullmatch=True))),
        ),
    )
    # The generator makes only what the real loader accepts.
    assert codec.structure(codec.unstructure(cfg)) == cfg
    bundle = draw(abs_paths())
    run_dir = draw(
        abs_paths(max_parts=2).filter(lambda p: "=" not in str(p) and len(str(p).encode()) < 60)
    )
    if illumos:
        # The fork reads any ':' in an image path as a protocol (tested on its own above).
        images = [bundle / d.file for d in disks] + [p for p in isos.values() if p]
        assume(not any(":" in str(p) for p in images))
    # Stay within the PIIX IDE places (q35's 6 AHCI ports always suffice here).
    if not machine.startswith(("q35", "pc-q35")):
        assume(sum(1 for d in [*disks, *cdroms] if d.bus == "ide") <= 4)
    f = facts(
        profile,
        accel=draw(st.sampled_from(("kvm", "tcg"))),
        bundle_dir=bundle,
        run=RunPaths.for_guest(run_dir, cfg.name),
        display=draw(st.one_of(st.none(), st.integers(0, 99))),
        isos=isos,
        host_cpus=draw(st.integers(1, 64)),
    )
    return cfg, f


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_config_values_reach_qemu_unchanged(scenario: tuple[VmConfig, ArgvFacts]) -> None:
    cfg, f = scenario
    argv = build_argv(cfg, f)
    parsed: dict[str, list[dict[str, str | None]]] = {}
    for option, arg in itertools.pairwise(argv):
        if option not in OPTIONS_WITH_PAIRS:
            continue
        if f.profile.name == "illumos-kvm" and option in ("-vnc", "-name"):
            continue  # the fork parses these two itself; they carry no bundle values

        pairs = parse_qemu_opts(arg, IMPLIED.get(option))
        keys = [k for k, _ in pairs]
        # An unescaped comma inside a value would cut it short and start a key of its own.
        assert set(keys) <= KEYS, arg
        assert len(keys) == len(set(keys)), arg
        parsed.setdefault(option, []).append(dict(pairs))
    drives = {d["id"]: d for d in parsed.get("-drive", [])}
    for disk in cfg.disks:
        assert drives[f"drive-{disk.id}"]["file"] == str(f.bundle_dir / disk.file)
    for cd in cfg.cdroms:
        iso = f.isos[cd.id]
        assert drives[f"drive-{cd.id}"].get("file") == (None if iso is None else str(iso))
    chardev_paths = {c["id"]: c["path"] for c in parsed["-chardev"]}
    assert chardev_paths == {
        "qmp-controller": str(f.run.controller_qmp),
        "qmp-control": str(f.run.control_qmp),
        "serial0": str(f.run.serial),
    }
    assert argv[argv.index("-pidfile") + 1] == str(f.run.pidfile)
    if f.profile.name == "modern" and cfg.vnc.enabled:
        assert parsed["-vnc"][0]["vnc"] == f"unix:{f.run.vnc_socket}"
        if f.display is not None and cfg.vnc.password is not None:
            assert parsed["-object"] == [
                {
                    "qom-type": "secret",
                    "id": "vncpw",
                    "file": str(f.run.vnc_password),
                    "format": "raw",
                }
            ]
    macs = [
        d.get("mac") or d.get("macaddr") for d in parsed.get("-device", []) + parsed.get("-net", [])
    ]
    assert sorted(m for m in macs if m) == sorted(n.mac for n in cfg.nics if n.mac)


# --- which QEMU -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n"
            "Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n",
            Profile("modern", (7, 2, 22)),
        ),
        (
            "QEMU emulator version 8.2.2 (Debian 1:8.2.2+ds-0ubuntu1.4)\n",
            Profile("modern", (8, 2, 2)),
        ),
        ("QEMU emulator version 10.0.0\n", Profile("modern", (10, 0, 0))),
        ("QEMU emulator version 7.0\n", Profile("modern", (7, 0, 0))),
        (
            "QEMU PC emulator version 0.14.1 (qemu-kvm-devel), Copyright (c) 2003-2008 Fabrice Bellard\n",
            Profile("illumos-kvm", (0, 14, 1)),
        ),
        (
            "QEMU emulator version 0.14.1, Copyright (c) 2003-2008 Fabrice Bellard\n",
            Profile("illumos-kvm", (0, 14, 1)),
        ),
    ],
)
def test_parse_version_output(text: str, expected: Profile) -> None:
    assert parse_version_output(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "QEMU emulator version 6.2.0 (Debian 1:6.2+dfsg-2ubuntu6)\n",
        "QEMU emulator version 2.11.1\n",
        "QEMU PC emulator version 1.0, Copyright (c) 2003-2008 Fabrice Bellard\n",
        "QEMU PC emulator version 0.15.1, Copyright (c) 2003-2008 Fabrice Bellard\n",
        "QEMU PC emulator version 0.12.5 (qemu-kvm-0.12.5)\n",
    ],
)
def test_parse_version_output_refuses_versions_between(text: str) -> None:
    with pytest.raises(VmbundleError) as info:
        parse_version_output(text, "/opt/qemu/bin/qemu-system-x86_64")
    message = str(info.value)
    assert message.startswith("/opt/qemu/bin/qemu-system-x86_64: QEMU ")
    assert (
        "is not supported; vmbundle runs QEMU 7.0 or later, or the illumos KVM fork (QEMU 0.14.1)"
        in message
    )


@pytest.mark.parametrize("text", ["", "Usage: something else\n", "qemu-img version 7.2.22\n"])
def test_parse_version_output_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(
        VmbundleError, match=r"^qemu-x: cannot tell which QEMU this is .*7\.0 or later"
    ):
        parse_version_output(text, "qemu-x")


def counting_wrapper(tmp_path: Path, body: str) -> tuple[Path, Path]:
    """An executable that counts its runs in a file, then does body."""
    count = tmp_path / "runs"
    script = tmp_path / "qemu-wrapper"
    script.write_text(f'#!/bin/sh\necho run >> "{count}"\n{body}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, count


def runs(count: Path) -> int:
    return len(count.read_text().splitlines()) if count.exists() else 0


needs_qemu = pytest.mark.skipif(not REAL_QEMU.exists(), reason=f"{REAL_QEMU} is not installed")


@needs_qemu
def test_probe_the_real_qemu(tmp_path: Path) -> None:
    profile = qemu_profile.probe(str(REAL_QEMU), tmp_path / "cache")
    assert profile.name == "modern" and profile.version >= (7, 0, 0)
    assert (tmp_path / "cache" / qemu_profile.CACHE_FILE).is_file()
    assert qemu_profile.probe("qemu-system-x86_64", tmp_path / "cache") == profile


@needs_qemu
def test_probe_runs_the_binary_only_when_the_cache_misses(tmp_path: Path) -> None:
    script, count = counting_wrapper(tmp_path, f'exec {REAL_QEMU} "$@"')
    first = qemu_profile.probe(str(script), tmp_path)
    assert runs(count) == 1
    assert qemu_profile.probe(str(script), tmp_path) == first
    assert runs(count) == 1
    # A changed binary (another size, another mtime) is asked again.
    script.write_text(script.read_text() + "# upgraded\n")
    assert qemu_profile.probe(str(script), tmp_path) == first
    assert runs(count) == 2
    # A damaged cache is only a miss.
    (tmp_path / qemu_profile.CACHE_FILE).write_text("{not json")
    assert qemu_profile.probe(str(script), tmp_path) == first
    assert runs(count) == 3
    assert qemu_profile.probe(str(script), tmp_path) == first
    assert runs(count) == 3


def test_probe_does_not_remember_a_refusal(tmp_path: Path) -> None:
    script, count = counting_wrapper(tmp_path, "echo 'QEMU emulator version 5.2.0'")
    for expected_runs in (1, 2):
        with pytest.raises(VmbundleError, match=r"QEMU 5\.2\.0 is not supported"):
            qemu_profile.probe(str(script), tmp_path)
        assert runs(count) == expected_runs


def test_probe_of_a_fork_binary_is_cached_too(tmp_path: Path) -> None:
    script, count = counting_wrapper(
        tmp_path,
        "echo 'QEMU PC emulator version 0.14.1 (qemu-kvm-devel), Copyright (c) 2003-2008 Fabrice Bellard'",
    )
    assert qemu_profile.probe(str(script), tmp_path / "new") == ILLUMOS
    assert qemu_profile.probe(str(script), tmp_path / "new") == ILLUMOS
    assert runs(count) == 1


def test_probe_names_a_missing_binary(tmp_path: Path) -> None:
    with pytest.raises(VmbundleError, match=r"^qemu-system-nosuch: no such QEMU"):
        qemu_profile.probe("qemu-system-nosuch", tmp_path)
