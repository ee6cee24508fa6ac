"""The `qemu-img` command lines: create, info, resize and convert disk images.

Every image path is passed absolute: qemu-img reads "proto:..." before the first
"/" as a protocol and a leading "-" as an option, and it reports a backing file
relative to the path it was given.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from vmbundle.adapters.run import run_tool
from vmbundle.errors import ToolError, ToolMissing, VmbundleError

DEFAULT_BINARY = "qemu-img"
FORMATS = ("qcow2", "raw")

ProgressCallback = Callable[[float], None]

# `qemu-img convert -p` writes "    (12.34/100%)\r" to stdout, one per step.
_PROGRESS = re.compile(r"\((\d+(?:\.\d+)?)/100%\)")
# A backing file name like "nbd://..." or "json:{...}" is not a path.
_PROTOCOL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


@attrs.frozen
class ImageInfo:
    filename: str
    format: str
    virtual_size: int
    actual_size: int | None
    # The backing file as qemu-img would open it: a path, or a protocol string
    # like "nbd://..." that is not one. None when the image has no backing file.
    backing_filename: str | None
    backing_format: str | None


def _image(path: Path) -> str:
    return str(path.absolute())


def _format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise VmbundleError(f"{fmt!r}: not a disk format vmbundle uses ({', '.join(FORMATS)})")
    return fmt


def _message(stderr: str, binary: str) -> str:
    """qemu-img's error text, arranged for ToolError (which shows the last line, prefixed
    with the command): without qemu-img's own "qemu-img: " prefix, and with warnings
    first, since a refused shrink prints its warning after the error."""
    prefix = f"{os.path.basename(binary)}: "
    lines = [line.removeprefix(prefix) for line in stderr.strip().splitlines()]
    warnings = [line for line in lines if line.startswith("warning: ")]
    return "\n".join([*warnings, *(line for line in lines if not line.startswith("warning: "))])


def _run(argv: Sequence[str], timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
    proc = run_tool(argv, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise ToolError(argv, proc.returncode, _message(proc.stderr or proc.stdout, argv[0]))
    return proc


def create(path: Path, fmt: str, size_bytes: int, *, binary: str = DEFAULT_BINARY) -> None:
    """Make a new empty image (a raw one is a sparse file).

    qemu-img rounds the size up to a multiple of 512 bytes. The file is made here
    first, exclusively: qemu-img create truncates an existing file without asking,
    and a disk is never worth that; and a directory that refuses the file (read
    only, no permission) raises the OSError itself, with its errno, rather than
    qemu-img's message. A failed create leaves no file behind.
    """
    fmt = _format(fmt)
    with _new_file(path):
        _run([binary, "create", "-f", fmt, _image(path), str(size_bytes)])


@contextlib.contextmanager
def _new_file(path: Path) -> Iterator[None]:
    """Make path, exclusively, for qemu-img to write in the with-block; take it
    away again if the block fails."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        raise VmbundleError(f"{path}: already exists; not overwriting it") from None
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise


def info(path: Path, *, binary: str = DEFAULT_BINARY) -> ImageInfo:
    """What qemu-img reads from this one image; the backing file is not opened.

    -U (force share) lets it read an image that a running QEMU holds locked.
    """
    argv = [binary, "info", "--output=json", "-U", _image(path)]
    out = _run(argv, timeout=60.0).stdout
    try:
        doc = json.loads(out)
        if not isinstance(doc, dict):
            raise TypeError("not a JSON object")
        return _image_info(doc, path)
    except (ValueError, KeyError, TypeError) as exc:
        raise ToolError(argv, 0, f"unexpected qemu-img info output: {exc}") from None


def _image_info(doc: dict[str, Any], path: Path) -> ImageInfo:
    backing = doc.get("full-backing-filename")
    if backing is None and doc.get("backing-filename") is not None:
        backing = str(doc["backing-filename"])
        if not backing.startswith("/") and _PROTOCOL.match(backing) is None:
            backing = str(path.absolute().parent / backing)
    actual = doc.get("actual-size")
    backing_format = doc.get("backing-filename-format")
    return ImageInfo(
        filename=str(doc["filename"]),
        format=str(doc["format"]),
        virtual_size=_int(doc["virtual-size"]),
        actual_size=None if actual is None else _int(actual),
        backing_filename=None if backing is None else str(backing),
        backing_format=None if backing_format is None else str(backing_format),
    )


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected a number, got {value!r}")
    return value


def resize(
    path: Path,
    size_bytes: int,
    fmt: str,
    allow_shrink: bool = False,
    *,
    binary: str = DEFAULT_BINARY,
) -> None:
    """Set the image's virtual size; qemu-img refuses to shrink without allow_shrink."""
    shrink = ["--shrink"] if allow_shrink else []
    _run([binary, "resize", "-f", _format(fmt), *shrink, _image(path), str(size_bytes)])


def convert(
    src: Path,
    src_fmt: str,
    dst: Path,
    dst_fmt: str,
    progress: ProgressCallback | None,
    *,
    binary: str = DEFAULT_BINARY,
) -> None:
    """Copy src into a new image dst, calling progress with a rising percentage up to 100.

    src may be any format qemu-img reads (an imported vmdk, say); dst is qcow2 or raw,
    and must not exist yet (_new_file). No timeout: copying a large disk takes as
    long as it takes.
    """
    argv = [
        binary, "convert", "-p",
        "-f", src_fmt, "-O", _format(dst_fmt),
        _image(src), _image(dst),
    ]  # fmt: skip
    # stderr goes to a file, so that reading stdout alone cannot deadlock.
    with _new_file(dst), tempfile.TemporaryFile() as stderr_file:
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr_file
            )
        except FileNotFoundError as exc:
            raise ToolMissing(argv, None, f"command not found: {binary}") from exc
        try:
            assert proc.stdout is not None
            last = _follow_progress(proc.stdout.fileno(), progress)
            returncode = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            assert proc.stdout is not None
            proc.stdout.close()
        if returncode != 0:
            stderr_file.seek(0)
            stderr = stderr_file.read().decode(errors="replace")
            raise ToolError(argv, returncode, _message(stderr, binary))
    if progress is not None and last < 100.0:
        progress(100.0)


def _follow_progress(fd: int, progress: ProgressCallback | None) -> float:
    """Read "(NN.NN/100%)" steps until EOF; report each value above the last one."""
    last = -1.0
    pending = b""
    while True:
        chunk = os.read(fd, 4096)
        pending += chunk
        *steps, pending = re.split(rb"[\r\n]", pending)
        if not chunk:
            steps.append(pending)
        for step in steps:
            match = _PROGRESS.search(step.decode("ascii", errors="replace"))
            value = float(match.group(1)) if match else -1.0
            if value > last:
                last = value
                if progress is not None:
                    progress(value)
        if not chunk:
            return last
