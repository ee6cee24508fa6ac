"""disk add and disk resize."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import attrs

from vmbundle.adapters import qemu_img
from vmbundle.cli.common import host_config, load_guest, next_device_id, size_argument
from vmbundle.cli.edit import store
from vmbundle.errors import UsageError, VmbundleError
from vmbundle.guest.process import running_pid
from vmbundle.guest.rundir import RunPaths
from vmbundle.qemu import profile as qemu_profile
from vmbundle.qemu import qmp
from vmbundle.units import format_size
from vmbundle.vm import bundle, codec
from vmbundle.vm.model import Disk


def _progress_printer(label: str) -> qemu_img.ProgressCallback | None:
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


def cmd_disk(args: argparse.Namespace) -> int:
    return _add(args) if args.disk_command == "add" else _resize(args)


def _add(args: argparse.Namespace) -> int:
    host = host_config(args)
    b = load_guest(args, host)
    run = RunPaths.for_guest(host.run_dir, b.name)
    if running_pid(run) is not None:
        raise VmbundleError(f"{b.name}: running; stop it before adding a disk")
    disk_id = next_device_id(b.config, "disk")
    ext = "qcow2" if args.format == "qcow2" else "img"
    file = f"{disk_id}.{ext}"
    target = b.path / file
    if target.exists():
        raise VmbundleError(
            f"{b.name}: {file} already exists in the bundle; remove it or pick another"
        )
    if args.source is None and args.size is None:
        raise UsageError(f"{b.name}: give a SIZE, or --from IMAGE")
    size = size_argument(args.size, "SIZE") if args.size else None
    new = Disk(
        id=disk_id,
        file=file,
        size=size or 1 << 20,  # the copy's real size replaces it
        format=args.format,
        bus=args.bus,
        cache=args.cache,
    )
    # A bad --bus, --format or --cache is refused before any image is made.
    bundle.check_document(
        codec.unstructure(attrs.evolve(b.config, disks=(*b.config.disks, new))),
        b.path,
        host,
        disks_made=False,
    )
    try:
        if args.source:
            src = Path(args.source)
            src_info = qemu_img.info(src, binary=host.qemu_img)
            qemu_img.convert(
                src,
                src_info.format,
                target,
                args.format,
                _progress_printer(f"{b.name}: copying {src.name}"),
                binary=host.qemu_img,
            )
            if size is not None and size != src_info.virtual_size:
                qemu_img.resize(target, size, args.format, binary=host.qemu_img)
            size = qemu_img.info(target, binary=host.qemu_img).virtual_size
        else:
            assert size is not None
            qemu_img.create(target, args.format, size, binary=host.qemu_img)
        store(
            b, attrs.evolve(b.config, disks=(*b.config.disks, attrs.evolve(new, size=size))), host
        )
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    print(f"{b.name}: added {disk_id} ({format_size(size)}, {file})")
    return 0


def _resize(args: argparse.Namespace) -> int:
    host = host_config(args)
    b = load_guest(args, host)
    index = next((i for i, d in enumerate(b.config.disks) if d.id == args.disk), None)
    if index is None:
        ids = ", ".join(d.id for d in b.config.disks) or "none"
        raise UsageError(f"{b.name}: no disk {args.disk!r}; disks: {ids}")
    disk = b.config.disks[index]
    size = size_argument(args.size, "SIZE")
    if size < disk.size and not args.allow_shrink:
        raise UsageError(
            f"{b.name}: {disk.id}: {args.size} is smaller than {format_size(disk.size)}; "
            "shrinking loses what the guest keeps at the end of the disk: add --allow-shrink"
        )
    if size == disk.size:
        print(f"{b.name}: {disk.id} is already {format_size(size)}")
        return 0
    new_cfg = attrs.evolve(
        b.config,
        disks=tuple(
            attrs.evolve(d, size=size) if i == index else d for i, d in enumerate(b.config.disks)
        ),
    )
    run = RunPaths.for_guest(host.run_dir, b.name)
    if running_pid(run) is not None:
        # A running QEMU holds the image's write lock; the resize goes through it,
        # and the guest sees the new capacity at once.
        profile = qemu_profile.probe(host.qemu_binary, host.run_dir)
        if profile.name != "modern":
            raise VmbundleError(
                f"{b.name}: this QEMU cannot resize a disk live; stop the guest first"
            )
        qmp.execute(run, "block_resize", {"device": f"drive-{disk.id}", "size": size})
        how = "live"
    else:
        qemu_img.resize(
            b.disk_path(disk.file),
            size,
            disk.format,
            allow_shrink=args.allow_shrink,
            binary=host.qemu_img,
        )
        how = "offline"
    store(b, new_cfg, host)
    print(f"{b.name}: {disk.id} is now {format_size(size)} ({how})")
    return 0
