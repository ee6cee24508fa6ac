"""The refresh method's work: bring a running guest to its new vm.json where
that can happen live, and record the rest as pending until the next start.

Level-triggered like the controller: each refresh compares the boot record
(what the guest has, as far as vmbundle made it) and QEMU's own list of devices
with vm.json, so a removal the guest finished after an earlier refresh gave up
waiting is found and completed here. Every step that succeeds is written to the
boot record at once; one that fails leaves QEMU as it was and its pending line
says why (vmbundle.guest.hotplug). Memory goes through admission first
(vmbundle.memory.admission.resize): the ARC shrinks before the guest grows, and
a refusal leaves the guest as it was.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import attrs

from vmbundle.errors import ConfigError, VmbundleError
from vmbundle.guest import boot_record, hotplug, live_changes
from vmbundle.guest.boot_record import BootRecord
from vmbundle.guest.live_changes import (
    AddCpus,
    AddDisk,
    AddNic,
    MediaChange,
    RemoveDisk,
    RemoveNic,
    Room,
    SetRam,
    Step,
)
from vmbundle.guest.rundir import RunPaths
from vmbundle.memory import admission
from vmbundle.qemu import qmp
from vmbundle.qemu.qmp import Session
from vmbundle.settings import HostSettings
from vmbundle.units import format_size
from vmbundle.vm.model import VmConfig

Say = Callable[[str], None]
# Time for QMP itself, on top of what a step waits for the guest.
QMP_SECONDS = 15.0


def media_command(
    profile: str, change: MediaChange, iso: Path | None
) -> tuple[str, dict[str, object]]:
    """The QMP command for one change. Modern QEMU names the drive by its device
    id; the illumos KVM fork (0.14) knows only the legacy drive id."""
    if profile == "illumos-kvm":
        drive = f"drive-{change.cdrom}"
        if iso is None:
            return "eject", {"device": drive, "force": True}
        return "change", {"device": drive, "target": str(iso)}
    if iso is None:
        return "eject", {"id": change.cdrom, "force": True}
    return "blockdev-change-medium", {
        "id": change.cdrom,
        "filename": str(iso),
        "format": "raw",
        "read-only-mode": "read-only",
    }


def _iso_path(bundle: Path, iso: str | None) -> Path | None:
    if iso is None:
        return None
    return Path(iso) if iso.startswith("/") else bundle / iso


class _Refresh:
    """One refresh: the record as it stands, written after every step."""

    def __init__(
        self, settings: HostSettings, run: RunPaths, record: BootRecord, bundle: Path, say: Say
    ) -> None:
        self.settings = settings
        self.run = run
        self.name = run.dir.name
        self.record = record
        self.bundle = bundle
        self.say = say
        self.reasons: dict[str, str] = {}

    @property
    def config(self) -> VmConfig:
        return self.record.config

    def done(self, config: VmConfig, line: str) -> None:
        self.record = attrs.evolve(self.record, config=config, live=(*self.record.live, line))
        boot_record.write(self.run, self.record)
        self.say(f"{self.name}: live: {line}")

    def qmp(self, fn: Callable[[Session], object], waits: float = 0.0) -> object:
        return qmp.with_control(self.run, fn, timeout=QMP_SECONDS + waits)

    def media(self, change: MediaChange) -> None:
        command, arguments = media_command(
            self.record.profile, change, _iso_path(self.bundle, change.iso)
        )
        qmp.execute(self.run, command, arguments, timeout=QMP_SECONDS)
        cdroms = tuple(
            attrs.evolve(c, iso=change.iso) if c.id == change.cdrom else c
            for c in self.config.cdroms
        )
        what = f"{change.iso} inserted" if change.iso else "ejected"
        self.done(attrs.evolve(self.config, cdroms=cdroms), f"cdroms.{change.cdrom}: {what}")

    def settle(self) -> None:
        """Take into the record the removals the guest finished since the last refresh."""
        have = self.qmp(hotplug.present)
        assert isinstance(have, set)
        for disk in [d for d in self.config.disks if d.id not in have]:
            self.qmp(functools.partial(hotplug.remove_disk, disk=disk, timeout=0))
            self.done(
                live_changes.apply(self.config, RemoveDisk(disk)),
                f"disks.{disk.id}: detached (the guest let go of it after an earlier refresh)",
            )
        for nic in [n for n in self.config.nics if n.id not in have]:
            self.qmp(functools.partial(hotplug.remove_nic, nic=nic, timeout=0))
            self.done(
                live_changes.apply(self.config, RemoveNic(nic)),
                f"nics.{nic.id}: detached (the guest let go of it after an earlier refresh)",
            )

    def step(self, step: Step, wanted: VmConfig) -> None:
        cap = self.record.capacity
        assert cap is not None
        timeout = float(wanted.unplug_timeout)
        after = live_changes.apply(self.config, step)
        if isinstance(step, AddDisk):
            image = self.bundle / step.disk.file
            scsi = [d.id for d in self.config.disks if d.bus == "scsi"]
            scsi += [c.id for c in self.config.cdroms if c.bus == "scsi"]
            self.qmp(lambda s: hotplug.add_disk(s, image, step.disk, cap, scsi))
            self.done(after, f"disks.{step.disk.id}: attached ({step.disk.bus}, {step.disk.file})")
        elif isinstance(step, RemoveDisk):
            self.qmp(lambda s: hotplug.remove_disk(s, step.disk, timeout), waits=timeout)
            self.done(after, f"disks.{step.disk.id}: detached")
        elif isinstance(step, AddNic):
            self.qmp(lambda s: hotplug.add_nic(s, step.nic, cap))
            self.done(after, f"nics.{step.nic.id}: attached ({step.nic.model}, {step.nic.mac})")
        elif isinstance(step, RemoveNic):
            self.qmp(lambda s: hotplug.remove_nic(s, step.nic, timeout), waits=timeout)
            self.done(after, f"nics.{step.nic.id}: detached")
        elif isinstance(step, AddCpus):
            self.cpus(step)
        else:
            self.ram(step, timeout)

    def cpus(self, step: AddCpus) -> None:
        # A vCPU costs QEMU memory (the overhead model), so it is admitted first.
        admission.resize(
            self.settings, self.name, attrs.evolve(self.config, vcpus=step.wanted), self.say
        )
        try:
            self.qmp(lambda s: hotplug.add_cpus(s, step.wanted))
        except hotplug.CpusNotAdded as exc:
            if exc.plugged != step.now:
                self.done(
                    attrs.evolve(self.config, vcpus=exc.plugged),
                    f"vcpus: {step.now} -> {exc.plugged}",
                )
            admission.resize(self.settings, self.name, self.config, self.say)
            raise
        except BaseException:
            admission.resize(self.settings, self.name, self.config, self.say)
            raise
        self.done(
            attrs.evolve(self.config, vcpus=step.wanted), f"vcpus: {step.now} -> {step.wanted}"
        )

    def ram(self, step: SetRam, timeout: float) -> None:
        plugged = self.record.plugged_ram + step.dimm
        if step.wanted < step.now:
            self.qmp(lambda s: hotplug.set_balloon(s, step.wanted, timeout), waits=timeout)
            self.done(
                attrs.evolve(self.config, ram=step.wanted),
                f"ram: {format_size(step.now)} -> {format_size(step.wanted)} (balloon)",
            )
            admission.resize(self.settings, self.name, self.config, self.say)
            return
        # Charged for all it may hold until the balloon has taken a rounded-up DIMM's rest.
        holds = max(step.wanted, plugged) if step.dimm else step.wanted
        admission.resize(self.settings, self.name, attrs.evolve(self.config, ram=holds), self.say)
        how = "balloon"
        if step.dimm:
            number = len(self.record.dimms)
            try:
                device = self.qmp(lambda s: hotplug.plug_dimm(s, number, step.dimm))
            except BaseException:
                admission.resize(self.settings, self.name, self.config, self.say)
                raise
            how = f"a {format_size(step.dimm)} DIMM"
            self.record = attrs.evolve(
                self.record, dimms=(*self.record.dimms, (str(device), step.dimm))
            )
            boot_record.write(self.run, self.record)
        try:
            self.qmp(lambda s: hotplug.set_balloon(s, step.wanted, timeout), waits=timeout)
        except BaseException:
            if step.dimm:
                # The DIMM is in and cannot come out without the guest: it holds it all.
                self.done(
                    attrs.evolve(self.config, ram=plugged),
                    f"ram: {format_size(step.now)} -> {format_size(plugged)} ({how})",
                )
            else:
                admission.resize(self.settings, self.name, self.config, self.say)
            raise
        self.done(
            attrs.evolve(self.config, ram=step.wanted),
            f"ram: {format_size(step.now)} -> {format_size(step.wanted)} ({how})",
        )
        if holds != step.wanted:
            admission.resize(self.settings, self.name, self.config, self.say)


def refresh(
    settings: HostSettings,
    run: RunPaths,
    record: BootRecord,
    bundle_path: Path,
    load: Callable[[Path], VmConfig],
    say: Say,
) -> BootRecord:
    """Apply what can change live and write the new record. A bad vm.json changes
    nothing in QEMU; it is recorded as pending and ConfigError is raised."""
    moved = str(bundle_path) != record.bundle
    pending: list[str] = []
    if moved:
        pending.append(f"bundle: {record.bundle} now, {bundle_path} from the next start")
    finished = record.refreshes + 1
    try:
        wanted = load(bundle_path)
    except ConfigError as exc:
        first = exc.problems[0] if exc.problems else str(exc)
        boot_record.write(
            run,
            attrs.evolve(
                record, pending=(*pending, f"vm.json is invalid: {first}"), refreshes=finished
            ),
        )
        raise
    if moved:
        # Another bundle's ISOs and disks are not this guest's: nothing changes live.
        new = attrs.evolve(record, pending=tuple(pending), refreshes=finished)
        boot_record.write(run, new)
        return new
    work = _Refresh(settings, run, record, bundle_path, say)
    try:
        _apply(work, wanted)
    finally:
        # Whatever happened, the refresh is over: a caller waiting on it goes on.
        lines = live_changes.pending_lines(work.config, wanted, work.reasons)
        new = attrs.evolve(work.record, pending=lines, refreshes=finished)
        boot_record.write(run, new)
    for line in lines:
        say(f"{work.name}: pending until the next start: {line}")
    return new


def _apply(work: _Refresh, wanted: VmConfig) -> None:
    record = work.record
    if record.profile == "modern" and record.capacity is not None:
        work.settle()
    room = Room(
        record.profile, work.record.capacity, work.record.plugged_ram, len(work.record.dimms)
    )
    plan = live_changes.plan(work.config, wanted, room)
    work.reasons.update(plan.reasons)
    # Policies (timeouts, power-off handling...) and disk sizes need nothing from QEMU.
    base = attrs.evolve(plan.base, cdroms=work.config.cdroms)
    work.record = attrs.evolve(work.record, config=base)
    for change in plan.media:
        try:
            work.media(change)
        except VmbundleError as exc:
            work.reasons[f"cdroms.{change.cdrom}"] = _why(work, exc)
    for step in plan.steps:
        try:
            work.step(step, wanted)
        except VmbundleError as exc:
            work.reasons[live_changes.path_of(step)] = _why(work, exc)


def _why(work: _Refresh, exc: VmbundleError) -> str:
    # "web01: QMP device_add: ..." -> what follows the guest's name
    return str(exc).removeprefix(f"{work.name}: ")
