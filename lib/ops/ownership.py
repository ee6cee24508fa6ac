"""Which host is a guest's home: `vmbundle promote` makes it this host (a replica
received from another host, or with take_over a guest whose host died without
releasing it), and the owner shown beside each guest. The record itself and the
decisions are vmbundle.vm.owner's."""

from __future__ import annotations

from pathlib import Path

import attrs

from vmbundle.adapters import zfs
from vmbundle.settings import HostSettings
from vmbundle.vm import bundle, owner, storage
from vmbundle.vm.owner import Owner


@attrs.frozen
class Promoted:
    name: str
    was: Owner | None
    now: Owner
    made_writable: str | None  # the dataset set readonly=off, if one was read-only


def promote(settings: HostSettings, guest: str, *, take_over: bool) -> Promoted:
    """Take the guest for this host, stopped (released): the next start here runs it.
    Refused (changing nothing) while another host holds it, unless take_over."""
    return promote_bundle(settings, bundle.locate(settings, guest), take_over=take_over)


def check_start(settings: HostSettings, path: Path, *, take_over: bool) -> None:
    """Before a start is asked of SMF: refuse one the start method would refuse
    (so the instance does not go to maintenance for it), or take the guest over."""
    if take_over:
        promote_bundle(settings, path, take_over=True)
        return
    owner.check_start(path, path.name)


def promote_bundle(settings: HostSettings, path: Path, *, take_over: bool) -> Promoted:
    name = path.name
    me = owner.this_host()
    try:
        was = owner.read(path, name)
    except owner.BadOwnerRecord:
        if not take_over:
            raise
        was = None
    # Decided before anything changes; take() decides again under the lock.
    owner.claim(name, was, me, owner.now(), promote=True, take_over=take_over)
    dataset = storage.bundle_dataset(path)
    writable = None
    if dataset is not None and zfs.readonly(dataset):
        zfs.make_writable(dataset)
        writable = dataset
    if was is not None and not owner.is_foreign(was, me) and writable is None:
        return Promoted(name, was, was, None)  # this host's already
    now = owner.take(settings.run_dir, path, name, me, promote=True, take_over=take_over)
    return Promoted(name, was, now, writable)


def home_of(path: Path, me: owner.Host | None) -> str:
    """How `list` shows whose guest a bundle is: "" for this host's (or no record),
    "replica of NODE" when another host released it, "held by NODE" while another
    host holds it, "owner.json unreadable" for a bad record."""
    try:
        record = owner.read(path, path.name)
    except owner.BadOwnerRecord:
        return "owner.json unreadable"
    if record is None or me is None or not owner.is_foreign(record, me):
        return ""
    return f"replica of {record.host.node}" if record.released else f"held by {record.host.node}"
