"""nic add and nic remove: print what the change did (vmbundle.ops.nics does it)."""

from __future__ import annotations

import argparse

from vmbundle.cli.common import host_settings
from vmbundle.cli.create import parse_nic
from vmbundle.cli.edit import report_refresh
from vmbundle.ops import nics


def cmd_nic(args: argparse.Namespace) -> int:
    settings = host_settings(args)
    if args.nic_command == "remove":
        done = nics.remove(settings, args.guest, args.nic)
        report_refresh(done.name, f"removed {done.nic.id} from vm.json", done.refreshed)
        return 0
    spec = parse_nic(f"{args.backend},model={args.model}", 0)
    done = nics.add(settings, args.guest, spec.backend, model=spec.model, mac=args.mac)
    n = done.nic
    report_refresh(done.name, f"added {n.id} ({n.model}, {n.mac})", done.refreshed)
    return 0
