"""Commands that change vm.json: set, iso attach|detach. Each change is checked as a
whole before the file is replaced (atomically), so a bad edit changes nothing."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import attrs

from vmbundle.cli.common import host_config, load_guest, next_device_id
from vmbundle.errors import ConfigError, UsageError
from vmbundle.settings import HostSettings
from vmbundle.vm import bundle, codec
from vmbundle.vm.bundle import Bundle
from vmbundle.vm.fields import Invalid
from vmbundle.vm.model import Cdrom, VmConfig


def store(b: Bundle, cfg: VmConfig, host: HostSettings) -> Bundle:
    """Check cfg as `validate` would, then write it; ConfigError leaves vm.json as it was."""
    doc = codec.unstructure(cfg)
    return store_document(b.path, doc, host)


def store_document(path: Path, doc: dict[str, Any], host: HostSettings) -> Bundle:
    cfg = bundle.check_document(doc, path, host)
    bundle.save(path, cfg)
    return Bundle(path, cfg)


def refresh_if_running(b: Bundle, host: HostSettings) -> str | None:
    """Ask SMF to refresh the guest when its instance runs from this bundle, so an
    ISO change goes in the drive now and the rest shows as pending; the FMRI
    refreshed, or None when the guest does not run under SMF from b."""
    from vmbundle.adapters import smf
    from vmbundle.guest import boot_record
    from vmbundle.guest.process import running_pid
    from vmbundle.guest.rundir import RunPaths

    run = RunPaths.for_guest(host.run_dir, b.name)
    record = boot_record.read(run)
    if record is None or record.fmri is None or record.bundle != str(b.path):
        return None
    if running_pid(run) is None:
        return None
    smf.svcadm("refresh", record.fmri)
    return record.fmri


def cmd_set(args: argparse.Namespace) -> int:
    host = host_config(args)
    path = bundle.locate(host, args.guest)
    # The file may be invalid now: set is how an operator repairs it, so start
    # from the JSON document rather than from a checked codec.
    doc = bundle.read_document(path)
    for assignment in args.assignments:
        key, sep, value = assignment.partition("=")
        if not sep or not key:
            raise UsageError(f"{path.name}: {assignment!r}: write KEY=VALUE, like ram=4G")
        try:
            doc = codec.set_key(doc, key, value)
        except Invalid as exc:
            raise ConfigError([f"{path.name}: {exc}"]) from None
    b = store_document(path, doc, host)
    if refresh_if_running(b, host):
        print(
            f"{b.name}: saved; the running guest takes what it can now "
            f"(vmbundle status {b.name} lists what waits for its next start)"
        )
    else:
        print(f"{b.name}: saved")
    return 0


def _find_cdrom(cfg: VmConfig, drive: str | None) -> int | None:
    for i, cd in enumerate(cfg.cdroms):
        if drive is None or cd.id == drive:
            return i
    return None


def cmd_iso(args: argparse.Namespace) -> int:
    host = host_config(args)
    b = load_guest(args, host)
    cfg = b.config
    index = _find_cdrom(cfg, args.drive)
    if args.iso_command == "attach":
        iso = args.iso if args.iso.startswith("/") else str(Path(args.iso).absolute())
        if Path(iso).is_relative_to(b.path):
            iso = str(Path(iso).relative_to(b.path))  # an ISO directory's file stays absolute
        if index is None:
            if args.drive is not None and args.drive in cfg.device_ids():
                raise UsageError(f"{b.name}: {args.drive} is not a CD-ROM drive")
            new = Cdrom(id=args.drive or next_device_id(cfg, "cd"), iso=iso)
            cdroms = (*cfg.cdroms, new)
        else:
            cdroms = tuple(
                attrs.evolve(cd, iso=iso) if i == index else cd for i, cd in enumerate(cfg.cdroms)
            )
    else:
        if index is None:
            raise UsageError(f"{b.name}: no CD-ROM drive {args.drive or ''}".rstrip())
        cdroms = tuple(
            attrs.evolve(cd, iso=None) if i == index else cd for i, cd in enumerate(cfg.cdroms)
        )
    b = store(b, attrs.evolve(cfg, cdroms=cdroms), host)
    fmri = refresh_if_running(b, host)
    if fmri:
        print(f"{b.name}: saved; changing the running guest's drive (svcadm refresh {fmri})")
    else:
        print(f"{b.name}: saved")
    return 0
