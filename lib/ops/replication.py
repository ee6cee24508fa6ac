"""A guest as a ZFS stream: `vmbundle send` writes one (full, or incremental from a
snapshot the other side has), `vmbundle recv` reads one into a bundle root. ZFS is
the replication engine: a bundle received by plain `zfs recv` (syncoid, zrepl, the
appliance's own replication) is imported by the controller just the same.
"""

from __future__ import annotations

import attrs

from vmbundle.adapters import zfs
from vmbundle.errors import UsageError, VmbundleError
from vmbundle.ops import snapshots
from vmbundle.service.controller import nudge
from vmbundle.settings import HostSettings
from vmbundle.vm import storage


@attrs.frozen
class Sent:
    snapshot: str
    incremental_from: str | None
    paused: float | None  # seconds a running guest was paused for a new snapshot


def send(
    settings: HostSettings,
    guest: str,
    out_fd: int,
    *,
    from_snapshot: str | None,
    to_snapshot: str | None,
) -> Sent:
    """Stream the guest at to_snapshot (default: a new consistent snapshot, so a
    running guest's disks agree) to out_fd."""
    if to_snapshot is None:
        taken = snapshots.take(settings, guest, None, consistent=True)
        full, paused = taken.snapshot, taken.paused
    else:
        full, paused = snapshots.full_name(settings, guest, to_snapshot), None
    base = None if from_snapshot is None else snapshots.full_name(settings, guest, from_snapshot)
    zfs.send(full, out_fd, incremental_from=base)
    return Sent(full, base, paused)


def receive(settings: HostSettings, root: str | None, in_fd: int, *, force: bool) -> str:
    """Read a stream into root (default: the first configured bundle root), which must
    be a ZFS dataset; the controller is nudged to import what arrived."""
    spec = root or (settings.bundle_roots[0] if settings.bundle_roots else None)
    if spec is None:
        raise UsageError("no bundle root configured; name one: vmbundle recv ROOT")
    found = storage.resolve_root(spec)
    if found.dataset is None:
        raise VmbundleError(
            f"bundle root {spec}: a plain directory, not a ZFS dataset, so it cannot "
            "receive a ZFS stream; name a ZFS root: vmbundle recv ROOT"
        )
    received = zfs.receive(found.dataset, in_fd, force=force)
    nudge(settings.run_dir, received.partition("@")[0].rpartition("/")[2])
    return received
