"""import, forget, start, stop, restart: a guest as an SMF instance.

These only ask SMF (through vmbundle.adapters.smf) and read bundles; the methods
do the work, so a guest started here is the same as one started with svcadm.
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from vmbundle.adapters import smf
from vmbundle.errors import ConfigError, ToolError, VmbundleError
from vmbundle.guest.rundir import RunPaths
from vmbundle.ops import ownership
from vmbundle.service import instance, state
from vmbundle.service.state import UP, Instance
from vmbundle.settings import HostSettings
from vmbundle.vm import bundle, codec
from vmbundle.vm.bundle import Bundle
from vmbundle.vm.model import VmConfig


class NameTaken(VmbundleError):
    """A guest of that name is imported already."""


class ServiceMissing(VmbundleError):
    """The vm service is not installed in SMF (vmbundle smf install)."""


@attrs.frozen
class Imported:
    name: str
    fmri: str
    bundle: str
    state: str

    def to_json(self) -> dict[str, str]:
        return attrs.asdict(self)


@attrs.frozen
class Forgotten:
    name: str
    fmri: str
    bundle: str | None


@attrs.frozen
class Started:
    name: str
    persistent: bool
    """Enabled for good (autostart), not only until the host reboots."""
    cleared: bool
    """It was in maintenance, and the start cleared it."""
    online: bool
    """It was waited for and is online."""


@attrs.frozen
class Stopped:
    name: str
    disabled: bool
    """It is disabled now (waited for, or it was already)."""


def quick_config(path: str | Path | None) -> VmConfig | None:
    """vm.json read without the slow checks of its disks; None when unreadable or invalid."""
    if not path:
        return None
    try:
        return codec.structure(bundle.read_document(Path(path)))
    except (ConfigError, codec.ConfigProblems):
        return None


def autostart(fmri: str) -> bool:
    """The guest's autostart; False when vm.json cannot be read (the start method
    reports that problem into SMF, and a temporary enable is the safe guess)."""
    try:
        path = smf.get_property(fmri, smf.BUNDLE_PROPERTY)
    except ToolError:
        return False
    cfg = quick_config(path)
    return cfg is not None and cfg.autostart


def _same_bundle(where: str | None, path: Path) -> bool:
    return bool(where) and os.path.realpath(str(where)) == os.path.realpath(path)


def refuse_imported(name: str, path: Path | None = None) -> Imported | None:
    """Refuse a name that already has an instance, naming the bundle it points at;
    an instance of this very bundle (path) is the import done already, by the
    controller say, and is returned."""
    found = state.find(name)
    if found is None:
        return None
    where = smf.get_property(found.fmri, smf.BUNDLE_PROPERTY) or "no bundle set"
    if path is not None and _same_bundle(where, path):
        return Imported(name, found.fmri, where, found.state)
    raise NameTaken(
        f"{name}: already imported as {found.fmri} ({where}); "
        f"to import another bundle under this name, forget it first: vmbundle forget {name}"
    )


def add_instance(b: Bundle, *, settle: bool = True) -> Imported:
    """Make the disabled instance of a checked bundle; refuse_imported came first.
    settle=False does not wait for the restarter to take the instance in (the
    controller, which need not show the state): its state is then "disabled", as
    the instance is made."""
    fmri = smf.instance_fmri(b.name)

    def now() -> str:
        return state.settled_state(fmri) if settle else "disabled"

    try:
        smf.add_instance(b.name, str(b.path))
    except ToolError as exc:
        if isinstance(exc, smf.AlreadyExists) and _same_bundle(
            smf.get_property(fmri, smf.BUNDLE_PROPERTY), b.path
        ):
            # Made in the meantime for this same bundle (the controller and the
            # CLI both import): the import is done.
            return Imported(b.name, fmri, str(b.path), now())
        # svccfg stops at the first failing line, which may leave a half-made
        # instance; never remove one someone else made in the meantime.
        if not isinstance(exc, smf.AlreadyExists) and state.find(b.name) is not None:
            smf.delete_instance(fmri)
        if isinstance(exc, smf.NoSuchEntity):
            raise ServiceMissing(
                f"{b.name}: cannot make {fmri}: the service {smf.VM_SERVICE} is not installed; "
                "install it: vmbundle smf install"
            ) from None
        raise VmbundleError(f"{b.name}: cannot make {fmri}: {exc}") from None
    return Imported(b.name, fmri, str(b.path), now())


def import_bundle(settings: HostSettings, guest: str) -> Imported:
    """Make the SMF instance of a bundle in the roots (or at a path), disabled."""
    path = bundle.locate(settings, guest)
    done = refuse_imported(path.name, path)
    if done is not None:
        return done
    # Fully checked (disks too): a bad bundle never becomes an instance.
    return add_instance(bundle.load(path, settings))


def forget(guest: str) -> Forgotten:
    """Remove a stopped guest's SMF instance; the bundle stays."""
    inst = state.get(state.guest_name(guest))
    if inst.active:
        raise VmbundleError(
            f"{inst.name}: {inst.shown_state}; stop it first: vmbundle stop {inst.name} --wait"
        )
    path = smf.get_property(inst.fmri, smf.BUNDLE_PROPERTY)
    smf.delete_instance(inst.fmri)
    return Forgotten(inst.name, inst.fmri, path)


