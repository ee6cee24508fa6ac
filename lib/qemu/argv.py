"""The QEMU command line for one boot of a guest, in the dialect of its QEMU.

build_argv is pure: everything it needs besides vm.json (the binary and its
profile, the accelerator, the bundle and run paths, the VNC display, the
resolved ISOs) comes in ArgvFacts, so one config and one set of facts always
give the same argv, and golden tests pin every option of both dialects.

Every value from the bundle or the run directory goes through vmbundle.qemu.opts
(commas doubled, control characters refused), and image paths are absolute, so
QEMU never takes the start of a path for a protocol ("nbd:", "json:"). What the
profile cannot run raises ConfigError, one line per problem, each naming the
field and the fix.

modern (QEMU 7.0 and later)
  Two QMP monitors, -nodefaults, each disk as `-drive if=none` + `-device`, the
  boot order as bootindex. Where disks and CD-ROMs plug in:
  - virtio: a virtio-blk-pci per disk;
  - scsi: one virtio-scsi-pci (scsi0); scsi-hd/scsi-cd get scsi-id 0, 1, ... in
    config order (disks, then CD-ROMs);
  - ide on pc: the PIIX IDE controller, 2 buses x 2 units, taken in config
    order by IDE disks, then IDE CD-ROMs;
  - sata on pc: one ich9-ahci (sata0), ports sata0.0 to sata0.5;
  - ide and sata on q35: q35 has no legacy IDE, and its built-in ICH9 AHCI
    (ports ide.0 to ide.5) is what a second SATA controller would be, so both
    buses share those 6 ports rather than adding another AHCI.
  VNC: a private server on a UNIX socket for the web console (id=web, no
  password: the console authenticates its own users) and, with a display, the
  desktop server on TCP 5900+N (id=display) with the guest's password, which
  QEMU reads from the run directory. A pvpanic device, so that a guest kernel's
  panic is an event (GUEST_PANICKED) and a run state, not a guest that only hangs.

illumos-kvm (the illumos KVM fork, QEMU 0.14.1, driven as SmartOS VM.js does)
  `-drive if=virtio|ide,index=N` (the fork makes the devices), `-boot order=`,
  NICs on `-net` vlans, `server,nowait`, one VNC server (the TCP display; its
  password is set over QMP after the start, `-vnc none` without a display),
  -enable-kvm or -no-kvm, and none of -accel, -object, -machine.

Boot order: devices with a boot_index boot lowest first, and boot_once puts its
device before all of them. In modern QEMU that is each device's bootindex,
fixed for the life of the QEMU process: the caller clears boot_once from
vm.json once the guest has started, but a reboot inside the guest during that
same run is the same QEMU and still boots that device first; the next start (a
new QEMU) follows boot_index alone. The 0.14.1 fork gets `-boot once=`,
QEMU's own one-shot: there a reboot inside the guest goes back to `order=`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import attrs

from vmbundle.errors import ConfigError
from vmbundle.guest import display_auth
from vmbundle.guest.display_auth import DisplayAuth, DisplayPolicy
from vmbundle.guest.rundir import MAX_SOCKET_PATH, RunPaths
from vmbundle.qemu import capacity
from vmbundle.qemu.capacity import Capacity
from vmbundle.qemu.opts import (
    OLD_QEMU_MAX_VALUE_BYTES,
    Pair,
    Unrepresentable,
    check_bare,
    check_plain,
    escape_implied,
    join,
)
from vmbundle.qemu.profile import Profile
from vmbundle.vm.model import Cdrom, Disk, MiB, Nic, VmConfig

Accel = Literal["kvm", "tcg"]

# Where a value that failed a check still has to go while the rest of the
# command line is built, so that every problem is reported at once.
_REFUSED = "refused"

_VERSIONED_MACHINE_RE = re.compile(r"pc-(i440fx|q35)-(\d+)\.(\d+)")

# QEMU's own numbers for the controllers build_argv uses.
PIIX_IDE_PLACES = 4  # 2 buses x 2 units
AHCI_PORTS = 6

# SmartOS VM.js passes these to every virtio NIC: the transmit timer its vnic
# path was tuned with (QEMU 0.14's default is a bottom half).
_ILLUMOS_VIRTIO_NET_TUNING: tuple[Pair, ...] = (
    ("tx", "timer"),
    ("x-txtimer", 200000),
    ("x-txburst", 128),
)


@attrs.frozen
class ArgvFacts:
    """What build_argv needs from outside vm.json, all found by the caller beforehand."""

    binary: str  # argv[0]
    profile: Profile
    accel: Accel
    bundle_dir: Path  # absolute
    run: RunPaths  # its dir absolute
    display: int | None  # the desktop VNC display N (TCP 5900+N); None for none
    vnc_listen: str  # an IP address
    isos: Mapping[str, Path | None]  # every CD-ROM id -> its absolute ISO; None: empty
    host_cpus: int  # bounds the default max_vcpus (vmbundle.qemu.capacity)
    # [display]'s rules off loopback (vmbundle.guest.display_auth); None: vnc_listen's alone.
    display_policy: DisplayPolicy | None = None
    tls_dir: Path | None = None  # QEMU's x509 directory, when the policy asks for TLS

    def display_auth(self, cfg: VmConfig) -> DisplayAuth:
        return display_auth.decide(cfg, self.display_policy or DisplayPolicy(self.vnc_listen))


class _Argv:
    """The command line under construction, and the problems found on the way."""

    def __init__(self, cfg: VmConfig, profile: Profile) -> None:
        self.guest = cfg.name
        self.profile = profile
        self.args: list[str] = []
        self.problems: list[str] = []

    @property
    def illumos_fork(self) -> bool:
        return self.profile.name == "illumos-kvm"

    def add(self, *args: str) -> None:
        self.args.extend(args)

    def opt(self, option: str, implied: str | None, *pairs: Pair) -> None:
        self.args += [option, join(implied, pairs)]

    def problem(self, where: str, what: str) -> None:
        self.problems.append(f"{self.guest}: {where}: {what}")

    def needs(self, where: str, feature: str, requirement: str, fix: str) -> None:
        """A problem with a feature this profile lacks, in one shape for all of them."""
        self.problem(
            where, f"{feature} needs {requirement}; this QEMU is {self.profile.describe()}: {fix}"
        )

    def image_path(self, path: Path, where: str) -> str:
        """An image's path, checked that this QEMU can be given it."""
        if not path.is_absolute():
            raise ValueError(f"image paths must be absolute, got {str(path)!r}")
        text = str(path)
        try:
            check_plain(text)
        except Unrepresentable as exc:
            self.problem(
                where,
                f"the path {text!r} {exc}, which vmbundle does not pass to QEMU; "
                "rename or move it to a path without control characters",
            )
            return _REFUSED
        if self.illumos_fork and ":" in text:
            # QEMU 0.14 takes everything before any ':' in a path for a
            # protocol name (block.c, path_has_protocol), not only at its start.
            self.problem(
                where,
                f"the path {text!r} holds ':', which QEMU {self.profile.version_text} reads "
                "as a protocol prefix; rename or move it to a path without ':'",
            )
            return _REFUSED
        if self.illumos_fork and len(text.encode()) > OLD_QEMU_MAX_VALUE_BYTES:
            self.problem(
                where,
                f"the path {text!r} is {len(text.encode())} bytes, and QEMU "
                f"{self.profile.version_text} cuts option values at {OLD_QEMU_MAX_VALUE_BYTES}; "
                "use a shorter path",
            )
            return _REFUSED
        return text

    def run_path(self, path: Path, *, socket: bool = False, implied: bool = False) -> str:
        """A path in the run directory, checked likewise; sockets also for their length."""
        text = str(path)
        try:
            if implied:
                escape_implied(text)
            else:
                check_plain(text)
        except Unrepresentable as exc:
            self.problem(
                "run.dir",
                f"the path {text!r} {exc}; set run.dir in vmbundle.toml to a plain directory",
            )
            return _REFUSED
        if socket and len(text.encode()) > MAX_SOCKET_PATH:
            self.problem(
                "name",
                f"the socket path {text!r} is {len(text.encode())} bytes, and QEMU takes at most "
                f"{MAX_SOCKET_PATH}; shorten the guest's name or set run.dir in vmbundle.toml "
                "to a shorter directory",
            )
            return _REFUSED
        return text

    def bare(self, value: str, where: str) -> str:
        try:
            return check_bare(value)
        except Unrepresentable as exc:
            self.problem(where, f"{value!r} {exc}; use a plain name")
            return _REFUSED


