"""Preparing one boot of a guest, everything but QEMU itself: the accelerator, the
NICs' MACs, the run directory, the display, the VNC password file, and the
exact command line. vmbundle.guest.boot runs the steps in order.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import attrs

from vmbundle.adapters import openssl
from vmbundle.atomic import write_atomic
from vmbundle.errors import ConfigError, GuestRunning
from vmbundle.guest import display, display_auth
from vmbundle.guest.display_auth import DisplayAuth, DisplayPolicy
from vmbundle.guest.process import running_pid
from vmbundle.guest.rundir import RunPaths
from vmbundle.locks import exclusive
from vmbundle.qemu import capacity
from vmbundle.qemu import profile as qemu_profile
from vmbundle.qemu.argv import ArgvFacts, build_argv
from vmbundle.qemu.capacity import Capacity
from vmbundle.qemu.profile import Profile
from vmbundle.settings import HostSettings
from vmbundle.vm import bundle as bundle_mod
from vmbundle.vm.bundle import Bundle, Document
from vmbundle.vm.checks import HostMeans
from vmbundle.vm.model import VmConfig


def choose_accel(
    setting: str, kvm_device: Path = Path("/dev/kvm"), modules: Path = Path("/sys/module")
) -> str:
    """The accelerator for "auto": kvm where /dev/kvm opens and can run a stock
    guest, else tcg; "kvm" or "tcg" from the host configuration as given."""
    if setting != "auto":
        return setting
    if not os.access(kvm_device, os.R_OK | os.W_OK):
        return "tcg"
    # On Linux, /dev/kvm may be the nested PVM hypervisor (kvm_pvm), which runs
    # only kernels built for it: a stock guest dies with a KVM internal error.
    # Hardware-assisted KVM is kvm_intel or kvm_amd. illumos has no /sys.
    if modules.is_dir() and not any((modules / m).exists() for m in ("kvm_intel", "kvm_amd")):
        return "tcg"
    return "kvm"


def new_mac() -> str:
    # Imported here: secrets brings in OpenSSL, which every start would pay for.
    import secrets

    # 52:54:00 is QEMU's locally administered prefix.
    tail = secrets.token_bytes(3)
    return "52:54:00:" + ":".join(f"{b:02x}" for b in tail)


def with_macs(cfg: VmConfig) -> VmConfig:
    """cfg with a MAC for every NIC that has none, so each is generated once and kept."""
    taken = {n.mac for n in cfg.nics if n.mac}
    nics = []
    for nic in cfg.nics:
        if nic.mac is None:
            mac = new_mac()
            while mac in taken:
                mac = new_mac()
            taken.add(mac)
            nic = attrs.evolve(nic, mac=mac)
        nics.append(nic)
    return attrs.evolve(cfg, nics=tuple(nics))


def iso_paths(b: Bundle) -> dict[str, Path | None]:
    """Absolute ISO path per CD-ROM (already checked to be in the bundle or an ISO dir)."""
    out: dict[str, Path | None] = {}
    for cd in b.config.cdroms:
        if cd.iso is None:
            out[cd.id] = None
        else:
            out[cd.id] = Path(cd.iso) if cd.iso.startswith("/") else b.path / cd.iso
    return out


@attrs.frozen
class Prepared:
    """A guest ready for QEMU: the bundle as it starts, its run directory, its display, the argv."""

    bundle: Bundle
    run: RunPaths
    display: int | None
    argv: tuple[str, ...]
    profile: Profile
    capacity: Capacity
    """How far this boot can grow live (the argv's maxcpus, maxmem and spare ports)."""
    display_auth: DisplayAuth | None = None
    """How the desktop display is protected; None: the guest has none."""


def command_line(
    b: Bundle,
    settings: HostSettings,
    display_number: int | None,
    run: RunPaths | None = None,
    profile: Profile | None = None,
) -> list[str]:
    """The exact argv for b with the given display (pure apart from probing QEMU,
    when the caller has not probed it already)."""
    if profile is None:
        profile = qemu_profile.probe(settings.qemu_binary, settings.run_dir)
    run = run or RunPaths.for_guest(settings.run_dir, b.name)
    facts = ArgvFacts(
        binary=settings.qemu_binary,
        profile=profile,
        accel=choose_accel(settings.accelerator),  # type: ignore[arg-type]
        bundle_dir=b.path,
        run=run,
        display=display_number if b.config.vnc.enabled else None,
        vnc_listen=settings.vnc_listen,
        isos=iso_paths(b),
        host_cpus=host_cpus(),
        display_policy=display_policy(settings),
        tls_dir=tls_dir(settings),
    )
    return build_argv(b.config, facts)


def display_policy(settings: HostSettings) -> DisplayPolicy:
    return DisplayPolicy(
        listen=settings.vnc_listen,
        tls=settings.display_tls,
        generate_passwords=settings.display_passwords == "generate",
        allow_unauthenticated=settings.display_allow_unauthenticated,
    )


def tls_dir(settings: HostSettings) -> Path:
    """QEMU's x509 directory for the desktop displays: [display] tls_dir, or the one
    vmbundle makes beside the host configuration (made by ensure_tls_dir)."""
    if settings.display_tls_dir is not None:
        return settings.display_tls_dir
    return settings.config_dir / "vnc-x509"


TLS_FILES = ("ca-cert.pem", "server-cert.pem", "server-key.pem")


def ensure_tls_dir(settings: HostSettings, guest: str) -> None:
    """Make vmbundle's own x509 directory once; a configured one must be complete."""
    directory = tls_dir(settings)
    if all((directory / f).is_file() for f in TLS_FILES):
        return  # every start but the first: no lock taken
    # Guests starting at once make it once; they all wait for it anyway.
    with exclusive(settings.run_dir / "vnc-x509.lock", 120):
        missing = [f for f in TLS_FILES if not (directory / f).is_file()]
        if not missing:
            return
        if settings.display_tls_dir is not None:
            raise ConfigError(
                [
                    f"{guest}: display.tls_dir: {directory} lacks {', '.join(missing)}; QEMU "
                    f"needs {', '.join(TLS_FILES)} there, or leave tls_dir out and vmbundle "
                    "makes its own"
                ]
            )
        openssl.vnc_x509_dir(directory, socket.getfqdn(), settings.vnc_listen)


def host_cpus() -> int:
    return HostMeans.of_this_host().cpus


def check_runnable(b: Bundle, settings: HostSettings) -> None:
    """ConfigError for what only the QEMU command line can tell (a feature this QEMU lacks)."""
    command_line(Bundle(b.path, with_macs(b.config)), settings, settings.display_first)


def _macs_kept(cfg: VmConfig) -> Callable[[Document], Document]:
    """The change that writes cfg's MACs into vm.json for the NICs that still have
    none there, leaving every other key as the file now has it."""

    def change(doc: Document) -> Document:
        macs = {n.id: n.mac for n in cfg.nics}
        nics = doc.get("nics")
        if isinstance(nics, list):
            for nic in nics:
                if isinstance(nic, dict) and nic.get("mac") is None and nic.get("id") in macs:
                    nic["mac"] = macs[nic["id"]]
        return doc

    return change


def prepare(b: Bundle, settings: HostSettings, owner: int | None = None) -> Prepared:
    """Take a display and write the run directory for b; undo both on failure.
    owner: the process the display is held for until QEMU runs (by default this one)."""
    run = RunPaths.for_guest(settings.run_dir, b.name)
    pid = running_pid(run)
    if pid is not None:
        raise GuestRunning(f"{b.name}: already running (QEMU pid {pid})")
    if any(n.mac is None for n in b.config.nics):
        # Generated once and kept, so the guest's network sees the same card each boot.
        cfg = with_macs(b.config)
        saved = bundle_mod.update(b.path, settings, _macs_kept(cfg), whole=False)
        b = Bundle(b.path, attrs.evolve(cfg, nics=saved.config.nics))
    clear_run_dir(run)
    run.dir.mkdir(parents=True, mode=0o700)
    number: int | None = None
    auth: DisplayAuth | None = None
    try:
        if b.config.vnc.enabled:
            number = display.allocate(
                settings.run_dir,
                b.name,
                settings.display_first,
                settings.display_last,
                settings.vnc_listen,
                lambda g: running_pid(RunPaths.for_guest(settings.run_dir, g)) is not None,
                owner,
            )
            auth = display_auth.decide(b.config, display_policy(settings))
            password = (
                b.config.vnc.password
                if auth.password == "guest"
                else display_auth.new_password()
                if auth.password == "generated"
                else None
            )
            if password is not None:
                # QEMU reads it from here (a secret object, or QMP for the 0.14 fork).
                write_atomic(run.vnc_password, password.encode(), mode=0o600, durable=False)
            if auth.kind == "tls":
                ensure_tls_dir(settings, b.name)
        profile = qemu_profile.probe(settings.qemu_binary, settings.run_dir)
        argv = command_line(b, settings, number, run, profile)
    except BaseException:
        finish(b.name, run, settings)
        raise
    room = capacity.of(b.config, profile, host_cpus())
    return Prepared(
        bundle=b,
        run=run,
        display=number,
        argv=tuple(argv),
        profile=profile,
        capacity=room,
        display_auth=auth,
    )


def clear_run_dir(run: RunPaths) -> None:
    if run.dir.exists():
        shutil.rmtree(run.dir)


def finish(name: str, run: RunPaths, settings: HostSettings) -> None:
    """Give back what prepare took, once QEMU has gone."""
    display.release(settings.run_dir, name)
    clear_run_dir(run)
