"""Commands that only read: show, validate, schema, qemu-argv."""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from vmbundle.cli.common import host_settings
from vmbundle.ops import inspect
from vmbundle.units import format_size
from vmbundle.vm import codec
from vmbundle.vm.model import VmConfig


def _describe(cfg: VmConfig, path: str) -> list[str]:
    lines = [f"{cfg.name}  uuid {cfg.uuid}", f"  bundle       {path}"]
    if cfg.description:
        lines.append(f"  description  {cfg.description}")
    lines.append(
        f"  machine      {cfg.machine}, cpu {cfg.cpu}, {cfg.vcpus} vCPU, {format_size(cfg.ram)} RAM"
    )
    for d in cfg.disks:
        boot = f"  boot {d.boot_index}" if d.boot_index is not None else ""
        lines.append(
            f"  disk {d.id:<8} {d.bus:<6} {d.format:<5} {format_size(d.size):>6}  {d.file}  cache={d.cache}{boot}"
        )
    for c in cfg.cdroms:
        boot = f"  boot {c.boot_index}" if c.boot_index is not None else ""
        lines.append(f"  cdrom {c.id:<7} {c.bus:<6} {c.iso or '(empty)'}{boot}")
    for n in cfg.nics:
        target = n.backend.type + (f":{n.backend.name}" if n.backend.name else "")
        boot = f"  boot {n.boot_index}" if n.boot_index is not None else ""
        lines.append(
            f"  nic {n.id:<9} {n.model:<6} {n.mac or '(mac at first start)'}  {target}{boot}"
        )
    if cfg.boot_once:
        lines.append(f"  boot once    {cfg.boot_once}")
    vnc = "off" if not cfg.vnc.enabled else ("on, password set" if cfg.vnc.password else "on")
    lines.append(f"  vnc          {vnc}")
    lines.append(
        f"  stop         ACPI, then quit after {cfg.stop_timeout}s; "
        f"on_poweroff={cfg.on_poweroff} on_reboot={cfg.on_reboot} on_crash={cfg.on_crash}"
    )
    lines.append(f"  autostart    {'yes' if cfg.autostart else 'no'}")
    return lines


def cmd_show(args: argparse.Namespace) -> int:
    b = inspect.load(host_settings(args), args.guest)
    if args.json:
        doc = {"path": str(b.path), "config": codec.unstructure(b.config)}
        print(json.dumps(doc, indent=2))
    else:
        print("\n".join(_describe(b.config, str(b.path))))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    name, problems = inspect.problems(host_settings(args), args.guest)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        return 1
    print(f"{name}: valid")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(codec.json_schema(), indent=2))
    return 0


def cmd_qemu_argv(args: argparse.Namespace) -> int:
    shown = inspect.command_line(host_settings(args), args.guest, args.display)
    for i in shown.unchosen_macs:
        print(
            f"{shown.name}: nics[{i}].mac: not chosen yet; shown with a placeholder, "
            "the first start generates one and keeps it",
            file=sys.stderr,
        )
    print(shlex.join(shown.argv))
    return 0
