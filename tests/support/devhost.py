"""Whole devhosts for tests, driven with the real `devhost` command, and their
teardown: down, then the pool and the short run directory, by name and pid."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from devhost import zfspool

DEVHOST = str(Path(sys.executable).parent / "devhost")


def devhost(
    *args: str, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [DEVHOST, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"devhost {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def tear_down(state: Path) -> None:
    """Whatever a test left up: down, then the pool's file (the pool is exported)."""
    if state.is_dir():
        devhost("down", "--state", str(state), check=False)
    pool = zfspool.pool_for(state)
    if pool.name in zfspool.imported_pools():
        zfspool.destroy_pool(pool.name)
    pool.vdev.unlink(missing_ok=True)
    short_run = Path("/tmp") / f"dh-{pool.name[2:]}"
    if short_run.is_dir():
        shutil.rmtree(short_run)
