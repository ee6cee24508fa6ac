"""Changing vm.json: set, iso attach and detach. Each change is made under the
bundle's lock and checked as a whole before the file is replaced (atomically),
so a bad edit, or a full or read-only file system, changes nothing; a guest
running under SMF from that bundle is refreshed, so an ISO goes in its drive now
and the rest shows as pending."""

from __future__ import annotations

import time
from pathlib import Path

import attrs

from vmbundle.adapters import smf
from vmbundle.errors import ConfigError, UsageError
from vmbundle.guest import boot_record
from vmbundle.guest.process import running_pid
from vmbundle.guest.rundir import RunPaths
from vmbundle.settings import HostSettings
from vmbundle.vm import bundle, codec
from vmbundle.vm.bundle import Bundle, Document
from vmbundle.vm.fields import Invalid
from vmbundle.vm.model import Cdrom, VmConfig

# The refresh method's own timeout in the manifest (manifests/vm.xml).
REFRESH_WAIT_SECONDS = 900.0


@attrs.frozen
class Refreshed:
    """What the refresh asked for a running guest did, as its boot record tells."""

    fmri: str
    finished: bool
    """False: the guest stopped, or the refresh did not end within its timeout."""
    live: tuple[str, ...] = ()
    """The changes this refresh made live."""
    pending: tuple[str, ...] = ()
    """Everything that still waits for the next start, with why."""


@attrs.frozen
class Edited:
    bundle: Bundle
    refreshed: Refreshed | None
    """The refresh of the guest running from this bundle under SMF; None if none runs."""

    @property
    def name(self) -> str:
        return self.bundle.name


def refresh_if_running(settings: HostSettings, b: Bundle) -> Refreshed | None:
    """Ask SMF to refresh the guest when its instance runs from this bundle, and
    wait for the refresh method to finish; None when the guest does not run
    under SMF from b."""
    run = RunPaths.for_guest(settings.run_dir, b.name)
    record = boot_record.read(run)
    if record is None or record.fmri is None or record.bundle != str(b.path):
        return None
    if running_pid(run) is None:
        return None
    fmri, asked, seen = record.fmri, record.refreshes, len(record.live)
    smf.svcadm("refresh", fmri)
    deadline = time.monotonic() + REFRESH_WAIT_SECONDS
    while time.monotonic() < deadline:
        now = boot_record.read(run)
        if now is None or running_pid(run) is None:
            break
        if now.refreshes > asked:
            return Refreshed(fmri, True, now.live[seen:], now.pending)
        time.sleep(0.1)
    return Refreshed(fmri, False)


def _edited(settings: HostSettings, b: Bundle) -> Edited:
    return Edited(b, refresh_if_running(settings, b))


def set_keys(settings: HostSettings, guest: str, assignments: list[str]) -> Edited:
    """Set vm.json keys from KEY=VALUE texts (`ram=4G`, `disks.disk0.cache=none`)."""
    path = bundle.locate(settings, guest)
    pairs = []
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep or not key:
            raise UsageError(f"{path.name}: {assignment!r}: write KEY=VALUE, like ram=4G")
        pairs.append((key, value))

    def change(doc: Document) -> Document:
        # The file may be invalid now: set is how an operator repairs it, so it
        # starts from the JSON document rather than from a checked config.
        for key, value in pairs:
            try:
                doc = codec.set_key(doc, key, value)
            except Invalid as exc:
                raise ConfigError([f"{path.name}: {exc}"]) from None
        return doc

    return _edited(settings, bundle.update(path, settings, change))


def _find_cdrom(cfg: VmConfig, drive: str | None) -> int | None:
    for i, cd in enumerate(cfg.cdroms):
        if drive is None or cd.id == drive:
            return i
    return None


def _with_iso(cfg: VmConfig, index: int, iso: str | None) -> VmConfig:
    cdroms = list(cfg.cdroms)
    cdroms[index] = attrs.evolve(cdroms[index], iso=iso)
    return attrs.evolve(cfg, cdroms=tuple(cdroms))


def iso_attach(settings: HostSettings, guest: str, iso: str, drive: str | None) -> Edited:
    """Put an ISO in a CD-ROM drive (the first, or drive); a drive is added when
    the guest has none of that id."""
    path = bundle.locate(settings, guest)
    value = iso if iso.startswith("/") else str(Path(iso).absolute())
    if Path(value).is_relative_to(path):
        value = str(Path(value).relative_to(path))  # an ISO directory's file stays absolute

    def change(cfg: VmConfig) -> VmConfig:
        index = _find_cdrom(cfg, drive)
        if index is not None:
            return _with_iso(cfg, index, value)
        if drive is not None and drive in cfg.device_ids():
            raise UsageError(f"{path.name}: {drive} is not a CD-ROM drive")
        new = Cdrom(id=drive or cfg.free_device_id("cd"), iso=value)
        return attrs.evolve(cfg, cdroms=(*cfg.cdroms, new))

    return _edited(settings, bundle.update_config(path, settings, change))


def iso_detach(settings: HostSettings, guest: str, drive: str | None) -> Edited:
    """Take the ISO out of a CD-ROM drive (the first, or drive)."""
    path = bundle.locate(settings, guest)

    def change(cfg: VmConfig) -> VmConfig:
        index = _find_cdrom(cfg, drive)
        if index is None:
            raise UsageError(f"{path.name}: no CD-ROM drive {drive or ''}".rstrip())
        return _with_iso(cfg, index, None)

    return _edited(settings, bundle.update_config(path, settings, change))
