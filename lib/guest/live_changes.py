"""What a refresh can change in a running guest, and what must wait for a restart.

Pure: it compares the configuration QEMU runs with (the boot record's) with the
one in vm.json now. An ISO put in, swapped or taken out of an existing drive
changes live through QMP; policies (stop timeout, power-off and crash handling,
autostart, description, boot_once) are read when they are needed, so they take
effect at once; a disk's size is grown live by `vmbundle disk resize`, which
also writes it. Everything else is pending until the next start.
"""

from __future__ import annotations

from typing import Any

import attrs

from vmbundle.units import format_size
from vmbundle.vm import codec
from vmbundle.vm.model import VmConfig

# Read when needed (by the stop method, the controller, the next start), so a
# changed value needs nothing from QEMU.
_READ_WHEN_NEEDED = (
    "description",
    "stop_timeout",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "autostart",
    "boot_once",
)
_SIZES = ("ram", "size")


@attrs.frozen
class MediaChange:
    cdrom: str
    """The CD-ROM's id in vm.json."""
    iso: str | None
    """The ISO as vm.json gives it (relative to the bundle or absolute); None to eject."""


@attrs.frozen
class LivePlan:
    media: tuple[MediaChange, ...]
    pending: tuple[str, ...]
    applied: VmConfig
    """The running configuration once the media changes are made."""


def _show(key: str, value: Any) -> str:
    if key in _SIZES and isinstance(value, int):
        return format_size(value)
    if value is None:
        return "none"
    if isinstance(value, str):
        return value or '""'
    return str(value).lower() if isinstance(value, bool) else str(value)


def _differences(path: str, now: Any, wanted: Any, out: list[str]) -> None:
    if isinstance(now, dict) and isinstance(wanted, dict):
        for key in [*now, *(k for k in wanted if k not in now)]:
            sub = f"{path}.{key}" if path else key
            if key not in wanted:
                out.append(f"{sub}: removed in vm.json, present until the next start")
            elif key not in now:
                out.append(f"{sub}: added in vm.json, from the next start")
            else:
                _differences(sub, now[key], wanted[key], out)
        return
    if isinstance(now, list) and isinstance(wanted, list):
        now_ids, wanted_ids = _by_id(now), _by_id(wanted)
        if now_ids is not None and wanted_ids is not None:
            _differences(path, now_ids, wanted_ids, out)
            return
    if now != wanted:
        key = path.rsplit(".", 1)[-1]
        if isinstance(now, list) or isinstance(wanted, list):
            out.append(f"{path}: changed in vm.json, from the next start")
        else:
            out.append(f"{path}: {_show(key, now)} now, {_show(key, wanted)} from the next start")


def _by_id(items: list[Any]) -> dict[str, Any] | None:
    if all(isinstance(i, dict) and isinstance(i.get("id"), str) for i in items):
        return {i["id"]: i for i in items}
    return None


def plan(running: VmConfig, wanted: VmConfig) -> LivePlan:
    """How to bring a guest running with `running` closer to `wanted` without a restart."""
    wanted_cds = {c.id: c for c in wanted.cdroms}
    media: list[MediaChange] = []
    cdroms = []
    for cd in running.cdroms:
        new = wanted_cds.get(cd.id)
        if new is not None and new.iso != cd.iso and attrs.evolve(new, iso=cd.iso) == cd:
            media.append(MediaChange(cd.id, new.iso))
            cd = new
        cdroms.append(cd)
    wanted_sizes = {d.id: d.size for d in wanted.disks}
    disks = tuple(attrs.evolve(d, size=wanted_sizes.get(d.id, d.size)) for d in running.disks)
    applied = attrs.evolve(
        running,
        cdroms=tuple(cdroms),
        disks=disks,
        **{k: getattr(wanted, k) for k in _READ_WHEN_NEEDED},
    )
    pending: list[str] = []
    _differences("", codec.unstructure(applied), codec.unstructure(wanted), pending)
    return LivePlan(media=tuple(media), pending=tuple(pending), applied=applied)
