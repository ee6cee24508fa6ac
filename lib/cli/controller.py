"""screenshot, qmp, events: what the running controller does for the CLI
(vmbundle.ops.remote); this module parses and prints only."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vmbundle.atomic import write_atomic
from vmbundle.cli.common import host_settings
from vmbundle.errors import UsageError
from vmbundle.ops import remote


def cmd_screenshot(args: argparse.Namespace) -> int:
    if args.width is not None and not 1 <= args.width <= 4096:
        raise UsageError(f"{args.guest}: --width {args.width}: must be 1 to 4096 pixels")
    png = remote.screenshot(host_settings(args), args.guest, args.width)
    if args.output == "-":
        sys.stdout.buffer.write(png)
        return 0
    out = Path(args.output)
    try:
        write_atomic(out, png, mode=0o644)
    except OSError as exc:
        raise UsageError(f"{args.guest}: -o {out}: cannot write it: {exc.strerror}") from None
    print(f"{args.guest}: screenshot written to {out} ({len(png)} bytes)")
    return 0


def cmd_qmp(args: argparse.Namespace) -> int:
    arguments = None
    if args.arguments is not None:
        try:
            arguments = json.loads(args.arguments)
        except ValueError as exc:
            raise UsageError(f"{args.guest}: QMP arguments are not JSON: {exc}") from None
    result = remote.qmp(host_settings(args), args.guest, args.qmp_command, arguments, args.timeout)
    print(json.dumps(result, indent=2))
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    try:
        for event in remote.events(host_settings(args), args.guest):
            print(json.dumps(event), flush=True)
    except KeyboardInterrupt:
        pass
    return 0
