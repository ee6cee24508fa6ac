"""What every subcommand needs: the host settings, sizes, a line to stderr, and a
copy's progress on a terminal."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
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


def progress_printer(label: str) -> Callable[[float], None] | None:
    """A copy's rising percentage on one terminal line; None when stderr is no terminal."""
    if not sys.stderr.isatty():
        return None

    def show(percent: float) -> None:
        print(
            f"\r{label}: {percent:5.1f}%",
            end="" if percent < 100 else "\n",
            file=sys.stderr,
            flush=True,
        )

    return show
