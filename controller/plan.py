"""What should be, against what is: the actions of one reconcile pass. Pure.

Given the world (SMF instances, live boots, the bundle roots' survey) and the QMP
sessions the controller holds, it lists what to do so that:
- every importable bundle has a disabled instance (never started by arriving);
- an instance whose bundle is gone goes, but only when the guest is disabled and
  the root the bundle lay in is still there (a pool that failed to import must
  never make the controller forget its guests);
- every guest with a live boot has one session, for that boot, and no other
  guest has one;
- every problem is reported once, while it lasts.
Running the same plan twice does nothing the second time.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import attrs

from vmbundle.controller.world import GuestSeen, World
from vmbundle.ops import arrivals

BootKey = tuple[int, float]
"""One boot of a guest: its QEMU pid and when it started."""

# SMF states in which the guest's QEMU belongs to SMF and is expected to run.
_RUNNING_STATES = ("online", "degraded")


@attrs.frozen
class Import:
    name: str
    path: Path


@attrs.frozen
class Remove:
    name: str
    fmri: str
    bundle: str


@attrs.frozen
class Attach:
    name: str
    key: BootKey


@attrs.frozen
class Detach:
    name: str


Action = Import | Remove | Attach | Detach


def boot_key(g: GuestSeen) -> BootKey | None:
    if g.record is None or g.state not in _RUNNING_STATES:
        return None
    return (g.record.qemu_pid, g.record.started)


def sessions(world: World, attached: Mapping[str, BootKey]) -> list[Action]:
    out: list[Action] = []
    wanted = {name: key for name, g in world.guests.items() if (key := boot_key(g)) is not None}
    for name, key in sorted(attached.items()):
        if wanted.get(name) != key:
            out.append(Detach(name))
    for name, key in sorted(wanted.items()):
        if attached.get(name) != key:
            out.append(Attach(name, key))
    return out


def _root_available(survey: arrivals.Survey, bundle: str) -> bool:
    root = survey.root_of(Path(bundle))
    return root is not None and root.available


def problems(world: World) -> dict[str, tuple[str, ...]]:
    """Bundle path (or guest name) -> the lines that say what is wrong with it."""
    out: dict[str, tuple[str, ...]] = {}
    survey = world.survey
    if survey is not None:
        for a in survey.arrivals:
            if a.lines:
                out[str(a.path)] = a.lines
    for g in world.guests.values():
        if g.bundle is None or g.bundle_present:
            continue
        if g.state != "disabled":
            out[g.name] = (
                f"{g.name}: its bundle {g.bundle} is gone while the guest is {g.state}; "
                f"left as it is; once it is stopped, forget it: vmbundle forget {g.name}",
            )
        elif survey is not None and not _root_available(survey, g.bundle):
            out[g.name] = (
                f"{g.name}: its bundle {g.bundle} is not there and neither is its bundle "
                "root; kept, in case the pool comes back (forget it: vmbundle forget "
                f"{g.name})",
            )
    return out


def bundles(world: World) -> list[Action]:
    survey = world.survey
    if survey is None:
        return []
    out: list[Action] = []
    names = set(world.guests)
    for a in survey.arrivals:
        # Two bundles of one new name: the first by path wins; the other is
        # "taken" on the next pass.
        if a.verdict == "importable" and a.name not in names:
            out.append(Import(a.name, a.path))
            names.add(a.name)
    for g in world.guests.values():
        if (
            g.bundle is not None
            and not g.bundle_present
            and g.state == "disabled"
            and _root_available(survey, g.bundle)
        ):
            out.append(Remove(g.name, g.fmri, g.bundle))
    return out


def plan(world: World, attached: Mapping[str, BootKey]) -> list[Action]:
    return [*bundles(world), *sessions(world, attached)]
