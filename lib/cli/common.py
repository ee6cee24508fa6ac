"""What every subcommand needs: the host configuration and the guest it names."""

from __future__ import annotations

import argparse
from pathlib import Path

from vmbundle import bundle, hostconfig
from vmbundle.bundle import Bundle
from vmbundle.hostconfig import HostConfig


def host_config(args: argparse.Namespace) -> HostConfig:
    return hostconfig.load(Path(args.config) if args.config else None)


def load_guest(args: argparse.Namespace, host: HostConfig) -> Bundle:
    return bundle.load(bundle.locate(host, args.guest), host)
