"""Checking a bundle as `validate` does: the file, the host's means, the bundle's
name and its files. Only reads: a bad bundle is reported, never touched. The
rules of the file alone are in vmbundle.vm.codec."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import attrs

from vmbundle.adapters import qemu_img
from vmbundle.errors import ConfigError, ToolError
from vmbundle.settings import HostSettings
from vmbundle.units import format_size
from vmbundle.vm import codec
from vmbundle.vm.codec import ConfigProblems, Problem
from vmbundle.vm.model import VmConfig

MAX_BACKING_DEPTH = 16


@attrs.frozen
class HostMeans:
    """What the host has: CPUs and physical memory, for the rules of the host's means."""

    cpus: int
    memory: int  # bytes

    @classmethod
    def of_this_host(cls) -> HostMeans:
        # sysconf works the same on illumos and Linux.
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return cls(cpus=os.cpu_count() or 1, memory=memory)


def guest_label(path: Path, doc: object) -> str:
    if isinstance(doc, dict) and isinstance(doc.get("name"), str) and doc["name"]:
        return str(doc["name"])[:63]
    return path.name


def check_document(
    doc: dict[str, object],
    path: Path,
    settings: HostSettings,
    means: HostMeans | None = None,
    *,
    disks_made: bool = True,
) -> VmConfig:
    """The config in doc for a bundle at path, checked as `validate` checks it: the
    file, the host's means, the bundle's name and its files (its disks only once
    they are made). ConfigError lists every problem, one line each."""
    label = guest_label(path, doc)
    try:
        cfg = codec.structure(doc)
    except ConfigProblems as exc:
        raise exc.of_guest(label) from None
    problems = check_host_means(cfg, means or HostMeans.of_this_host())
    if cfg.name != path.name:
        problems.append(
            Problem(
                "name",
                f"is {cfg.name!r} but the bundle is named {path.name!r}; "
                f"set name to {path.name!r} (vmbundle set {path} name={path.name})",
            )
        )
    problems += check_bundle_files(
        cfg if disks_made else attrs.evolve(cfg, disks=()), path, settings
    )
    if problems:
        raise ConfigError([p.line(label) for p in problems])
    return cfg


def check_host_means(cfg: VmConfig, means: HostMeans) -> list[Problem]:
    problems = []
    if cfg.vcpus > means.cpus:
        problems.append(
            Problem("vcpus", f"{cfg.vcpus} is more than this host's {means.cpus} CPUs; lower it")
        )
    if cfg.max_vcpus is not None and cfg.max_vcpus > means.cpus:
        problems.append(
            Problem(
                "max_vcpus",
                f"{cfg.max_vcpus} is more than this host's {means.cpus} CPUs; lower it",
            )
        )
    if cfg.ram > means.memory:
        problems.append(
            Problem(
                "ram",
                f"{format_size(cfg.ram)} is more than this host's memory "
                f"({means.memory >> 20}M); lower it",
            )
        )
    return problems


def _inside(path: Path, top: Path) -> bool:
    return path != top and path.is_relative_to(top)


def _bundle_file(bundle_real: Path, rel: str, where: str) -> tuple[Path | None, Problem | None]:
    """The real path of a file named relative to the bundle, if it stays inside."""
    parts = Path(rel).parts
    if not parts or Path(rel).is_absolute() or ".." in parts or rel.endswith("/"):
        return None, Problem(where, f"{rel!r} must be a path inside the bundle, like disk0.qcow2")
    real = Path(os.path.realpath(bundle_real / rel))
    if not _inside(real, bundle_real):
        return None, Problem(
            where, f"{rel!r} leads outside the bundle (through a link); keep files inside it"
        )
    if not real.exists():
        return None, Problem(where, f"{rel!r} does not exist in the bundle")
    if not real.is_file():
        return None, Problem(where, f"{rel!r} is not a regular file")
    return real, None


def check_bundle_files(
    cfg: VmConfig,
    path: Path,
    settings: HostSettings,
    image_info: Callable[[Path], qemu_img.ImageInfo] | None = None,
) -> list[Problem]:
    """Disks and ISOs exist, stay inside the bundle (or an ISO directory), and are what
    vm.json says they are; a qcow2 backing chain stays inside the bundle."""
    info = image_info or (lambda p: qemu_img.info(p, binary=settings.qemu_img))
    bundle_real = Path(os.path.realpath(path))
    problems: list[Problem] = []
    for i, disk in enumerate(cfg.disks):
        where = f"disks[{i}].file"
        real, problem = _bundle_file(bundle_real, disk.file, where)
        if problem:
            problems.append(problem)
            continue
        assert real is not None
        problems += _check_image(real, disk.format, disk.size, bundle_real, f"disks[{i}]", info)
    for i, cd in enumerate(cfg.cdroms):
        if cd.iso is None:
            continue
        where = f"cdroms[{i}].iso"
        if cd.iso.startswith("/"):
            real = Path(os.path.realpath(cd.iso))
            dirs = [Path(os.path.realpath(d)) for d in settings.iso_dirs]
            if not any(_inside(real, d) for d in dirs):
                allowed = ", ".join(map(str, settings.iso_dirs)) or "none configured"
                problems.append(
                    Problem(
                        where,
                        f"{cd.iso!r} is neither in the bundle nor in an ISO directory ({allowed}); "
                        "copy it into one",
                    )
                )
            elif not real.is_file():
                problems.append(Problem(where, f"{cd.iso!r} does not exist or is not a file"))
        else:
            _, problem = _bundle_file(bundle_real, cd.iso, where)
            if problem:
                problems.append(problem)
    return problems


def _check_image(
    real: Path,
    fmt: str,
    size: int,
    bundle_real: Path,
    where: str,
    info: Callable[[Path], qemu_img.ImageInfo],
) -> list[Problem]:
    # One image at a time, and each backing file checked before qemu-img opens it:
    # `qemu-img info --backing-chain` would open a backing file outside the bundle.
    try:
        top = info(real)
    except ToolError as exc:
        return [Problem(f"{where}.file", f"qemu-img cannot read it: {exc.stderr or exc}")]
    problems = []
    if top.format != fmt:
        problems.append(
            Problem(
                f"{where}.format",
                f"says {fmt} but the image is {top.format}; set it to {top.format}",
            )
        )
    if top.virtual_size != size:
        problems.append(
            Problem(
                f"{where}.size",
                f"says {format_size(size)} but the image holds {top.virtual_size} bytes; "
                "resize it with vmbundle disk resize, or correct size",
            )
        )
    current, depth = top, 0
    while current.backing_filename is not None:
        depth += 1
        backing = current.backing_filename
        real_backing = Path(os.path.realpath(backing)) if backing.startswith("/") else None
        if real_backing is None or not _inside(real_backing, bundle_real):
            problems.append(
                Problem(
                    f"{where}.file",
                    f"its backing file {backing!r} is outside the bundle; "
                    "rebase or convert the image so the chain stays inside",
                )
            )
            break
        if depth > MAX_BACKING_DEPTH:
            problems.append(Problem(f"{where}.file", "its backing chain is too long (or a loop)"))
            break
        if not real_backing.is_file():
            problems.append(Problem(f"{where}.file", f"its backing file {backing!r} is missing"))
            break
        try:
            current = info(real_backing)
        except ToolError as exc:
            problems.append(Problem(f"{where}.file", f"its backing file {backing!r}: {exc}"))
            break
    return problems
