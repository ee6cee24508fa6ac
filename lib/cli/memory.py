"""memory: the host's memory as admission sees it; memory reconcile: settle the
ledger against the guests really running."""

from __future__ import annotations

import argparse
import json
from typing import Any

from vmbundle.cli.common import host_config, size_argument
from vmbundle.errors import VmbundleError
from vmbundle.memory import admission, policy
from vmbundle.memory import ledger as memory_ledger

GiB = policy.GiB


def _gib(n: int) -> str:
    return f"{n / GiB:.2f} GiB"


def cmd_memory(args: argparse.Namespace) -> int:
    host = host_config(args)
    if args.memory_command == "reconcile":
        released, charged = admission.reconcile(host)
        if args.json:
            print(json.dumps({"released": released, "charged": charged}))
            return 0
        for guest in released:
            print(f"{guest}: not running; its charge is released")
        for guest in charged:
            print(f"{guest}: running without a charge; charged now")
        if not released and not charged:
            print("the ledger matches the guests running")
        return 0
    arc_backend = admission.backend(host)
    if arc_backend is None:
        raise VmbundleError(
            "no ARC to manage on this host (admission.backend is none, or no ZFS was found); "
            'set backend = "illumos" or "linux" in the [memory] section of the host configuration'
        )
    state = arc_backend.read()
    ledger = memory_ledger.read(host.run_dir)
    mem = admission.host_memory(host, state, ledger)
    charges = ledger.amounts()
    held = sum(charges.values())
    report: dict[str, Any] = {
        "backend": arc_backend.name,
        "physmem": mem.physmem,
        "reserve": mem.reserve,
        "arc_floor": mem.floor,
        "arc": {
            "baseline": mem.baseline,
            "max": state.c_max,
            "target": state.c,
            "size": state.size,
            "min": state.c_min,
        },
        "guests": charges,
        "headroom": mem.physmem - mem.reserve - mem.floor - held,
    }
    if args.size:
        ram = size_argument(args.size, "--size")
        decision = policy.what_if(mem, charges, ram, args.vcpus, host.overhead_model())
        report["what_if"] = {
            "ram": ram,
            "vcpus": args.vcpus,
            "charge": decision.needed,
            "admitted": decision.admitted,
            "arc_max": decision.arc_max,
            "line": decision.line(f"a {args.size} guest"),
        }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    arc_report = report["arc"]
    lines = [
        f"physical memory  {_gib(mem.physmem)}",
        f"OS reserve       {_gib(mem.reserve)}",
        f"ARC floor        {_gib(mem.floor)}",
        f"ARC baseline     {_gib(arc_report['baseline'])}"
        + ("" if ledger.baseline is not None else " (the ARC maximum now; no guest charged)"),
        f"ARC maximum      {_gib(state.c_max)} (target {_gib(state.c)}, size {_gib(state.size)})",
        f"guests           {_gib(held)}",
    ]
    lines += [f"  {g:<15}{_gib(n)}" for g, n in sorted(charges.items())]
    lines.append(f"headroom         {_gib(report['headroom'])}")
    if "what_if" in report:
        lines.append(report["what_if"]["line"])
    print("\n".join(lines))
    return 0
