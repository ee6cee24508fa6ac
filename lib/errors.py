"""Errors that reach an operator as one line.

Every error the core raises is a VmbundleError: its str() is the single line
printed, and exit_code is what the process exits with. An error's kind is its
type, so a caller tells a guest that is busy from one that is missing by the
class it catches, never by reading the message.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

# SMF method exit codes (smf_method(7), libscf.h; illumos.md section 2); the CLI
# uses them too, so a method and the command behind it fail the same way.
EXIT_FAILURE = 1
SMF_EXIT_ERR_FATAL = 95
SMF_EXIT_ERR_CONFIG = 96
SMF_EXIT_ERR_NOSMF = 99
SMF_EXIT_ERR_PERM = 100


class VmbundleError(Exception):
    """A failure with one clear line for the operator."""

    exit_code: int = EXIT_FAILURE


class UsageError(VmbundleError):
    """A bad command-line argument."""

    exit_code = 2


class ConfigError(VmbundleError):
    """A bad vm.json or a bad host configuration: the guest cannot run as it is.

    `problems` holds every problem found, each already a complete line
    ("web01: disks[1].size: must be a size like 20G, got \"big\"").
    """

    exit_code = SMF_EXIT_ERR_CONFIG

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(self.problems[0] if self.problems else "invalid configuration")

    def __str__(self) -> str:
        return "\n".join(self.problems)


class ToolError(VmbundleError):
    """An outside tool (zfs, qemu-img, qemu, svc*) failed."""

    def __init__(
        self, argv: Sequence[str], returncode: int | None, stderr: str, guest: str | None = None
    ) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr.strip()
        self.guest = guest
        detail = self.stderr.splitlines()[-1] if self.stderr else f"exit status {returncode}"
        line = f"{self.argv[0]}: {detail}"
        super().__init__(f"{guest}: {line}" if guest else line)

    def about(self, guest: str) -> ToolError:
        """The same failure, of the same kind, its line naming the guest it happened to."""
        if self.guest is not None:
            return self
        return type(self)(self.argv, self.returncode, self.stderr, guest)


class ToolMissing(ToolError):
    """The tool is not installed (not on PATH): a host without SMF has no svcprop."""


class NoSuchGuest(VmbundleError):
    """No bundle and no SMF instance by that name."""


class GuestRunning(VmbundleError):
    """The operation needs the guest stopped, and its QEMU runs."""


class BundleBusy(VmbundleError):
    """Another vmbundle holds the bundle's lock for longer than a caller waits."""


class HostFault(VmbundleError):
    """A fault of the world, not of the input: a full or read-only file system, a
    permission refused, an I/O error, a file that went away mid-operation. A
    refused permission exits 100 (SMF_EXIT_ERR_PERM: retrying cannot help);
    the rest exit 1, which SMF retries."""

    def __init__(self, guest: str, exc: OSError, *, unchanged: bool = True) -> None:
        """unchanged: the operation left everything as it was (the core's
        operations do); False where that is not known."""
        self.errno = exc.errno
        where = f"{exc.filename}: " if exc.filename else ""
        cause = exc.strerror or str(exc)
        super().__init__(
            f"{guest}: {where}{cause}" + ("; nothing was changed" if unchanged else "")
        )
        if exc.errno in (errno.EACCES, errno.EPERM):
            self.exit_code = SMF_EXIT_ERR_PERM


def naming(path: Path, exc: OSError) -> OSError:
    """exc as if it had happened to path: a fault on a temporary file beside a
    file is reported as a fault of the file the operator knows."""
    return type(exc)(exc.errno, exc.strerror, str(path))


@contextmanager
def faults_of(guest: str) -> Iterator[None]:
    """Turn an OSError in the with-block into guest's HostFault (one line, no
    traceback), and make a failed tool's line name the guest."""
    try:
        yield
    except OSError as exc:
        raise HostFault(guest, exc) from None
    except ToolError as exc:
        raise exc.about(guest) from None
