"""What every subcommand needs: the host configuration and the guest it names."""

from __future__ import annotations

import argparse
from pathlib import Path

from vmbundle import settings
from vmbundle.errors import UsageError
from vmbundle.settings import HostSettings
from vmbundle.units import parse_size
from vmbundle.vm import bundle
from vmbundle.vm.bundle import Bundle
from vmbundle.vm.model import VmConfig


def host_config(args: argparse.Namespace) -> HostSettings:
    return settings.load(Path(args.config) if args.config else None)


def load_guest(args: argparse.Namespace, host: HostSettings) -> Bundle:
    return bundle.load(bundle.locate(host, args.guest), host)


def size_argument(text: str, what: str) -> int:
    try:
        return parse_size(text)
    except ValueError:
        raise UsageError(f"{what}: must be a size like 20G, got {text!r}") from None


def next_device_id(cfg: VmConfig, prefix: str) -> str:
    """The first free id like disk2 or cd1 (ids are shared by disks, CD-ROMs and NICs)."""
    taken = set(cfg.device_ids())
    n = 0
    while f"{prefix}{n}" in taken:
        n += 1
    return f"{prefix}{n}"
