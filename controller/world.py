"""What is: one look at SMF, the run directories and the bundle roots.

Everything the controller decides from is read here, each pass anew, so nothing it
holds can drift from the host. Blocking (it runs tools): the loop calls it in a
thread.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import attrs

from vmbundle.adapters import smf
from vmbundle.guest.boot_record import BootRecord
from vmbundle.guest.rundir import RunPaths
from vmbundle.ops import arrivals
from vmbundle.ops.status import running_record
from vmbundle.settings import HostSettings
from vmbundle.vm.bundle import CONFIG_FILE


@attrs.frozen
class GuestSeen:
    name: str
    fmri: str
    state: str
    next_state: str
    bundle: str | None
    bundle_present: bool
    """Its bundle directory still holds a vm.json."""
    record: BootRecord | None
    """The boot record, only while that boot's QEMU is alive."""


@attrs.frozen
class World:
    guests: Mapping[str, GuestSeen]
    survey: arrivals.Survey | None
    """None when the bundle roots were not looked at in this pass."""


def live_record(run: RunPaths) -> BootRecord | None:
    """ops.status.running_record, with a damaged record counted as none: one bad
    run directory must not stop the pass."""
    try:
        return running_record(run)
    except (OSError, ValueError):
        return None


def guests(
    settings: HostSettings, states: Mapping[str, tuple[str, str]], paths: Mapping[str, str]
) -> dict[str, GuestSeen]:
    out: dict[str, GuestSeen] = {}
    for fmri, (state, next_state) in states.items():
        name = smf.instance_name(fmri)
        path = paths.get(fmri)
        out[name] = GuestSeen(
            name=name,
            fmri=fmri,
            state=state,
            next_state=next_state,
            bundle=path,
            bundle_present=bool(path) and os.path.isfile(Path(str(path)) / CONFIG_FILE),
            record=live_record(RunPaths.for_guest(settings.run_dir, name)),
        )
    return out
