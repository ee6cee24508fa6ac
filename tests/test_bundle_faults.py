"""Faults of the world get one line (issue 9, "Faults get one line"): on a real full
filesystem (a small tmpfs filled up), a real read-only one and a real refused
permission (root without CAP_DAC_OVERRIDE, on a bundle it does not own), every
command that would change a bundle exits non-zero with one line that names the
guest, the file and the cause as strerror(3) says it, and leaves the bundle exactly
as it was: vm.json's bytes, its disks, and no temporary file.

Only the real `vmbundle` command is driven; the bundle is read as files."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.host import VMBUNDLE, TestHost, test_host

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs: needs root")

# ---- EXPECTED EXIT STATUS -------------------------------------------------------
# The codes these tests hold the CLI to. Every assertion also checks `!= 0` first, so
# if the implementation documents other codes in the README, change only these two.
EXIT_FAULT = 1  # a full or read-only filesystem, an I/O error
EXIT_PERMISSION = 100  # a permission refused (EACCES)
# ----------------------------------------------------------------------------------

NOBODY = 65534
ENOSPC = os.strerror(errno.ENOSPC)  # "No space left on device"
EROFS = os.strerror(errno.EROFS)  # "Read-only file system"
EACCES = os.strerror(errno.EACCES)  # "Permission denied"


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[TestHost]:
    """A host whose bundle root is a 16 MiB tmpfs of its own, unmounted afterwards."""
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", str(root)], check=True
    )
    try:
        with test_host(tmp_path, root=root) as h:
            yield h
    finally:
        subprocess.run(["umount", str(root)], check=True)


def _make_guest(h: TestHost) -> Path:
    """web01 with a 1M disk and a CD-ROM holding an ISO; a second ISO to attach."""
    for name in ("a.iso", "b.iso"):
        (h.iso_dir / name).write_bytes(b"\0" * 4096)
    iso = str(h.iso_dir / "a.iso")
    h.vmbundle("create", "web01", "--ram", "256M", "--vcpus", "1", "--disk", "1M", "--iso", iso)
    return h.root / "web01"


def _tree(root: Path) -> dict[str, str]:
    """Every directory and file under root, hidden ones too, with a hash of each file."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        for name in dirnames:
            out[str((d / name).relative_to(root)) + "/"] = "dir"
        for name in filenames:
            p = d / name
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _fill(root: Path) -> None:
    """Write one file until the filesystem refuses another byte."""
    fd = os.open(root / "fill", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        chunk = b"\xa5" * (1 << 16)
        while True:
            try:
                if os.write(fd, chunk) < len(chunk):
                    chunk = chunk[:1]
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    return
                chunk = chunk[:1]
    finally:
        os.close(fd)


def _edits(h: TestHost) -> list[tuple[str, ...]]:
    return [
        ("set", "web01", "description=x"),
        ("set", "web01", "ram=512M"),
        ("disk", "add", "web01", "1M"),
        ("iso", "detach", "web01"),
        ("iso", "attach", "web01", str(h.iso_dir / "b.iso")),
    ]


def _files_named(bundle: Path, args: tuple[str, ...]) -> list[str]:
    """The files one of these commands may name in its line: vm.json, or for disk
    add the new image (disk1.qcow2) or vm.json."""
    vm_json = str(bundle / "vm.json")
    return [str(bundle / "disk1.qcow2"), vm_json] if args[0] == "disk" else [vm_json]


def _one_line_problems(
    proc: subprocess.CompletedProcess[str],
    args: tuple[str, ...],
    guest: str,
    files: list[str],
    cause: str,
    code: int,
) -> list[str]:
    """What is wrong with how a command reported a fault; empty when it is right."""
    what = f"vmbundle {' '.join(args)}: exit {proc.returncode}, stderr {proc.stderr!r}"
    if proc.returncode == 0:
        return [f"succeeded: {what}"]
    lines = proc.stderr.splitlines()
    if "Traceback" in proc.stderr:
        return [f"traceback ending {lines[-1]!r}: vmbundle {' '.join(args)}"]
    if len(lines) != 1:
        return [f"{len(lines)} lines, not 1: {what}"]
    line, problems = lines[0], []
    if not line.startswith(f"{guest}: "):
        problems.append(f"does not start with {guest + ': '!r}: {what}")
    if not any(f in line for f in files):
        problems.append(f"names none of {files}: {what}")
    if cause not in line:
        problems.append(f"does not say {cause!r}: {what}")
    if proc.returncode != code:  # EXPECTED EXIT STATUS: see EXIT_* at the top
        problems.append(f"EXPECTED EXIT {code}: {what}")
    return problems


def _without_dac_override(h: TestHost, *args: str) -> subprocess.CompletedProcess[str]:
    """vmbundle as root that file permissions bind: no CAP_DAC_OVERRIDE,
    CAP_DAC_READ_SEARCH or CAP_FOWNER. Still uid 0, so the interpreter, the venv and
    the run directory stay reachable wherever they live (an unprivileged user
    cannot reach a venv under /root or a 0700 home)."""
    drop = "-dac_override,-dac_read_search,-fowner"
    return subprocess.run(
        ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", VMBUNDLE, *args],
        capture_output=True,
        text=True,
        env=h.env(),
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


CREATE_WEB02 = ("create", "web02", "--ram", "256M", "--vcpus", "1", "--disk", "64M")


def test_a_full_filesystem_changes_nothing(small_fs: TestHost) -> None:
    bundle = _make_guest(small_fs)
    _fill(small_fs.root)
    vm_json = (bundle / "vm.json").read_bytes()
    before = _tree(small_fs.root)
    problems: list[str] = []
    for args in _edits(small_fs):
        proc = small_fs.vmbundle(*args, check=False)
        problems += _one_line_problems(
            proc, args, "web01", _files_named(bundle, args), ENOSPC, EXIT_FAULT
        )
        if (bundle / "vm.json").read_bytes() != vm_json:
            problems.append(f"vm.json changed: {args}")
        if (after := _tree(small_fs.root)) != before:
            problems.append(f"the bundle root changed: {args}: {before} -> {after}")
            before = after
    assert not problems, "\n".join(problems)
    assert small_fs.vmbundle("validate", "web01").stdout == "web01: valid\n"


def test_create_on_a_full_filesystem_leaves_no_bundle(small_fs: TestHost) -> None:
    _make_guest(small_fs)
    _fill(small_fs.root)
    before = _tree(small_fs.root)
    proc = small_fs.vmbundle(*CREATE_WEB02, check=False)
    web02 = small_fs.root / "web02"
    problems = _one_line_problems(proc, CREATE_WEB02, "web02", [str(web02)], ENOSPC, EXIT_FAULT)
    assert not problems, "\n".join(problems)
    assert not web02.exists()
    assert _tree(small_fs.root) == before


def _every_command(
    h: TestHost,
    bundle: Path,
    run: Callable[..., subprocess.CompletedProcess[str]],
    cause: str,
    code: int,
) -> list[str]:
    """Every edit of web01, then a create of web02, each run by run; the problems."""
    problems: list[str] = []
    for args in _edits(h):
        problems += _one_line_problems(
            run(*args), args, "web01", _files_named(bundle, args), cause, code
        )
    web02 = str(h.root / "web02")
    problems += _one_line_problems(run(*CREATE_WEB02), CREATE_WEB02, "web02", [web02], cause, code)
    return problems


def test_a_read_only_filesystem_changes_nothing(small_fs: TestHost) -> None:
    bundle = _make_guest(small_fs)
    vm_json = (bundle / "vm.json").read_bytes()
    before = _tree(small_fs.root)
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs.root)], check=True)
    problems = _every_command(
        small_fs, bundle, lambda *a: small_fs.vmbundle(*a, check=False), EROFS, EXIT_FAULT
    )
    assert not problems, "\n".join(problems)
    assert (bundle / "vm.json").read_bytes() == vm_json
    assert _tree(small_fs.root) == before
    assert small_fs.vmbundle("validate", "web01").stdout == "web01: valid\n"


def test_a_refused_permission_changes_nothing(small_fs: TestHost) -> None:
    """A bundle root and bundle owned by another user (0755, vm.json 0644): readable,
    not writable, by a vmbundle that file permissions bind."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    bundle = _make_guest(small_fs)
    for dirpath, _, filenames in os.walk(small_fs.root):
        for p in [dirpath, *(os.path.join(dirpath, f) for f in filenames)]:
            os.chown(p, NOBODY, NOBODY)
    assert (small_fs.root.stat().st_mode & 0o777, bundle.stat().st_mode & 0o777) == (0o755, 0o755)
    assert (bundle / "vm.json").stat().st_mode & 0o777 == 0o644
    vm_json = (bundle / "vm.json").read_bytes()
    before = _tree(small_fs.root)
    problems = _every_command(
        small_fs, bundle, lambda *a: _without_dac_override(small_fs, *a), EACCES, EXIT_PERMISSION
    )
    assert not problems, "\n".join(problems)
    assert (bundle / "vm.json").read_bytes() == vm_json
    assert _tree(small_fs.root) == before
    assert small_fs.vmbundle("validate", "web01").stdout == "web01: valid\n"
