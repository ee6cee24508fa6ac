"""The refresh method's work: bring a running guest to its new vm.json where
that can happen live, and record the rest as pending until the next start."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs

from vmbundle.errors import ConfigError
from vmbundle.guest import boot_record, live_changes
from vmbundle.guest.boot_record import BootRecord
from vmbundle.guest.live_changes import MediaChange
from vmbundle.guest.rundir import RunPaths
from vmbundle.qemu import qmp
from vmbundle.vm.model import VmConfig

Say = Callable[[str], None]


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


def refresh(
    run: RunPaths,
    record: BootRecord,
    bundle_path: Path,
    load: Callable[[Path], VmConfig],
    say: Say,
) -> BootRecord:
    """Apply what can change live and write the new record. A bad vm.json changes
    nothing in QEMU; it is recorded as pending and ConfigError is raised."""
    name = run.dir.name
    moved = str(bundle_path) != record.bundle
    pending: list[str] = []
    if moved:
        pending.append(f"bundle: {record.bundle} now, {bundle_path} from the next start")
    try:
        wanted = load(bundle_path)
    except ConfigError as exc:
        first = exc.problems[0] if exc.problems else str(exc)
        boot_record.write(
            run, attrs.evolve(record, pending=(*pending, f"vm.json is invalid: {first}"))
        )
        raise
    if moved:
        # Another bundle's ISOs are not this guest's media: nothing changes live.
        boot_record.write(run, attrs.evolve(record, pending=tuple(pending)))
        return record
    plan = live_changes.plan(record.config, wanted)
    applied = record.config
    for change in plan.media:
        command, arguments = media_command(
            record.profile, change, _iso_path(bundle_path, change.iso)
        )
        try:
            qmp.execute(run, command, arguments, timeout=15.0)
        except Exception:
            boot_record.write(run, attrs.evolve(record, config=applied, pending=plan.pending))
            raise
        applied = attrs.evolve(
            applied,
            cdroms=tuple(
                attrs.evolve(c, iso=change.iso) if c.id == change.cdrom else c
                for c in applied.cdroms
            ),
        )
        what = f"{change.iso} inserted" if change.iso else "ejected"
        say(f"{name}: CD-ROM {change.cdrom}: {what}")
    for line in plan.pending:
        say(f"{name}: pending until the next start: {line}")
    new = attrs.evolve(record, config=plan.applied, pending=plan.pending)
    boot_record.write(run, new)
    return new