def start(settings: HostSettings, guest: str, *, wait: bool, take_over: bool = False) -> Started:
    """Enable the guest, once its owner record lets this host run it (take_over:
    claim it from a host that never released it)."""
    inst = state.get(state.guest_name(guest))
    try:
        path = instance.bundle_path(
            inst.fmri, inst.name, smf.get_property(inst.fmri, smf.BUNDLE_PROPERTY)
        )
    except ConfigError:
        path = None  # the start method says what is wrong, as for svcadm enable
    if path is not None:
        ownership.check_start(settings, path, take_over=take_over)
    persistent = autostart(inst.fmri)
    # Without autostart the enable is temporary, so the guest stays off after a reboot.
    flags = () if persistent else ("-t",)
    cleared = inst.state == "maintenance"
    if cleared:
        # The operator asked for the guest to run; clearing is what they would do
        # next by hand, and the start method reports again if the cause remains.
        since = state.stamp(inst.fmri)
        smf.svcadm("enable", inst.fmri, *flags)
        smf.svcadm("clear", inst.fmri)
        if wait:
            state.await_online(inst, since)
    else:
        state.svcadm_to(inst, "enable", flags, wait, "online")
    return Started(inst.name, persistent, cleared, wait)


def stop(guest: str, *, wait: bool, force_in: Path | None = None) -> Stopped:
    """Disable the guest: its stop method presses the power button and waits, or,
    with force_in (the host's run directory), quits QEMU at once."""
    inst = state.get(state.guest_name(guest))
    if force_in is not None and inst.state in UP:
        marker = RunPaths.for_guest(force_in, inst.name).force_off
        try:
            marker.touch()
        except OSError as exc:
            raise VmbundleError(
                f"{inst.name}: cannot mark the force off in {marker.parent}: {exc.strerror}"
            ) from None
    # Temporary: a guest with autostart still comes back when the host boots.
    state.svcadm_to(inst, "disable", ("-t",), wait, "disabled")
    return Stopped(inst.name, wait or (inst.state, inst.next_state) == ("disabled", "-"))


def disable(fmri: str) -> None:
    """What stop does, for a caller that knows the instance is there (the
    controller, when a guest has powered itself off): one svcadm, no look first."""
    smf.svcadm("disable", fmri, "-t")


def restart(guest: str, *, wait: bool) -> Instance:
    inst = state.get(state.guest_name(guest))
    if inst.state not in UP:
        # svc.startd ignores a restart of an instance that is not running.
        raise VmbundleError(
            f"{inst.name}: {inst.shown_state}, not running; start it: vmbundle start {inst.name}"
        )
    since = state.stamp(inst.fmri)
    smf.svcadm("restart", inst.fmri)
    if wait:
        state.await_online(inst, since)
    return inst
