"""What every subcommand needs: the host settings, sizes, and a line to stderr."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vmbundle import settings
from vmbundle.errors import UsageError
from vmbundle.settings import HostSettings
from vmbundle.units import parse_size


def host_settings(args: argparse.Namespace) -> HostSettings:
    return settings.load(Path(args.config) if args.config else None)


def size_argument(text: str, what: str) -> int:
    try:
        return parse_size(text)
    except ValueError:
        raise UsageError(f"{what}: must be a size like 20G, got {text!r}") from None


def say(line: str) -> None:
    """A line for the operator on stderr, at once (a start may take a while)."""
    print(line, file=sys.stderr, flush=True)
