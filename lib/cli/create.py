"""create and destroy: a bundle's whole life on disk."""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path

from vmbundle.cli.common import host_settings, size_argument
from vmbundle.cli.service import report_import
from vmbundle.errors import UsageError
from vmbundle.ops import create
from vmbundle.vm.model import Cdrom, Disk, Nic, NicBackend, VmConfig, Vnc


def _options(spec: str, what: str, allowed: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    head, *rest = spec.split(",")
    opts = {}
    for item in rest:
        key, sep, value = item.partition("=")
        if not sep or key not in allowed:
            raise UsageError(
                f"{what} {spec!r}: unknown option {item!r}; known: {', '.join(allowed)}"
            )
        opts[key] = value
    return head, opts


def parse_disk(spec: str, index: int) -> Disk:
    head, opts = _options(spec, "--disk", ("bus", "format", "cache"))
    fmt = opts.get("format", "qcow2")
    ext = "qcow2" if fmt == "qcow2" else "img"
    return Disk(
        id=f"disk{index}",
        file=f"disk{index}.{ext}",
        size=size_argument(head, "--disk"),
        format=fmt,
        bus=opts.get("bus", "virtio"),
        cache=opts.get("cache", "writeback"),
    )


def parse_nic(spec: str, index: int) -> Nic:
    head, opts = _options(spec, "--nic", ("model",))
    kind, _, name = head.partition(":")
    return Nic(
        id=f"net{index}",
        model=opts.get("model", "virtio"),
        backend=NicBackend(type=kind, name=name or None),
    )


def _iso_value(path: str) -> str:
    return path if path.startswith("/") else str(Path(path).absolute())


def config_from_args(args: argparse.Namespace) -> VmConfig:
    disks = tuple(parse_disk(s, i) for i, s in enumerate(args.disk))
    cdroms = [Cdrom(id=f"cd{i}", iso=_iso_value(p)) for i, p in enumerate(args.iso)]
    if args.cdrom:
        cdroms.append(Cdrom(id=f"cd{len(cdroms)}"))
    cfg = VmConfig(
        schema_version=1,
        name=args.name,
        uuid=str(uuid.uuid4()),
        ram=size_argument(args.ram, "--ram"),
        vcpus=args.vcpus,
        description=args.description,
        machine=args.machine,
        cpu=args.cpu,
        disks=disks,
        cdroms=tuple(cdroms),
        nics=tuple(parse_nic(s, i) for i, s in enumerate(args.nic)),
        boot_once=args.boot_once,
        vnc=Vnc(enabled=not args.no_vnc),
    )
    return create.with_boot_order(cfg, args.boot.split(",") if args.boot else None)


def cmd_create(args: argparse.Namespace) -> int:
    made = create.create(
        host_settings(args), config_from_args(args), args.root, import_instance=args.import_
    )
    b = made.bundle
    where = f"dataset {made.dataset}" if made.dataset else "directory"
    print(f"{b.name}: created at {b.path} ({where})")
    if made.imported is not None:
        report_import(made.imported, as_json=False)
    return 0


def cmd_destroy(args: argparse.Namespace) -> int:
    name = create.destroy(host_settings(args), args.guest, confirmed=args.yes)
    print(f"{name}: destroyed", file=sys.stderr)
    return 0
