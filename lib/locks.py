"""Locks: flock on a file, with a deadline instead of waiting forever.

A bundle's lock serialises every read-modify-write of its vm.json and its
files (set, disk add and resize, iso attach and detach, the start method's MACs
and boot_once). It lives in the run directory, `<run_dir>/locks/<name>.lock`,
never in the bundle, so a snapshot or a replica never carries it; and beside
the guest's own run directory, which a start clears.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from vmbundle.errors import BundleBusy, HostFault, VmbundleError

LOCKS_DIR = "locks"
# A disk copied in (disk add --from) holds the lock while it copies; an edit
# behind it waits this long before it says the guest is busy.
BUNDLE_WAIT = 60.0


class LockTimeout(VmbundleError):
    """Another process held the lock past the deadline."""


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
                    raise LockTimeout(
                        f"{path}: still locked by another vmbundle after {timeout:g}s"
                    ) from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)


@contextmanager
def try_exclusive(path: Path) -> Iterator[bool]:
    """An exclusive flock on path if it is free now: True in the with-block when
    held, False (at once, nothing held) when another process has it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
        else:
            yield True
    finally:
        os.close(fd)


def bundle_lock_path(run_dir: Path, name: str) -> Path:
    return run_dir / LOCKS_DIR / f"{name}.lock"


@contextmanager
def bundle(run_dir: Path, name: str, timeout: float = BUNDLE_WAIT) -> Iterator[None]:
    """Hold guest name's bundle lock for the with-block."""
    path = bundle_lock_path(run_dir, name)
    with ExitStack() as held:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            held.enter_context(exclusive(path, timeout))
        except LockTimeout:
            raise BundleBusy(
                f"{name}: busy: another vmbundle command has been changing it for "
                f"{timeout:g}s (it holds {path}); try again when that one is done"
            ) from None
        except OSError as exc:
            raise HostFault(name, exc) from None
        yield
