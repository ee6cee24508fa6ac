"""set, iso attach|detach: print what the edit did (vmbundle.ops.edit does it)."""

from __future__ import annotations

import argparse

from vmbundle.cli.common import host_settings
from vmbundle.ops import edit
from vmbundle.ops.edit import Refreshed


def report_refresh(name: str, what: str, r: Refreshed | None) -> None:
    """The edit, then what the running guest took live and what waits."""
    if r is None:
        print(f"{name}: {what}")
        return
    print(f"{name}: {what}; the running guest takes what it can now (svcadm refresh {r.fmri})")
    if not r.finished:
        print(f"{name}: the refresh has not finished; vmbundle status {name} shows it")
        return
    for line in r.live:
        print(f"{name}: live: {line}")
    for line in r.pending:
        print(f"{name}: pending until the next start: {line}")


def cmd_set(args: argparse.Namespace) -> int:
    done = edit.set_keys(host_settings(args), args.guest, args.assignments)
    report_refresh(done.name, "saved", done.refreshed)
    return 0


def cmd_iso(args: argparse.Namespace) -> int:
    settings = host_settings(args)
    if args.iso_command == "attach":
        done = edit.iso_attach(settings, args.guest, args.iso, args.drive)
    else:
        done = edit.iso_detach(settings, args.guest, args.drive)
    report_refresh(done.name, "saved", done.refreshed)
    return 0
