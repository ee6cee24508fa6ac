"""memory and memory reconcile: print what vmbundle.ops.memory finds."""

from __future__ import annotations

import argparse
import json

from vmbundle.cli.common import host_settings, size_argument
from vmbundle.memory.policy import GiB
from vmbundle.ops import memory


def _gib(n: int) -> str:
    return f"{n / GiB:.2f} GiB"


def _reconcile(args: argparse.Namespace) -> int:
    released, charged = memory.reconcile(host_settings(args))
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


def cmd_memory(args: argparse.Namespace) -> int:
    if args.memory_command == "reconcile":
        return _reconcile(args)
    ram = size_argument(args.size, "--size") if args.size else None
    report = memory.report(host_settings(args), ram, args.vcpus)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    arc = report["arc"]
    charges = report["guests"]
    lines = [
        f"physical memory  {_gib(report['physmem'])}",
        f"OS reserve       {_gib(report['reserve'])}",
        f"ARC floor        {_gib(report['arc_floor'])}",
        f"ARC baseline     {_gib(arc['baseline'])}"
        + ("" if arc["baseline_saved"] else " (the ARC maximum now; no guest charged)"),
        f"ARC maximum      {_gib(arc['max'])} (target {_gib(arc['target'])}, size {_gib(arc['size'])})",
        f"guests           {_gib(sum(charges.values()))}",
    ]
    lines += [f"  {g:<15}{_gib(n)}" for g, n in sorted(charges.items())]
    lines.append(f"headroom         {_gib(report['headroom'])}")
    if "what_if" in report:
        lines.append(report["what_if"]["line"])
    print("\n".join(lines))
    return 0
