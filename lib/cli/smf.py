"""smf install: print what vmbundle.ops.install wrote and imported."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from vmbundle.cli.common import host_settings
from vmbundle.errors import VmbundleError
from vmbundle.ops import install


def _config_in_use(args: argparse.Namespace) -> Path | None:
    """The host configuration this command runs with, which the methods must read
    too; absolute, since svc.startd starts methods in another directory."""
    named = args.config or os.environ.get("VMBUNDLE_CONFIG")
    return Path(named).absolute() if named else None


def cmd_smf(args: argparse.Namespace) -> int:
    if args.smf_command != "install":
        raise VmbundleError(f"smf {args.smf_command}: unknown subcommand")
    # Loading the configuration also refuses to record a missing or broken one.
    settings = host_settings(args)
    written = install.install(
        settings,
        _config_in_use(args),
        Path(args.dir).absolute() if args.dir else None,
        do_import=not args.no_import,
    )
    for w in written:
        print(f"wrote {w.path}")
    for w in written:
        if w.imported:
            print(f"imported {w.path}")
    return 0
