"""memory: the host's memory as admission sees it, and what a guest of some size
would do; memory reconcile: settle the ledger against the guests really running."""

from __future__ import annotations

from typing import Any

from vmbundle.errors import VmbundleError
from vmbundle.memory import admission, policy
from vmbundle.memory import ledger as memory_ledger
from vmbundle.settings import HostSettings
from vmbundle.units import format_size


class NoArc(VmbundleError):
    """The host has no ARC to manage."""


def report(settings: HostSettings, ram: int | None = None, vcpus: int = 1) -> dict[str, Any]:
    """The numbers `vmbundle memory --json` prints; with ram, what a guest of
    that size would do ("what_if")."""
    arc_backend = admission.backend(settings)
    if arc_backend is None:
        raise NoArc(
            "no ARC to manage on this host (memory.backend is none, or no ZFS was found); "
            'set backend = "illumos" or "linux" in the [memory] section of the host configuration'
        )
    arc_state = arc_backend.read()
    ledger = memory_ledger.read(settings.run_dir)
    mem = admission.host_memory(settings, arc_state, ledger)
    charges = ledger.amounts()
    held = sum(charges.values())
    out: dict[str, Any] = {
        "backend": arc_backend.name,
        "physmem": mem.physmem,
        "reserve": mem.reserve,
        "arc_floor": mem.floor,
        "arc": {
            "baseline": mem.baseline,
            "baseline_saved": ledger.baseline is not None,
            "max": arc_state.c_max,
            "target": arc_state.c,
            "size": arc_state.size,
            "min": arc_state.c_min,
        },
        "guests": charges,
        "headroom": mem.physmem - mem.reserve - mem.floor - held,
    }
    if ram is not None:
        decision = policy.what_if(mem, charges, ram, vcpus, settings.overhead_model())
        out["what_if"] = {
            "ram": ram,
            "vcpus": vcpus,
            "charge": decision.needed,
            "admitted": decision.admitted,
            "arc_max": decision.arc_max,
            "line": decision.line(f"a {format_size(ram)} guest"),
        }
    return out


def reconcile(settings: HostSettings) -> tuple[list[str], list[str]]:
    """(the guests whose charges were released, the running guests charged now)."""
    return admission.reconcile(settings)
