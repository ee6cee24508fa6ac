"""list and status: print what vmbundle.ops.status finds."""

from __future__ import annotations

import argparse
import json
from typing import Any

from vmbundle.cli.common import host_settings, say
from vmbundle.ops import status
from vmbundle.ops.status import Row
from vmbundle.units import format_size

HEADERS = ("NAME", "STATE", "HOME", "DISPLAY", "RAM", "VCPUS", "BUNDLE")
RIGHT_ALIGNED = frozenset({"RAM", "VCPUS"})


def cells(row: Row) -> list[str]:
    return [
        row.name,
        row.state + ("*" if row.next_state != "-" else ""),
        row.home or "here",
        f":{row.display}" if row.display is not None else "-",
        format_size(row.config.ram) if row.config else "?",
        str(row.config.vcpus) if row.config else "?",
        row.bundle or "-",
    ]


def table(lines: list[list[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart, no trailing blanks."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADERS))]
    out = []
    for line in lines:
        padded = [
            cell.rjust(w) if head in RIGHT_ALIGNED else cell.ljust(w)
            for cell, w, head in zip(line, widths, HEADERS, strict=True)
        ]
        out.append("  ".join(padded).rstrip())
    return "\n".join(out)


def cmd_problems(args: argparse.Namespace) -> int:
    """A report, so it exits 0 whatever it finds; a failure to look exits 1."""
    from vmbundle.adapters import smf
    from vmbundle.errors import ToolMissing
    from vmbundle.ops import arrivals

    try:
        instances = smf.bundle_paths()
    except ToolMissing:
        instances = {}  # no SMF here, so no instance can point at a bundle
    seen = arrivals.survey(host_settings(args), instances)
    for root in seen.roots:
        if not root.available:
            say(f"vmbundle: bundle root {root.spec}: not available (not mounted, or missing)")
    found = [a for a in seen.arrivals if a.verdict in arrivals.PROBLEMS]
    if args.json:
        print(json.dumps([a.to_json() for a in found], indent=2))
    elif found:
        print("\n".join(line for a in found for line in a.lines))
    else:
        print("no problems")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    if args.problems:
        return cmd_problems(args)
    found = status.rows(host_settings(args), say)
    if args.json:
        print(json.dumps([r.to_json() for r in found], indent=2))
    else:
        print(table([list(HEADERS), *(cells(r) for r in found)]))
    return 0


def status_lines(s: dict[str, Any]) -> list[str]:
    def line(label: str, value: object) -> str:
        return f"{label:<10} {value}"

    state = s["state"] + (f" -> {s['next_state']}" if s["next_state"] else "")
    out = [line("name", s["name"]), line("fmri", s["fmri"] or "-"), line("state", state)]
    if s["reason"]:
        out.append(line("reason", s["reason"]))
    if s["qemu_pid"] is not None:
        qmp = s["run_state"] or s["qmp_error"]
        out.append(line("qemu", f"pid {s['qemu_pid']}, QMP: {qmp}"))
    elif s["fmri"]:
        out.append(line("qemu", "not running"))
    if s["display"] is not None:
        out.append(line("display", f":{s['display']} (VNC port {s['vnc_port']})"))
        if s.get("display_auth"):
            out.append(line("", s["display_auth"]))
    if s["started"]:
        out.append(line("started", s["started"]))
    room = s.get("room")
    if room:
        out.append(
            line(
                "size",
                f"{room['vcpus']} of at most {room['max_vcpus']} vCPUs, "
                f"{format_size(room['ram'])} of at most {format_size(room['max_ram'])} "
                f"({room['dimms']} of {room['slots']} memory slots used)",
            )
        )
    for i, change in enumerate(s.get("live", [])):
        out.append(line("live" if i == 0 else "", change))
    for i, change in enumerate(s["pending"]):
        out.append(line("pending" if i == 0 else "", change))
    out.append(line("bundle", s["bundle"] or "-"))
    if s["log"]:
        out.append(line("log", s["log"]))
        out += [f"  {text}" for text in s["log_tail"]]
    return out


def cmd_status(args: argparse.Namespace) -> int:
    if args.show_password:
        print(status.display_password(host_settings(args), args.guest))
        return 0
    s = status.status(host_settings(args), args.guest)
    if args.json:
        print(json.dumps(s, indent=2))
    else:
        print("\n".join(status_lines(s)))
    return 0