def build_argv(cfg: VmConfig, facts: ArgvFacts) -> list[str]:
    """The exact argv that runs cfg under facts.profile; ConfigError lists what cannot run."""
    if not facts.bundle_dir.is_absolute() or not facts.run.dir.is_absolute():
        raise ValueError("bundle_dir and the run directory must be absolute")
    out = _Argv(cfg, facts.profile)
    ranks = _boot_ranks(cfg)
    if facts.profile.name == "modern":
        _modern(out, cfg, facts, ranks)
    else:
        _illumos(out, cfg, facts, ranks)
    if out.problems:
        raise ConfigError(out.problems)
    return out.args


# --- shared ---------------------------------------------------------------


def _devices(cfg: VmConfig) -> list[Disk | Cdrom | Nic]:
    return [*cfg.disks, *cfg.cdroms, *cfg.nics]


def _by_boot_index(cfg: VmConfig) -> list[Disk | Cdrom | Nic]:
    """The devices that have a boot_index, lowest first (config order among equals)."""
    return sorted(
        (d for d in _devices(cfg) if d.boot_index is not None), key=lambda d: d.boot_index or 0
    )


def _boot_ranks(cfg: VmConfig) -> dict[str, int]:
    """Device id -> its place in the boot order, 0 first: boot_once, then boot_index ascending."""
    order = [d.id for d in _by_boot_index(cfg)]
    if cfg.boot_once is not None:
        if cfg.boot_once not in {d.id for d in _devices(cfg)}:
            raise ValueError(f"boot_once names no device: {cfg.boot_once!r}")
        order = [cfg.boot_once, *(i for i in order if i != cfg.boot_once)]
    return {device_id: rank for rank, device_id in enumerate(order)}


