"""disk add, remove and resize."""

from __future__ import annotations

import argparse
from pathlib import Path

from vmbundle.cli.common import host_settings, progress_printer, size_argument
from vmbundle.cli.edit import report_refresh
from vmbundle.ops import disks
from vmbundle.units import format_size


def cmd_disk(args: argparse.Namespace) -> int:
    if args.disk_command == "add":
        return _add(args)
    return _remove(args) if args.disk_command == "remove" else _resize(args)


def _add(args: argparse.Namespace) -> int:
    source = Path(args.source) if args.source else None
    added = disks.add(
        host_settings(args),
        args.guest,
        size=size_argument(args.size, "SIZE") if args.size else None,
        source=source,
        fmt=args.format,
        bus=args.bus,
        cache=args.cache,
        progress=progress_printer(f"{args.guest}: copying {source.name}") if source else None,
    )
    d = added.disk
    report_refresh(added.name, f"added {d.id} ({format_size(d.size)}, {d.file})", added.refreshed)
    return 0


def _remove(args: argparse.Namespace) -> int:
    done = disks.remove(host_settings(args), args.guest, args.disk, delete=args.delete)
    name, file = done.name, done.file
    if done.disk is not None:
        report_refresh(name, f"removed {done.disk.id} from vm.json", done.refreshed)
    again = f"vmbundle disk remove {name} {file} --delete"
    if done.deleted:
        print(f"{name}: deleted {file}")
    elif args.delete:
        print(f"{name}: {file} kept: the running guest still has it; once it lets go: {again}")
    else:
        print(f"{name}: {file} stays in the bundle ({again} deletes it)")
    return 0


def _resize(args: argparse.Namespace) -> int:
    done = disks.resize(
        host_settings(args),
        args.guest,
        args.disk,
        size_argument(args.size, "SIZE"),
        allow_shrink=args.allow_shrink,
    )
    if done.how == "unchanged":
        print(f"{done.name}: {done.disk} is already {format_size(done.size)}")
    else:
        print(f"{done.name}: {done.disk} is now {format_size(done.size)} ({done.how})")
    return 0
