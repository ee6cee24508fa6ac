"""What one boot of a guest started with, kept in its run directory (state.json).

The start method writes it once QEMU runs; the refresh method updates it with the
changes it made live and the ones left for the next start; the stop method, the
CLI and the controller read it. It dies with the run directory, so it never
outlives the boot it describes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs

from vmbundle.atomic import write_atomic
from vmbundle.guest.rundir import RunPaths
from vmbundle.qemu.capacity import Capacity
from vmbundle.vm import codec
from vmbundle.vm.model import VmConfig


@attrs.frozen
class BootRecord:
    bundle: str
    """The bundle directory the guest started from."""
    config: VmConfig
    """The configuration QEMU runs with now: as started, plus what refresh changed live."""
    profile: str
    """The QEMU capability profile (modern or illumos-kvm), which decides the QMP commands."""
    qemu_pid: int
    started: float
    """When QMP first reported the guest running (seconds since the epoch)."""
    fmri: str | None = None
    """The SMF instance; None for `vmbundle run`."""
    display: int | None = None
    pending: tuple[str, ...] = ()
    """Changes in vm.json that wait for the next start, one line each (with why)."""
    capacity: Capacity | None = None
    """How far this boot can grow live; None: nothing but media changes live."""
    boot_ram: int | None = None
    """The memory QEMU started with (-m size); DIMMs come on top of it."""
    dimms: tuple[tuple[str, int], ...] = ()
    """The DIMMs plugged live: (device id, bytes), oldest first."""
    live: tuple[str, ...] = ()
    """The changes refreshes made live in this boot, one line each, oldest first."""
    refreshes: int = 0
    """How many refreshes have finished, so a caller can wait for the one it asked for."""
    display_auth: str | None = None
    """How the desktop display is protected, as `status` says it; None: no display."""
    display_password: str | None = None
    """Where the display's password comes from: "guest", "generated", or None for none."""

    @property
    def plugged_ram(self) -> int:
        """The memory the guest has now, before the balloon: the boot's plus the DIMMs'."""
        boot = self.boot_ram if self.boot_ram is not None else self.config.ram
        return boot + sum(size for _, size in self.dimms)

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {
            "bundle": self.bundle,
            "config": codec.unstructure(self.config),
            "profile": self.profile,
            "qemu_pid": self.qemu_pid,
            "started": self.started,
            "fmri": self.fmri,
            "display": self.display,
            "pending": list(self.pending),
            "capacity": None if self.capacity is None else self.capacity.to_json(),
            "boot_ram": self.boot_ram,
            "dimms": [list(d) for d in self.dimms],
            "live": list(self.live),
            "refreshes": self.refreshes,
            "display_auth": self.display_auth,
            "display_password": self.display_password,
        }
        return (json.dumps(doc, indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> BootRecord:
        doc = json.loads(data)
        return cls(
            bundle=str(doc["bundle"]),
            config=codec.structure(doc["config"]),
            profile=str(doc["profile"]),
            qemu_pid=int(doc["qemu_pid"]),
            started=float(doc["started"]),
            fmri=doc.get("fmri"),
            display=doc.get("display"),
            pending=tuple(str(p) for p in doc.get("pending", ())),
            capacity=None if doc.get("capacity") is None else Capacity.from_json(doc["capacity"]),
            boot_ram=None if doc.get("boot_ram") is None else int(doc["boot_ram"]),
            dimms=tuple((str(i), int(n)) for i, n in doc.get("dimms", ())),
            live=tuple(str(x) for x in doc.get("live", ())),
            refreshes=int(doc.get("refreshes", 0)),
            display_auth=doc.get("display_auth"),
            display_password=doc.get("display_password"),
        )


def write(run: RunPaths, record: BootRecord) -> None:
    write_atomic(run.state, record.to_json(), mode=0o600, durable=False)


def read(run: RunPaths) -> BootRecord | None:
    """The record of the guest's current boot; None when there is none (not
    started, or a run directory from before a crash that lost it)."""
    try:
        return BootRecord.from_json(Path(run.state).read_bytes())
    except (OSError, ValueError, KeyError, TypeError, codec.ConfigProblems):
        return None
