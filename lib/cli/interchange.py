"""export and import-config: libvirt domain XML and SmartOS vmadm JSON."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vmbundle.cli.common import host_settings, progress_printer, say
from vmbundle.ops import interchange


def cmd_export(args: argparse.Namespace) -> int:
    exported = interchange.export(host_settings(args), args.guest, args.format)
    for line in exported.warnings:
        say(line)
    sys.stdout.write(exported.document)
    return 0


def cmd_import_config(args: argparse.Namespace) -> int:
    done = interchange.import_config(
        host_settings(args),
        Path(args.file),
        args.format,
        args.name,
        args.root,
        progress_for=lambda disk_id, source: progress_printer(
            f"{args.name}: copying {source.name} to {disk_id}"
        ),
    )
    for line in done.warnings:
        say(line)
    b = done.created.bundle
    where = f"dataset {done.created.dataset}" if done.created.dataset else "directory"
    print(f"{b.name}: created at {b.path} ({where}) from {args.format} {args.file}")
    return 0
