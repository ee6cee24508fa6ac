"""Helpers for devhost's own tests: a booted simulated kernel with its tool scripts,
and whole devhosts driven with the real `devhost` command."""

from __future__ import annotations

import subprocess
from pathlib import Path

import attrs
from support.devhost import devhost, tear_down

from devhost import tools
from devhost.kernel import arc

__all__ = ["devhost", "tear_down"]

GIB = 1 << 30


@attrs.frozen
class KernelHost:
    """A state directory with a booted kernel and the tool scripts, no pool."""

    state: Path

    @property
    def bin(self) -> Path:
        return tools.bin_dir(self.state)

    def run(
        self, tool: str, *args: str, stdin: str = "", timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / tool), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def stat(self, name: str) -> int:
        out = self.run("kstat", "-p", f"zfs:0:arcstats:{name}")
        assert out.returncode == 0, out.stderr
        return int(out.stdout.split("\t")[1])

    def mdb(self, commands: str, write: bool = False) -> subprocess.CompletedProcess[str]:
        return self.run("mdb", "-kw" if write else "-k", stdin=commands)

    def address(self, stat: str) -> str:
        """What a backend does first: the address of arcstat_<stat>.value.ui64."""
        out = self.mdb(f"arc_stats::print -a arcstat_{stat}.value.ui64\n")
        assert out.returncode == 0 and not out.stderr, out.stderr
        return out.stdout.split()[0]


def boot_kernel(
    state: Path, physmem: int = 16 * GIB, speed: int = arc.DEFAULT_SHRINK_SPEED
) -> KernelHost:
    arc.boot(state, physmem, shrink_speed=speed)
    tools.install(state)
    return KernelHost(state)


def up_args(physmem: str | None = "16G") -> tuple[str, ...]:
    """`devhost up` options for a test: a small pool."""
    return ("--pool-size", "256M", *(("--physmem", physmem) if physmem else ()))
