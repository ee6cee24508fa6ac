"""Snapshots, rollbacks and clones of a whole guest: one ZFS snapshot of its bundle is
every disk and vm.json at one instant.

A running guest's disks are consistent with each other in a plain snapshot only as a
power cut leaves them; `consistent` pauses the guest over QMP (stop, snapshot, cont)
so that no write is half-done across disks, and says how long the pause was. A
rollback is for a stopped guest only and keeps the owner record as it is. A clone
gets a name, a uuid and MACs of its own, no owner record, and is imported disabled.
A plain-directory bundle has no snapshots: each operation says so in one line.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import attrs

from vmbundle import locks
from vmbundle.adapters import zfs
from vmbundle.atomic import write_atomic
from vmbundle.errors import UsageError, VmbundleError
from vmbundle.guest import boot_record, memory_state
from vmbundle.guest.prepare import with_macs
from vmbundle.guest.process import running_pid
from vmbundle.guest.rundir import RunPaths
from vmbundle.ops import lifecycle
from vmbundle.qemu import qmp
from vmbundle.settings import HostSettings
from vmbundle.vm import bundle, owner, storage
from vmbundle.vm.model import NAME_PATTERN, VmConfig

# What zfs allows in a snapshot's name, less what a shell or a reader would trip on.
SNAPSHOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


@attrs.frozen
class Taken:
    snapshot: str  # dataset@snap
    paused: float | None  # seconds the guest was paused for it, None when not
    memory: bool = False  # it holds the guest's memory: a rollback resumes the guest


@attrs.frozen
class Cloned:
    name: str
    path: Path
    dataset: str
    fmri: str


@attrs.frozen
class _Guest:
    name: str
    path: Path
    dataset: str
    run: RunPaths

    def running(self) -> bool:
        return running_pid(self.run) is not None


def _guest(settings: HostSettings, guest: str) -> _Guest:
    path = bundle.locate(settings, guest)
    dataset = storage.bundle_dataset(path)
    if dataset is None:
        raise VmbundleError(
            f"{path.name}: its bundle {path} is a plain directory, not a ZFS dataset, so it "
            "has no snapshots; make guests in a ZFS bundle root to have them"
        )
    return _Guest(path.name, path, dataset, RunPaths.for_guest(settings.run_dir, path.name))


def _checked_snapshot(name: str) -> str:
    if SNAPSHOT_NAME.fullmatch(name) is None:
        raise UsageError(
            f"{name[:64]!r}: not a snapshot name; use up to 64 letters, digits and _.:- "
            "(starting with a letter or digit)"
        )
    return name


def default_name(now: float | None = None) -> str:
    return time.strftime("vmbundle-%Y%m%dT%H%M%SZ", time.gmtime(now))


def take(
    settings: HostSettings, guest: str, name: str | None, *, consistent: bool, memory: bool = False
) -> Taken:
    """memory: also the running guest's RAM and device state (vmbundle.guest.memory_state),
    so a rollback to it resumes the guest; implies consistent."""
    g = _guest(settings, guest)
    full = f"{g.dataset}@{_checked_snapshot(name or default_name())}"
    # The bundle's lock: no vm.json edit is half-way through at the instant.
    with locks.bundle(settings.run_dir, g.name):
        if memory:
            return _with_memory(g, full)
        if not (consistent and g.running()):
            zfs.snapshot(full)
            return Taken(full, None)
        qmp.execute(g.run, "stop")
        paused = time.monotonic()
        try:
            zfs.snapshot(full)
        finally:
            qmp.execute(g.run, "cont")
            paused = time.monotonic() - paused
    return Taken(full, paused)


def _with_memory(g: _Guest, full: str) -> Taken:
    if not g.running():
        raise VmbundleError(
            f"{g.name}: not running, so it has no memory to save; take a plain snapshot: "
            f"vmbundle snapshot {g.name} {full.partition('@')[2]}"
        )
    record = boot_record.read(g.run)
    # An ISO changed live is in vm.json as the next start gives it; devices are not.
    changed = [line for line in (record.live if record else ()) if not line.startswith("cdroms.")]
    if changed:
        # The saved state holds the devices the guest has now, and the next start
        # builds those vm.json gives it at boot: the two would not match.
        raise VmbundleError(
            f"{g.name}: its devices changed live in this boot ({changed[-1]}); a memory "
            f"snapshot resumes only into the devices it was saved with: restart the guest "
            f"first (vmbundle restart {g.name}), or take the snapshot without --memory"
        )
    downtime = memory_state.save(g.run, g.path)
    stopped = time.monotonic()
    try:
        zfs.snapshot(full)
    finally:
        # The file belongs to the snapshot alone: the running guest's next start boots.
        memory_state.discard(g.path)
        qmp.execute(g.run, "cont")
    return Taken(full, downtime + time.monotonic() - stopped, memory=True)


def listing(settings: HostSettings, guest: str) -> list[zfs.Snapshot]:
    return zfs.snapshots(_guest(settings, guest).dataset)


def _existing(g: _Guest, name: str) -> tuple[str, list[zfs.Snapshot]]:
    """The full name of g's snapshot name, and the snapshots taken after it."""
    full = f"{g.dataset}@{_checked_snapshot(name)}"
    known = zfs.snapshots(g.dataset)
    names = [s.name for s in known]
    if full not in names:
        have = ", ".join(s.short for s in known) or "none"
        raise VmbundleError(f"{g.name}: no snapshot {name!r} (it has: {have})")
    return full, known[names.index(full) + 1 :]