def _mac(nic: Nic, i: int) -> str:
    if nic.mac is None:
        raise ValueError(f"nics[{i}] ({nic.id}) has no MAC; the caller chooses one before a start")
    return nic.mac


def _link_name(nic: Nic, i: int) -> str:
    if nic.backend.name is None:
        raise ValueError(f"nics[{i}].backend ({nic.backend.type}) has no name")
    return nic.backend.name


def _vnc_address(listen: str, display: int) -> str:
    return f"[{listen}]:{display}" if ":" in listen else f"{listen}:{display}"


def _identity(out: _Argv, cfg: VmConfig, name: str) -> None:
    out.add("-name", name)
    out.add("-uuid", check_plain(cfg.uuid))
    out.opt(
        "-smbios",
        None,
        ("type", 1),
        ("manufacturer", "vmbundle"),
        ("product", "vmbundle"),
        ("serial", cfg.uuid),
        ("uuid", cfg.uuid),
    )


def _size(out: _Argv, cfg: VmConfig, room: Capacity | None = None) -> None:
    """CPU model, vCPUs and memory; with room, the most a refresh can add live."""
    out.add("-cpu", out.bare(cfg.cpu, "cpu"))
    if room is None:
        out.add("-smp", str(cfg.vcpus))
        out.add("-m", str(cfg.ram // MiB))
        return
    out.opt("-smp", str(cfg.vcpus), ("maxcpus", room.max_vcpus))
    if room.slots:
        out.opt(
            "-m",
            None,
            ("size", f"{cfg.ram // MiB}M"),
            ("slots", room.slots),
            ("maxmem", f"{room.max_ram // MiB}M"),
        )
    else:
        out.add("-m", str(cfg.ram // MiB))


def _monitors_and_serial(out: _Argv, run: RunPaths) -> None:
    # `server=on,wait=off` in QEMU 7; the 0.14 fork knows only the old flags.
    listen: tuple[Pair, ...] = (
        (("server", None), ("nowait", None))
        if out.illumos_fork
        else (("server", "on"), ("wait", "off"))
    )
    for chardev, path in (("qmp-controller", run.controller_qmp), ("qmp-control", run.control_qmp)):
        out.opt(
            "-chardev",
            "socket",
            ("id", chardev),
            ("path", out.run_path(path, socket=True)),
            *listen,
        )
        out.opt("-mon", None, ("chardev", chardev), ("mode", "control"))
    out.opt(
        "-chardev",
        "socket",
        ("id", "serial0"),
        ("path", out.run_path(run.serial, socket=True)),
        *listen,
    )
    out.add("-serial", "chardev:serial0")


# --- modern: QEMU 7.0 and later -------------------------------------------


def _modern(out: _Argv, cfg: VmConfig, facts: ArgvFacts, ranks: dict[str, int]) -> None:
    run = facts.run
    out.add(facts.binary)
    _identity(out, cfg, join(None, [("guest", cfg.name), ("debug-threads", "on")]))
    _modern_machine(out, cfg)
    out.add("-accel", facts.accel)
    room = capacity.of(cfg, out.profile, facts.host_cpus)
    _size(out, cfg, room)
    out.add("-no-user-config", "-nodefaults", "-no-shutdown")
    # No local window ever: without this QEMU would try GTK or SDL when VNC is off.
    out.add("-display", "none")
    out.add("-pidfile", out.run_path(run.pidfile))
    _monitors_and_serial(out, run)
    # A display device, so that QMP screendump has a console to read.
    out.add("-vga", "std")
    if out.profile.pvpanic:
        # ISA (ACPI QEMU0001), so it is the same device on pc and q35.
        out.opt("-device", "pvpanic", ("id", "pvpanic"))
    # An absolute pointer, so the VNC cursor and the guest's agree.
    out.add("-usb")
    out.opt("-device", "usb-tablet", ("id", "tablet"))
    # ram goes down (and back up) live through it.
    out.opt("-device", "virtio-balloon-pci", ("id", capacity.BALLOON_ID))
    # q35's root complex takes no hotplug: devices added live go behind these.
    for i, port in enumerate(room.hotplug_ports):
        out.opt("-device", "pcie-root-port", ("id", port), ("chassis", i + 1))
    _modern_vnc(out, cfg, facts)
    _modern_storage(out, cfg, facts, ranks)
    _modern_nics(out, cfg, ranks)


def _modern_machine(out: _Argv, cfg: VmConfig) -> None:
    m = _VERSIONED_MACHINE_RE.fullmatch(cfg.machine)
    if m is not None:
        wanted = (int(m[2]), int(m[3]))
        have = out.profile.version[:2]
        if wanted > have:
            base = "q35" if m[1] == "q35" else "pc"
            out.problem(
                "machine",
                f"{cfg.machine} is newer than this QEMU ({out.profile.version_text}); "
                f"use {base}, or a version up to pc-{m[1]}-{have[0]}.{have[1]}",
            )
    out.opt("-machine", cfg.machine)


def _modern_vnc(out: _Argv, cfg: VmConfig, facts: ArgvFacts) -> None:
    if not cfg.vnc.enabled:
        return
    web = "unix:" + out.run_path(facts.run.vnc_socket, socket=True, implied=True)
    out.opt("-vnc", web, ("id", "web"))
    if facts.display is None:
        return
    address = _vnc_address(out.bare(facts.vnc_listen, "display.listen"), facts.display)
    auth = _display_auth(out, cfg, facts)
    protection: list[Pair] = []
    if auth.kind == "tls":
        if facts.tls_dir is None:
            raise ValueError("TLS without an x509 directory; the caller makes one")
        out.opt(
            "-object",
            "tls-creds-x509",
            ("id", "vnctls"),
            ("dir", out.run_path(facts.tls_dir)),
            ("endpoint", "server"),
            ("verify-peer", "off"),
        )
        protection.append(("tls-creds", "vnctls"))
    if auth.password is not None:
        # QEMU reads the password from the run directory: never on its command line.
        secret = out.run_path(facts.run.vnc_password)
        out.opt("-object", "secret", ("id", "vncpw"), ("file", secret), ("format", "raw"))
        protection.append(("password-secret", "vncpw"))
    out.opt("-vnc", address, ("id", "display"), *protection)


def _display_auth(out: _Argv, cfg: VmConfig, facts: ArgvFacts) -> DisplayAuth:
    auth = facts.display_auth(cfg)
    if auth.problem is not None:
        out.problem("vnc", auth.problem)
    return auth


class _ModernPlaces:
    """Hands out the controller places of IDE, SATA and SCSI devices, in config order."""

    def __init__(self, q35: bool) -> None:
        self.q35 = q35
        self.ide = 0
        self.sata = 0
        self.scsi = 0

    def _no_ahci_port(self, is_disk: bool) -> str:
        if self.q35:
            alt = "virtio or scsi" if is_disk else "scsi"
            return (
                f"no AHCI port left: q35 has {AHCI_PORTS}, shared by ide and sata devices; "
                f"put this one on {alt}"
            )
        alt = "virtio, ide or scsi" if is_disk else "ide or scsi"
        return f"no SATA port left: the AHCI controller has {AHCI_PORTS}; put this one on {alt}"

    def take(self, out: _Argv, bus: str, where: str, is_disk: bool) -> list[Pair]:
        if bus == "scsi":
            self.scsi += 1
            return [("bus", "scsi0.0"), ("scsi-id", self.scsi - 1)]
        # On q35, ide and sata share the built-in AHCI (see the module's docstring).
        if self.q35 or bus == "sata":
            if self.sata == AHCI_PORTS:
                out.problem(f"{where}.bus", self._no_ahci_port(is_disk))
                return []
            self.sata += 1
            return [("bus", f"{'ide' if self.q35 else 'sata0'}.{self.sata - 1}")]
        if self.ide == PIIX_IDE_PLACES:
            alt = "virtio, sata or scsi" if is_disk else "sata or scsi"
            out.problem(
                f"{where}.bus",
                f"no IDE place left: the pc machine has {PIIX_IDE_PLACES} (2 buses x 2 units), "
                f"shared by IDE disks and CD-ROMs; put this one on {alt}",
            )
            return []
        self.ide += 1
        slot = self.ide - 1
        return [("bus", f"ide.{slot // 2}"), ("unit", slot % 2)]


def _bootindex(ranks: dict[str, int], device_id: str) -> list[Pair]:
    return [("bootindex", ranks[device_id])] if device_id in ranks else []


def _modern_storage(out: _Argv, cfg: VmConfig, facts: ArgvFacts, ranks: dict[str, int]) -> None:
    q35 = capacity.is_q35(cfg.machine)
    buses = {d.bus for d in cfg.disks} | {c.bus for c in cfg.cdroms}
    if "scsi" in buses:
        out.opt("-device", "virtio-scsi-pci", ("id", "scsi0"))
    if "sata" in buses and not q35:
        out.opt("-device", "ich9-ahci", ("id", "sata0"))
    places = _ModernPlaces(q35)
    for i, disk in enumerate(cfg.disks):
        where = f"disks[{i}]"
        drive = f"drive-{disk.id}"
        path = out.image_path(facts.bundle_dir / disk.file, f"{where}.file")
        out.opt(
            "-drive",
            None,
            ("if", "none"),
            ("id", drive),
            ("file", path),
            ("format", disk.format),
            ("cache", disk.cache),
        )
        if disk.bus == "virtio":
            driver, place = "virtio-blk-pci", []
        else:
            driver = "scsi-hd" if disk.bus == "scsi" else "ide-hd"
            place = places.take(out, disk.bus, where, is_disk=True)
        out.opt(
            "-device",
            driver,
            *place,
            ("drive", drive),
            ("id", disk.id),
            *_bootindex(ranks, disk.id),
        )
    for i, cd in enumerate(cfg.cdroms):
        where = f"cdroms[{i}]"
        drive = f"drive-{cd.id}"
        medium: list[Pair] = []
        iso = _iso(facts, cd)
        if iso is not None:
            medium = [("file", out.image_path(iso, f"{where}.iso")), ("format", "raw")]
        out.opt(
            "-drive",
            None,
            ("if", "none"),
            ("id", drive),
            ("media", "cdrom"),
            ("readonly", "on"),
            *medium,
        )
        driver = "scsi-cd" if cd.bus == "scsi" else "ide-cd"
        place = places.take(out, cd.bus, where, is_disk=False)
        out.opt(
            "-device", driver, *place, ("drive", drive), ("id", cd.id), *_bootindex(ranks, cd.id)
        )


def _iso(facts: ArgvFacts, cd: Cdrom) -> Path | None:
    if cd.id not in facts.isos:
        raise ValueError(f"no ISO decision for CD-ROM {cd.id!r}; the caller resolves every one")
    return facts.isos[cd.id]


def _modern_nics(out: _Argv, cfg: VmConfig, ranks: dict[str, int]) -> None:
    for i, nic in enumerate(cfg.nics):
        where = f"nics[{i}]"
        mac = _mac(nic, i)
        netdev = f"netdev-{nic.id}"
        kind = nic.backend.type
        if kind == "vnic":
            out.needs(
                f"{where}.backend.type",
                "vnic",
                "the illumos KVM QEMU (0.14.1)",
                "use tap or bridge",
            )
            continue
        backend: list[Pair] = []
        if kind == "tap":
            backend = [("ifname", _link_name(nic, i)), ("script", "no"), ("downscript", "no")]
        elif kind == "bridge":
            backend = [("br", _link_name(nic, i))]
        out.opt("-netdev", kind, ("id", netdev), *backend)
        driver = "virtio-net-pci" if nic.model == "virtio" else "e1000"
        out.opt(
            "-device",
            driver,
            ("netdev", netdev),
            ("mac", mac),
            ("id", nic.id),
            *_bootindex(ranks, nic.id),
        )


# --- illumos-kvm: the illumos KVM fork, QEMU 0.14.1 -----------------------


def _illumos(out: _Argv, cfg: VmConfig, facts: ArgvFacts, ranks: dict[str, int]) -> None:
    run = facts.run
    out.add(facts.binary)
    # 0.14 splits -name at its first comma, with no escape.
    _identity(out, cfg, out.bare(cfg.name, "name"))
    if cfg.machine != "pc":
        if capacity.is_q35(cfg.machine):
            out.needs("machine", cfg.machine, "QEMU 7.0 or later", "use pc")
        else:
            out.needs("machine", cfg.machine, "QEMU 1.4 or later", "use pc")
    out.add("-M", "pc")
    # The fork is qemu-kvm, which uses KVM unless told -no-kvm (kvm_allowed = 1);
    # -enable-kvm says the same thing out loud.
    out.add("-enable-kvm" if facts.accel == "kvm" else "-no-kvm")
    _size(out, cfg)
    out.add("-nodefaults", "-no-shutdown")
    out.add("-pidfile", out.run_path(run.pidfile))
    _monitors_and_serial(out, run)
    out.add("-vga", "std")
    out.add("-usb", "-usbdevice", "tablet")
    # One VNC server: the desktop display, which the web console proxies too.
    if cfg.vnc.enabled and facts.display is not None:
        address = _vnc_address(out.bare(facts.vnc_listen, "display.listen"), facts.display)
        auth = _display_auth(out, cfg, facts)
        if auth.kind == "tls":
            # SmartOS builds the fork with --disable-vnc-tls (build.sh in
            # TritonDataCenter/illumos-kvm-cmd), so its -vnc has no tls option.
            out.needs(
                "display.tls",
                "TLS on the VNC display",
                "a QEMU built with VNC TLS (the illumos fork is built without it)",
                'use passwords = "generate" or a vnc.password instead',
            )
        # The password itself is set over QMP once QEMU runs (the fork has no secret objects).
        out.add("-vnc", address + (",password" if auth.password is not None else ""))
    else:
        out.add("-vnc", "none")
    _illumos_storage(out, cfg, facts, ranks)
    _illumos_nics(out, cfg)
    out.opt("-boot", None, *_illumos_boot(cfg))


def _illumos_storage(out: _Argv, cfg: VmConfig, facts: ArgvFacts, ranks: dict[str, int]) -> None:
    ide = 0
    virtio = 0
    disk_ranks = {d.id: ranks[d.id] for d in cfg.disks if d.id in ranks}
    # The fork's extboot takes one boot=on disk: the disk that boots first.
    boot_disk = min(disk_ranks, key=disk_ranks.__getitem__) if disk_ranks else None

    def ide_index(where: str, fix: str) -> int | None:
        nonlocal ide
        if ide == PIIX_IDE_PLACES:
            out.problem(
                f"{where}.bus",
                f"no IDE place left: this QEMU has {PIIX_IDE_PLACES} (2 buses x 2 units), "
                f"shared by IDE disks and CD-ROMs; {fix}",
            )
            return None
        ide += 1
        return ide - 1

    for i, disk in enumerate(cfg.disks):
        where = f"disks[{i}]"
        if disk.bus not in ("virtio", "ide"):
            out.needs(f"{where}.bus", disk.bus, "QEMU 7.0 or later", "use virtio or ide")
            continue
        if disk.cache == "directsync":
            out.needs(
                f"{where}.cache", "directsync", "QEMU 1.0 or later", "use none or writethrough"
            )
        if disk.bus == "virtio":
            index: int | None = virtio
            virtio += 1
        else:
            index = ide_index(where, "put this disk on virtio")
        path = out.image_path(facts.bundle_dir / disk.file, f"{where}.file")
        out.opt(
            "-drive",
            None,
            ("file", path),
            ("if", disk.bus),
            ("index", -1 if index is None else index),
            ("media", "disk"),
            ("id", f"drive-{disk.id}"),
            ("format", disk.format),
            ("cache", disk.cache),
            *([("boot", "on")] if disk.id == boot_disk else []),
        )
    for i, cd in enumerate(cfg.cdroms):
        where = f"cdroms[{i}]"
        if cd.bus != "ide":
            out.needs(f"{where}.bus", cd.bus, "QEMU 7.0 or later", "use ide")
            continue
        index = ide_index(where, "put the disks on virtio")
        iso = _iso(facts, cd)
        medium: list[Pair] = [] if iso is None else [("file", out.image_path(iso, f"{where}.iso"))]
        out.opt(
            "-drive",
            None,
            *medium,
            ("if", "ide"),
            ("index", -1 if index is None else index),
            ("media", "cdrom"),
            ("id", f"drive-{cd.id}"),
            *([] if iso is None else [("format", "raw")]),
        )


def _illumos_nics(out: _Argv, cfg: VmConfig) -> None:
    for i, nic in enumerate(cfg.nics):
        where = f"nics[{i}]"
        mac = _mac(nic, i)
        # Each NIC is its own 0.14 vlan: the front end and its back end meet there.
        if nic.model == "virtio":
            out.opt(
                "-device",
                "virtio-net-pci",
                ("mac", mac),
                *_ILLUMOS_VIRTIO_NET_TUNING,
                ("vlan", i),
                ("id", nic.id),
            )
        else:
            out.opt(
                "-net", "nic", ("macaddr", mac), ("vlan", i), ("name", nic.id), ("model", "e1000")
            )
        kind = nic.backend.type
        if kind == "vnic":
            out.opt("-net", "vnic", ("name", nic.id), ("vlan", i), ("ifname", _link_name(nic, i)))
        elif kind == "tap":
            out.opt(
                "-net",
                "tap",
                ("vlan", i),
                ("name", nic.id),
                ("ifname", _link_name(nic, i)),
                ("script", "no"),
                ("downscript", "no"),
            )
        elif kind == "user":
            out.opt("-net", "user", ("vlan", i), ("name", nic.id))
        else:
            out.needs(
                f"{where}.backend.type",
                kind,
                "QEMU 7.0 or later",
                "use vnic",
            )


def _boot_letter(device: Disk | Cdrom | Nic) -> str:
    """QEMU's -boot letter for a kind of device: c disk, d CD-ROM, n network."""
    if isinstance(device, Disk):
        return "c"
    return "d" if isinstance(device, Cdrom) else "n"


def _illumos_boot(cfg: VmConfig) -> list[Pair]:
    """`-boot order=...[,once=X]` as SmartOS writes it."""
    letters = ""
    for device in _by_boot_index(cfg):
        letter = _boot_letter(device)
        if letter not in letters:
            letters += letter
    # SmartOS's default when nothing says otherwise: the disk, then the CD-ROM.
    pairs: list[Pair] = [("order", letters or "cd")]
    if cfg.boot_once is not None:
        once = next(d for d in _devices(cfg) if d.id == cfg.boot_once)
        pairs.append(("once", _boot_letter(once)))
    return pairs
