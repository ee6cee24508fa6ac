"""Errors that reach an operator as one line.

Every error the CLI or a method reports is a VmbundleError: its str() is the
single line printed, and exit_code is what the process exits with.
"""

from __future__ import annotations

from collections.abc import Sequence

# SMF method exit codes (smf_method(7), libscf.h); the CLI uses them too, so a
# method and the command behind it fail the same way.
EXIT_FAILURE = 1
SMF_EXIT_ERR_FATAL = 95
SMF_EXIT_ERR_CONFIG = 96
SMF_EXIT_ERR_NOSMF = 99


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

    def __init__(self, argv: Sequence[str], returncode: int | None, stderr: str) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr.strip()
        detail = self.stderr.splitlines()[-1] if self.stderr else f"exit status {returncode}"
        super().__init__(f"{self.argv[0]}: {detail}")
