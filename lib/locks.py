"""Host-wide locks: flock on a file, with a deadline instead of waiting forever."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vmbundle.errors import VmbundleError


@contextmanager
def exclusive(path: Path, timeout: float = 30.0) -> Iterator[None]:
    """Hold an exclusive flock on path (created if missing) for the with-block."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise VmbundleError(
                        f"{path}: still locked by another vmbundle after {timeout:g}s"
                    ) from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)
