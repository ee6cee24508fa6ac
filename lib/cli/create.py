"""create and destroy: a bundle's whole life on disk."""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path

import attrs

from vmbundle.adapters import qemu_img
from vmbundle.cli.common import host_config, size_argument
from vmbundle.errors import ToolError, UsageError, VmbundleError
from vmbundle.guest import prepare
from vmbundle.guest.prepare import with_macs
from vmbundle.guest.process import running_pid
from vmbundle.guest.rundir import RunPaths
from vmbundle.settings import HostSettings
from vmbundle.vm import bundle, codec, storage
from vmbundle.vm.bundle import Bundle
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
    order = (
        args.boot.split(",")
        if args.boot
        else [d.id for d in cfg.disks] + [c.id for c in cfg.cdroms]
    )
    unknown = [x for x in order if x not in cfg.device_ids()]
    if unknown:
        raise UsageError(
            f"{args.name}: --boot: no device {unknown[0]!r}; devices: {', '.join(cfg.device_ids())}"
        )
    rank = {dev: i for i, dev in enumerate(order)}
    return with_macs(
        attrs.evolve(
            cfg,
            disks=tuple(attrs.evolve(d, boot_index=rank.get(d.id)) for d in cfg.disks),
            cdroms=tuple(attrs.evolve(c, boot_index=rank.get(c.id)) for c in cfg.cdroms),
            nics=tuple(attrs.evolve(n, boot_index=rank.get(n.id)) for n in cfg.nics),
        )
    )


def _root(host: HostSettings, given: str | None) -> storage.BundleRoot:
    spec = given or (host.bundle_roots[0] if host.bundle_roots else None)
    if spec is None:
        raise UsageError(
            "no bundle root: give --root, or set bundles.roots in the host configuration"
        )
    return storage.resolve_root(spec)


def cmd_create(args: argparse.Namespace) -> int:
    host = host_config(args)
    cfg = config_from_args(args)
    root = _root(host, args.root)
    # Everything `validate` checks, but the disks, before anything is made.
    cfg = bundle.check_document(
        codec.unstructure(cfg), root.path / cfg.name, host, disks_made=False
    )
    prepare.check_runnable(Bundle(root.path / cfg.name, cfg), host)
    if args.import_:
        from vmbundle.cli import service

        # Before anything is made, so a taken name changes nothing.
        service.refuse_imported(cfg.name)
    path = storage.create_bundle_dir(root, cfg.name)
    try:
        for disk in cfg.disks:
            qemu_img.create(path / disk.file, disk.format, disk.size, binary=host.qemu_img)
        bundle.save(path, cfg)
        made = bundle.load(path, host)
    except BaseException:
        storage.destroy_bundle_dir(root, cfg.name)
        raise
    where = f"dataset {root.dataset}/{cfg.name}" if root.dataset else "directory"
    print(f"{cfg.name}: created at {path} ({where})")
    if args.import_:
        # A failed import keeps the bundle: it is whole, and vmbundle import retries.
        service.report_import(service.add_instance(made), as_json=False)
    return 0


def _refuse_imported_bundle(path: Path) -> None:
    """An SMF instance that names the bundle would be left pointing at nothing."""
    from vmbundle.adapters import smf

    try:
        named = smf.bundle_paths()
    except ToolError as exc:
        if exc.returncode is None:
            return  # no svcprop: a host without SMF has no instances
        raise
    for fmri, value in named.items():
        if value == str(path):
            raise VmbundleError(
                f"{path.name}: {fmri} names this bundle; remove the instance first: "
                f"vmbundle forget {smf.instance_name(fmri)}"
            )


def cmd_destroy(args: argparse.Namespace) -> int:
    host = host_config(args)
    path = bundle.locate(host, args.guest)
    name = path.name
    if not args.yes:
        raise UsageError(f"{name}: destroy deletes the bundle and every disk in it; add --yes")
    pid = running_pid(RunPaths.for_guest(host.run_dir, name))
    if pid is not None:
        raise VmbundleError(f"{name}: running (QEMU pid {pid}); stop it first")
    _refuse_imported_bundle(path)
    root = storage.resolve_root(str(path.parent))
    storage.destroy_bundle_dir(root, name)
    print(f"{name}: destroyed", file=sys.stderr)
    return 0
