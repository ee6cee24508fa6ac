#!/usr/bin/env python3
"""Build the vmbundle test guest: a small bootable x86 ISO (isolinux, a Debian kernel and
a busybox initramfs) that reports its disks and NICs on the serial console, paints a
banner on the VGA console with a prompt under it that echoes what is typed on the
keyboard (the keyboard drivers, i8042 and atkbd, are built into Debian's kernel), powers
off on the ACPI power button and takes commands (poweroff, panic, reboot) on the serial
console. See tests/guest/init for what the guest does, its commands and the exact serial
line formats.

    python3 tests/guest/build.py [--refresh] [--force] [--quiet]

The ISO is cached outside git, in ${VMBUNDLE_CACHE:-~/.cache/vmbundle}/guest/:

    testguest-<key>.iso      key = hash of this directory's files + package versions
    state-<builder>.json     builder hash -> package versions, key, ISO name
    testguest.iso            symlink to the ISO built last
    .lock                    flock held while building

When the state file for the current builder files names an ISO that exists, nothing else
happens (no apt calls). Package versions are resolved with apt-cache when the builder
files change or with --refresh. The last line on stdout is the ISO path.

Stdlib only; needs apt-get, apt-cache, dpkg-deb, modinfo and depmod (kmod), the isolinux
and syslinux-common files, and xorriso (or genisoimage).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent

KERNEL_META = "linux-image-amd64"
BUSYBOX = "busybox-static"

# Loaded by /init in this order ("module [param=value ...]"); their dependencies come along.
MODULES: tuple[str, ...] = (
    "scsi_mod scan=sync",  # probe SCSI/ATA disks before modprobe returns
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "sd_mod",
    "sr_mod",
    "ata_piix",
    "ahci",
    "e1000",
    "virtio_net",
    "button",
    "evdev",
    "pvpanic_mmio",  # QEMU's ISA pvpanic (ACPI QEMU0001): tells QEMU of a panic
    "virtio_balloon",  # gives memory back to QEMU when vmbundle lowers ram live
)

ISOLINUX_BIN = Path("/usr/lib/ISOLINUX/isolinux.bin")
ISOHYBRID_MBR = Path("/usr/lib/ISOLINUX/isohdpfx.bin")
LDLINUX_C32 = Path("/usr/lib/syslinux/modules/bios/ldlinux.c32")

STATE_MAX_AGE = 30 * 86400  # prune other builders' ISOs unused for this long


class BuildError(Exception):
    pass


class DownloadError(BuildError):
    pass


@dataclass(frozen=True)
class Versions:
    kernel_package: str  # linux-image-6.1.0-56-amd64
    kernel_version: str  # 6.1.192-2
    busybox_version: str  # 1:1.35.0-4+deb12u1+b1


_quiet = False


def log(msg: str) -> None:
    if not _quiet:
        print(f"testguest: {msg}", file=sys.stderr, flush=True)


# --- cache ---------------------------------------------------------------------------------


def cache_dir() -> Path:
    base = os.environ.get("VMBUNDLE_CACHE") or str(Path.home() / ".cache" / "vmbundle")
    return Path(base) / "guest"


def builder_files() -> list[Path]:
    return sorted(
        p
        for p in HERE.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix not in (".pyc", ".swp")
    )


def builder_digest() -> str:
    h = hashlib.sha256()
    for p in builder_files():
        h.update(p.name.encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def iso_key(digest: str, v: Versions) -> str:
    text = f"{digest}\n{v.kernel_package}={v.kernel_version}\n{BUSYBOX}={v.busybox_version}\n"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def state_path(gdir: Path, digest: str) -> Path:
    return gdir / f"state-{digest[:16]}.json"


def cached_iso(gdir: Path, digest: str) -> Path | None:
    """The ISO recorded for these builder files, if it is still there."""
    try:
        state = json.loads(state_path(gdir, digest).read_text())
        iso = gdir / str(state["iso"])
        if state["builder"] == digest and iso.is_file():
            return iso
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def symlink_atomic(target: str, link: Path) -> None:
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(target)
    os.replace(tmp, link)


@contextlib.contextmanager
def locked(gdir: Path) -> Iterator[None]:
    with open(gdir / ".lock", "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def tidy(gdir: Path, keep_digest: str) -> None:
    """Under the lock: drop leftovers of interrupted builds and long-unused ISOs."""
    for p in gdir.iterdir():
        if p.name.startswith("tmp-") and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        elif p.name.startswith(".") and p.name.endswith(".tmp"):
            with contextlib.suppress(OSError):
                p.unlink()
    now = time.time()
    referenced: set[str] = set()
    for p in gdir.glob("state-*.json"):
        try:
            state = json.loads(p.read_text())
            iso = str(state["iso"])
            old = now - p.stat().st_mtime > STATE_MAX_AGE
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if old and state.get("builder") != keep_digest:
            with contextlib.suppress(OSError):
                p.unlink()
            continue
        referenced.add(iso)
    for p in gdir.glob("testguest-*.iso"):
        if p.name not in referenced:
            with contextlib.suppress(OSError):
                p.unlink()


# --- apt -----------------------------------------------------------------------------------


def run(cmd: list[str], cwd: Path | None = None) -> str:
    env = dict(os.environ, LC_ALL="C")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def apt_opts() -> list[str]:
    # Downloading into a directory the _apt sandbox user cannot reach only prints a warning;
    # as root, ask for no sandbox at all.
    return ["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else []


class Apt:
    """apt-cache and apt-get download, with at most one apt-get update when the package
    lists are missing or stale."""

    def __init__(self) -> None:
        self.updated = False

    def update(self) -> None:
        log("apt-get update")
        self.updated = True
        run(["apt-get", "-q", "-o", "DPkg::Lock::Timeout=120", *apt_opts(), "update"])

    def candidate(self, package: str) -> tuple[str, str]:
        """(Version, Depends) of the candidate version of package."""
        out = run(["apt-cache", "show", "--no-all-versions", package])
        fields: dict[str, str] = {}
        for line in out.splitlines():
            m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
            if m:
                fields.setdefault(m.group(1), m.group(2))
        if "Version" not in fields:
            raise BuildError(f"apt-cache show {package}: no Version")
        return fields["Version"], fields.get("Depends", "")

    def _resolve(self) -> Versions:
        _, depends = self.candidate(KERNEL_META)
        m = re.search(r"\b(linux-image-[0-9][^\s,(|]*)", depends)
        if not m:
            raise BuildError(f"{KERNEL_META} depends on no kernel image: {depends!r}")
        kpkg = m.group(1)
        kver, _ = self.candidate(kpkg)
        bver, _ = self.candidate(BUSYBOX)
        return Versions(kpkg, kver, bver)

    def resolve(self) -> Versions:
        """The candidate kernel image (what linux-image-amd64 depends on) and busybox."""
        try:
            return self._resolve()
        except BuildError as e:
            if self.updated:
                raise
            log(f"resolving package versions: {e}")
        self.update()
        return self._resolve()

    def download(self, dest: Path, v: Versions) -> tuple[Path, Path]:
        specs = [f"{v.kernel_package}={v.kernel_version}", f"{BUSYBOX}={v.busybox_version}"]
        log(f"apt-get download {' '.join(specs)}")
        try:
            run(["apt-get", "-q", *apt_opts(), "download", *specs], cwd=dest)
        except BuildError as e:
            raise DownloadError(str(e)) from None
        kdeb = sorted(dest.glob(f"{v.kernel_package}_*.deb"))
        bdeb = sorted(dest.glob(f"{BUSYBOX}_*.deb"))
        if not kdeb or not bdeb:
            raise BuildError(f"apt-get download left no .deb files in {dest}")
        return kdeb[0], bdeb[0]


# --- initramfs -----------------------------------------------------------------------------


def modname(name: str) -> str:
    """Module name as the kernel sees it: file name without .ko[.xz], '-' as '_'."""
    return re.sub(r"\.ko(\.(xz|gz|zst))?$", "", name).replace("-", "_")


def module_closure(moddir: Path, wanted: list[str]) -> tuple[list[Path], set[str]]:
    """(.ko files of wanted and their dependencies, names of wanted that are built in)."""
    index: dict[str, Path] = {}
    for p in (moddir / "kernel").rglob("*.ko*"):
        index[modname(p.name)] = p
    builtin = set()
    with contextlib.suppress(OSError):
        for line in (moddir / "modules.builtin").read_text().split():
            builtin.add(modname(Path(line).name))
    files: dict[str, Path] = {}
    todo = [modname(w) for w in wanted]
    wanted_builtin: set[str] = set()
    while todo:
        name = todo.pop()
        if name in files:
            continue
        if name not in index:
            if name in builtin:
                if name in (modname(w) for w in wanted):
                    wanted_builtin.add(name)
                continue
            raise BuildError(f"kernel module {name} not found in {moddir}")
        path = index[name]
        files[name] = path
        deps = run(["modinfo", "-F", "depends", str(path)]).strip()
        todo += [modname(d) for d in deps.replace(",", " ").split()]
        for soft in run(["modinfo", "-F", "softdep", str(path)]).splitlines():
            # "pre: crc32c post: foo": load the pre: ones too (optional, skip if absent)
            m = re.match(r"\s*pre:\s*(.*?)\s*(post:.*)?$", soft)
            if m:
                todo += [modname(d) for d in m.group(1).split() if modname(d) in index]
    return sorted(files.values()), wanted_builtin


def module_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(data)
    if path.name.endswith(".ko.gz"):
        return gzip.decompress(data)
    if path.name.endswith(".ko.zst"):
        return subprocess.run(["zstd", "-dc", str(path)], check=True, capture_output=True).stdout
    return data


def newc(entries: list[tuple[str, int, bytes, int]]) -> bytes:
    """A cpio "newc" archive of (name, mode, data, rdev) entries, owned by root, mtime 0."""
    out = bytearray()

    def add(name: str, mode: int, data: bytes, rdev: int, ino: int) -> None:
        nb = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, os.major(rdev), os.minor(rdev))
        out.extend(b"070701" + b"".join(b"%08X" % f for f in fields))
        out.extend(b"%08X%08X" % (len(nb), 0))
        out.extend(nb)
        out.extend(b"\0" * (-len(out) % 4))
        out.extend(data)
        out.extend(b"\0" * (-len(out) % 4))

    for i, (name, mode, data, rdev) in enumerate(entries, start=1):
        add(name, mode, data, rdev, i)
    add("TRAILER!!!", 0, b"", 0, 0)
    return bytes(out)


def tree_entries(root: Path) -> list[tuple[str, int, bytes, int]]:
    entries: list[tuple[str, int, bytes, int]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        d = Path(dirpath)
        for name in [*dirnames, *sorted(filenames)]:
            p = d / name
            rel = str(p.relative_to(root))
            st = p.lstat()
            if p.is_symlink():
                entries.append((rel, 0o120777, os.readlink(p).encode(), 0))
            elif p.is_dir():
                entries.append((rel, 0o040755, b"", 0))
            else:
                perm = 0o755 if st.st_mode & 0o111 else 0o644
                entries.append((rel, 0o100000 | perm, p.read_bytes(), 0))
    entries.sort(key=lambda e: e[0])
    return entries


def make_initramfs(work: Path, kroot: Path, broot: Path, v: Versions, key: str) -> bytes:
    moddirs = sorted((kroot / "lib" / "modules").iterdir())
    if len(moddirs) != 1:
        raise BuildError(f"expected one kernel in {kroot}/lib/modules, found {moddirs}")
    kdir = moddirs[0]
    release = kdir.name

    stage = work / "initramfs"
    for d in (
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "dev",
        "proc",
        "sys",
        "tmp",
        "run",
        "var/log",
        "root",
        "etc/acpi/PWRF",
    ):
        (stage / d).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(broot / "bin" / "busybox", stage / "bin" / "busybox")
    (stage / "bin" / "busybox").chmod(0o755)
    (stage / "bin" / "sh").symlink_to("busybox")
    shutil.copyfile(HERE / "init", stage / "init")
    (stage / "init").chmod(0o755)
    shutil.copyfile(HERE / "udhcpc.sh", stage / "etc" / "udhcpc.sh")
    (stage / "etc" / "udhcpc.sh").chmod(0o755)
    shutil.copyfile(HERE / "poweroff.sh", stage / "etc" / "acpi" / "PWRF" / "00000080")
    (stage / "etc" / "acpi" / "PWRF" / "00000080").chmod(0o755)

    wanted = [line.split()[0] for line in MODULES]
    files, builtin = module_closure(kdir, wanted)
    mroot = stage / "lib" / "modules" / release
    for f in files:
        rel = f.relative_to(kdir)
        dest = mroot / re.sub(r"\.ko\.(xz|gz|zst)$", ".ko", str(rel))
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(module_bytes(f))
    for name in ("modules.builtin", "modules.builtin.modinfo", "modules.order"):
        if (kdir / name).exists():
            shutil.copyfile(kdir / name, mroot / name)
    run(["depmod", "-b", str(stage), release])
    log(f"{len(files)} kernel modules: {' '.join(sorted(modname(f.name) for f in files))}")

    lines = [line for line in MODULES if modname(line.split()[0]) not in builtin]
    (stage / "etc" / "modules").write_text("\n".join(lines) + "\n")
    info = {"key": key, "kernel_release": release, **asdict(v)}
    (stage / "etc" / "testguest.json").write_text(json.dumps(info, indent=2) + "\n")

    entries = tree_entries(stage)
    entries.append(("dev/console", 0o020600, b"", os.makedev(5, 1)))
    entries.sort(key=lambda e: e[0])
    archive = newc(entries)
    # The kernel's xz decoder knows CRC32 checks (not CRC64) and the x86 BCJ filter.
    filters: list[dict[str, int]] = [
        {"id": lzma.FILTER_X86},
        {"id": lzma.FILTER_LZMA2, "preset": 9, "dict_size": 8 << 20},
    ]
    return lzma.compress(archive, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, filters=filters)


def make_iso(work: Path, kroot: Path, initrd: bytes, out: Path) -> None:
    iso = work / "iso"
    (iso / "isolinux").mkdir(parents=True)
    (iso / "boot").mkdir()
    for src in (ISOLINUX_BIN, LDLINUX_C32):
        if not src.is_file():
            raise BuildError(f"{src} missing (packages isolinux, syslinux-common)")
        shutil.copyfile(src, iso / "isolinux" / src.name)
    shutil.copyfile(HERE / "isolinux.cfg", iso / "isolinux" / "isolinux.cfg")
    vmlinuz = sorted((kroot / "boot").glob("vmlinuz-*"))
    if len(vmlinuz) != 1:
        raise BuildError(f"expected one vmlinuz in {kroot}/boot, found {vmlinuz}")
    shutil.copyfile(vmlinuz[0], iso / "boot" / "vmlinuz")
    (iso / "boot" / "initrd.img").write_bytes(initrd)

    eltorito = [
        "-b",
        "isolinux/isolinux.bin",
        "-c",
        "isolinux/boot.cat",
        "-no-emul-boot",
        "-boot-load-size",
        "4",
        "-boot-info-table",
    ]
    common = ["-V", "VMBUNDLE_TESTGUEST", "-R", "-J", "-quiet", "-o", str(out)]
    if shutil.which("xorriso"):
        hybrid = ["-isohybrid-mbr", str(ISOHYBRID_MBR)] if ISOHYBRID_MBR.is_file() else []
        run(["xorriso", "-as", "mkisofs", *common, *eltorito, *hybrid, str(iso)])
    elif shutil.which("genisoimage"):
        run(["genisoimage", *common, *eltorito, str(iso)])
    else:
        raise BuildError("neither xorriso nor genisoimage is installed")


def build(gdir: Path, v: Versions, apt: Apt, key: str, out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="tmp-", dir=gdir) as tmp:
        work = Path(tmp)
        debs = work / "debs"
        debs.mkdir()
        kdeb, bdeb = apt.download(debs, v)
        kroot, broot = work / "kernel", work / "busybox"
        log(f"unpacking {kdeb.name}, {bdeb.name}")
        run(["dpkg-deb", "-x", str(kdeb), str(kroot)])
        run(["dpkg-deb", "-x", str(bdeb), str(broot)])
        initrd = make_initramfs(work, kroot, broot, v, key)
        tmp_iso = work / "out.iso"
        make_iso(work, kroot, initrd, tmp_iso)
        partial = gdir / f".{out.name}.{os.getpid()}.tmp"
        shutil.move(tmp_iso, partial)
        os.replace(partial, out)


# --- entry points --------------------------------------------------------------------------


def ensure_iso(refresh: bool = False, force: bool = False) -> Path:
    """The test guest ISO for the current builder files, built if it is not cached."""
    gdir = cache_dir()
    digest = builder_digest()
    if not refresh and not force:
        iso = cached_iso(gdir, digest)
        if iso is not None:
            return iso
    gdir.mkdir(parents=True, exist_ok=True)
    with locked(gdir):
        if not refresh and not force:
            iso = cached_iso(gdir, digest)  # built by someone else meanwhile
            if iso is not None:
                return iso
        tidy(gdir, digest)
        apt = Apt()
        while True:
            versions = apt.resolve()
            key = iso_key(digest, versions)
            out = gdir / f"testguest-{key}.iso"
            if out.is_file() and not force:
                break
            log(
                f"building {out.name}: {versions.kernel_package} {versions.kernel_version}, "
                f"{BUSYBOX} {versions.busybox_version}"
            )
            started = time.monotonic()
            try:
                build(gdir, versions, apt, key, out)
            except DownloadError as e:
                if apt.updated:
                    raise
                log(f"{e}; the package lists may be stale")
                apt.update()  # then resolve again: the versions may have moved on
                continue
            log(f"built {out} ({out.stat().st_size} bytes) in {time.monotonic() - started:.1f}s")
            break
        state = {"builder": digest, "iso": out.name, "key": key, "versions": asdict(versions)}
        write_atomic(state_path(gdir, digest), (json.dumps(state, indent=2) + "\n").encode())
        symlink_atomic(out.name, gdir / "testguest.iso")
        return out


def main(argv: list[str] | None = None) -> int:
    global _quiet
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--refresh",
        action="store_true",
        help="resolve the package versions again (apt-cache); rebuild if they moved",
    )
    ap.add_argument("--force", action="store_true", help="rebuild even if the ISO is cached")
    ap.add_argument("-q", "--quiet", action="store_true", help="print only the ISO path")
    args = ap.parse_args(argv)
    _quiet = args.quiet
    try:
        iso = ensure_iso(refresh=args.refresh, force=args.force)
    except (BuildError, OSError, subprocess.CalledProcessError) as e:
        print(f"testguest: build failed: {e}", file=sys.stderr)
        return 1
    print(iso)
    return 0


if __name__ == "__main__":
    sys.exit(main())
