"""disk add and disk resize."""

from __future__ import annotations

import argparse
from pathlib import Path

from vmbundle.cli.common import host_settings, progress_printer, size_argument
from vmbundle.ops import disks
from vmbundle.units import format_size


def cmd_disk(args: argparse.Namespace) -> int:
    return _add(args) if args.disk_command == "add" else _resize(args)


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
    print(f"{added.name}: added {d.id} ({format_size(d.size)}, {d.file})")
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
