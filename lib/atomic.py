"""Whole-file writes that a crash cannot leave half done."""

from __future__ import annotations

import contextlib
import os
import tempfile
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
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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


def _discard(tmp: str) -> None:
    # On a file system that went read-only under us even this can fail; the
    # fault that caused it is the one worth reporting.
    with contextlib.suppress(OSError):
        Path(tmp).unlink(missing_ok=True)