def rollback(settings: HostSettings, guest: str, name: str, *, discard_newer: bool) -> str:
    g = _guest(settings, guest)
    full, newer = _existing(g, name)
    if newer and not discard_newer:
        raise VmbundleError(
            f"{g.name}: {len(newer)} newer snapshot(s) ({', '.join(s.short for s in newer)}) "
            f"would be destroyed; to roll back anyway: vmbundle rollback {g.name} {name} "
            "--discard-newer"
        )
    with locks.bundle(settings.run_dir, g.name):
        if g.running():
            raise VmbundleError(
                f"{g.name}: running; a rollback is for a stopped guest: vmbundle stop "
                f"{g.name} --wait, then roll back"
            )
        # Whose guest it is does not go back in time: a snapshot taken before a
        # promote or a take-over would otherwise make it another host's again.
        record = _owner_bytes(g.path)
        zfs.rollback(full, discard_newer=discard_newer)
        _restore_owner(g.path, record)
    return full


def _owner_bytes(path: Path) -> bytes | None:
    try:
        return (path / owner.OWNER_FILE).read_bytes()
    except FileNotFoundError:
        return None


def _restore_owner(path: Path, record: bytes | None) -> None:
    if record is None:
        (path / owner.OWNER_FILE).unlink(missing_ok=True)
    else:
        write_atomic(path / owner.OWNER_FILE, record)


def full_name(settings: HostSettings, guest: str, name: str) -> str:
    """dataset@name of one of the guest's snapshots, which must exist."""
    return _existing(_guest(settings, guest), name)[0]


def destroy(settings: HostSettings, guest: str, name: str) -> str:
    g = _guest(settings, guest)
    full, _ = _existing(g, name)
    zfs.destroy(full, recursive=False)
    return full


def clone(settings: HostSettings, source: str, new_name: str) -> Cloned:
    """source is NAME@SNAP; the clone lies beside its origin, in the same root."""
    guest, at, snap = source.partition("@")
    if not at:
        raise UsageError(f"{source[:64]!r}: name the snapshot as NAME@SNAP, like web01@before")
    if re.fullmatch(NAME_PATTERN, new_name) is None:
        raise UsageError(
            f"{new_name[:64]!r}: not a guest name; use a letter, then letters, digits, _ or -"
        )
    g = _guest(settings, guest)
    full, _ = _existing(g, snap)
    target = f"{g.dataset.rpartition('/')[0]}/{new_name}"
    path = g.path.parent / new_name
    if path.exists():
        raise VmbundleError(f"{new_name}: {path} exists already; pick another name")
    lifecycle.refuse_imported(new_name)
    zfs.clone(full, target)
    try:
        # A new guest: no host has run it yet, and it boots afresh.
        (path / owner.OWNER_FILE).unlink(missing_ok=True)
        memory_state.discard(path)
        b = bundle.update_config(path, settings, _as_new_guest(new_name))
        imported = lifecycle.add_instance(b)
    except BaseException:
        # Nothing half-made stays: no clone without its own identity.
        zfs.destroy(target, recursive=False)
        raise
    return Cloned(new_name, path, target, imported.fmri)


def _as_new_guest(name: str) -> Callable[[VmConfig], VmConfig]:
    def change(cfg: VmConfig) -> VmConfig:
        nics = tuple(attrs.evolve(n, mac=None) for n in cfg.nics)
        fresh = attrs.evolve(cfg, name=name, uuid=str(uuid.uuid4()), nics=nics, boot_once=None)
        return with_macs(fresh)

    return change
