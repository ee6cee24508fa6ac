"""set, iso attach|detach: print what the edit did (vmbundle.ops.edit does it)."""

from __future__ import annotations

import argparse

from vmbundle.cli.common import host_settings
from vmbundle.ops import edit


def cmd_set(args: argparse.Namespace) -> int:
    done = edit.set_keys(host_settings(args), args.guest, args.assignments)
    if done.refreshed:
        print(
            f"{done.name}: saved; the running guest takes what it can now "
            f"(vmbundle status {done.name} lists what waits for its next start)"
        )
    else:
        print(f"{done.name}: saved")
    return 0


def cmd_iso(args: argparse.Namespace) -> int:
    settings = host_settings(args)
    if args.iso_command == "attach":
        done = edit.iso_attach(settings, args.guest, args.iso, args.drive)
    else:
        done = edit.iso_detach(settings, args.guest, args.drive)
    if done.refreshed:
        print(
            f"{done.name}: saved; changing the running guest's drive (svcadm refresh {done.refreshed})"
        )
    else:
        print(f"{done.name}: saved")
    return 0
