"""import, forget, start, stop, restart: print what vmbundle.ops.lifecycle did."""

from __future__ import annotations

import argparse
import json
import sys

from vmbundle.cli.common import host_settings
from vmbundle.ops import lifecycle, ownership
from vmbundle.ops.lifecycle import Imported


def report_import(made: Imported, as_json: bool) -> None:
    if as_json:
        print(json.dumps(made.to_json()))
        return
    print(
        f"{made.name}: imported as {made.fmri} ({made.state}); "
        f"start it with vmbundle start {made.name}"
    )


def cmd_import(args: argparse.Namespace) -> int:
    report_import(lifecycle.import_bundle(host_settings(args), args.guest), args.json)
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    gone = lifecycle.forget(args.guest)
    kept = f"its bundle stays at {gone.bundle}" if gone.bundle else "it named no bundle"
    print(f"{gone.name}: {gone.fmri} deleted; {kept}; vmbundle import brings it back")
    return 0


def _outcome(name: str, arrived: bool, goal: str, moving: str, until: str = "") -> str:
    """The line for an instance sent toward goal: there, or on its way."""
    if arrived:
        return f"{name}: {goal}{until}"
    return f"{name}: {moving}{until}; vmbundle status {name} shows when it is {goal}"


def cmd_start(args: argparse.Namespace) -> int:
    done = lifecycle.start(
        host_settings(args), args.guest, wait=args.wait, take_over=args.take_over
    )
    if done.cleared:
        print(f"{done.name}: was in maintenance; cleared it", file=sys.stderr)
    until = "" if done.persistent else " (until the host reboots: autostart is false)"
    print(_outcome(done.name, done.online, "online", "starting", until))
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    done = ownership.promote(host_settings(args), args.guest, take_over=args.take_over)
    if done.made_writable:
        print(
            f"{done.name}: {done.made_writable} was read-only (a replication target); set readonly=off"
        )
    if done.was == done.now:
        print(f"{done.name}: this host's already (generation {done.now.generation})")
    else:
        whose = f"from host {done.was.host}" if done.was else "with no owner before"
        print(
            f"{done.name}: now this host's (generation {done.now.generation}), {whose}; "
            f"start it with vmbundle start {done.name}"
        )
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    force_in = host_settings(args).run_dir if args.force else None
    done = lifecycle.stop(args.guest, wait=args.wait, force_in=force_in)
    print(_outcome(done.name, done.disabled, "disabled", "stopping"))
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    inst = lifecycle.restart(args.guest, wait=args.wait)
    print(f"{inst.name}: online again" if args.wait else f"{inst.name}: restarting")
    return 0
