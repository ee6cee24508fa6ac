"""Whole-file writes that a crash cannot leave half done."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from vmbundle.errors import naming


def write_atomic(path: Path, data: bytes, mode: int = 0o644, *, durable: bool = True) -> None:
    """Replace path with data: temporary file beside it, fsync, rename, fsync the
    directory. durable=False skips the fsyncs, for the run directory's files:
    they must never be seen half written, but they do not outlive a reboot.

    An OSError (a full or read-only file system, a refused permission) names
    path, not the temporary file, and leaves path as it was and no temporary
    file behind."""
    try:
        fd, tmp = _temporary_beside(path)
    except OSError as exc:
        raise naming(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp)
        raise naming(path, exc) from None
    except BaseException:
        _discard(tmp)
        raise
    if not durable:
        return
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _temporary_beside(path: Path) -> tuple[int, str]:
    """A new file beside path, made exclusively, 0600 until written: what
    tempfile.mkstemp does, without importing tempfile (with shutil and random,
    7 ms of the start method's quick path, which writes its boot record here)."""
    while True:
        tmp = str(path.parent / f".{path.name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), tmp
        except FileExistsError:
            continue


def _discard(tmp: str) -> None:
    # On a file system that went read-only under us even this can fail; the
    # fault that caused it is the one worth reporting.
    with contextlib.suppress(OSError):
        Path(tmp).unlink(missing_ok=True)
