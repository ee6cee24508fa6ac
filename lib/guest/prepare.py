"""Everything around one boot of a guest except QEMU itself: the accelerator, the
run directory, the display, the VNC password file, and the exact command line.

`vmbundle run` uses it in the foreground today; the SMF start method does the
same steps with QEMU in the background.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import attrs

from vmbundle.atomic import write_atomic
from vmbundle.errors import VmbundleError
from vmbundle.guest import display
from vmbundle.guest.process import running_pid
from vmbundle.guest.rundir import RunPaths
from vmbundle.qemu import profile as qemu_profile
from vmbundle.qemu.argv import LaunchFacts, build_argv
from vmbundle.settings import HostSettings
from vmbundle.vm import bundle as bundle_mod
from vmbundle.vm.bundle import Bundle
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
class Launch:
    bundle: Bundle
    run: RunPaths
    display: int | None
    argv: tuple[str, ...]


def command_line(
    b: Bundle, host: HostSettings, display_number: int | None, run: RunPaths | None = None
) -> list[str]:
    """The exact argv for b with the given display (pure apart from probing QEMU)."""
    profile = qemu_profile.probe(host.qemu_binary, host.run_dir)
    facts = LaunchFacts(
        binary=host.qemu_binary,
        profile=profile,
        accel=choose_accel(host.accelerator),  # type: ignore[arg-type]
        bundle_dir=b.path,
        run=run or RunPaths.for_guest(host.run_dir, b.name),
        display=display_number if b.config.vnc.enabled else None,
        vnc_listen=host.vnc_listen,
        isos=iso_paths(b),
    )
    return build_argv(b.config, facts)


def check_runnable(b: Bundle, host: HostSettings) -> None:
    """ConfigError for what only the QEMU command line can tell (a feature this QEMU lacks)."""
    command_line(Bundle(b.path, with_macs(b.config)), host, host.display_first)


def prepare(b: Bundle, host: HostSettings) -> Launch:
    """Take a display and write the run directory for b; undo both on failure."""
    run = RunPaths.for_guest(host.run_dir, b.name)
    pid = running_pid(run)
    if pid is not None:
        raise VmbundleError(f"{b.name}: already running (QEMU pid {pid})")
    if b.config.nics and any(n.mac is None for n in b.config.nics):
        b = Bundle(b.path, with_macs(b.config))
        bundle_mod.save(b.path, b.config)
    clear_run_dir(run)
    run.dir.mkdir(parents=True, mode=0o700)
    number: int | None = None
    try:
        if b.config.vnc.enabled:
            number = display.allocate(
                host.run_dir,
                b.name,
                host.display_first,
                host.display_last,
                host.vnc_listen,
                lambda g: running_pid(RunPaths.for_guest(host.run_dir, g)) is not None,
            )
            if b.config.vnc.password is not None:
                write_atomic(
                    run.vnc_password, b.config.vnc.password.encode(), mode=0o600, durable=False
                )
        argv = command_line(b, host, number, run)
    except VmbundleError:  # ConfigError included
        finish(b.name, run, host)
        raise
    return Launch(bundle=b, run=run, display=number, argv=tuple(argv))


def clear_run_dir(run: RunPaths) -> None:
    if run.dir.exists():
        shutil.rmtree(run.dir)


def finish(name: str, run: RunPaths, host: HostSettings) -> None:
    """Give back what prepare took, once QEMU has gone."""
    display.release(host.run_dir, name)
    clear_run_dir(run)
