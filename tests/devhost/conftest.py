"""Fixtures for devhost's own tests (helpers are in dh_support)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from dh_support import KernelHost, boot_kernel, tear_down
from smf_support import SmfHost, smf_host
from support.zfs_pool import Pool


@pytest.fixture
def kernel_host(tmp_path: Path) -> KernelHost:
    """A booted simulated kernel (16 GiB) and its tool scripts; no pool."""
    return boot_kernel(tmp_path / "host")


@pytest.fixture
def zfs_daemon(zfs_pool: Pool) -> Pool:
    """Keep zfs-fuse up between devhost tests (the session's test pool holds it):
    without it, every `down` would stop the daemon and the next `up` restart it."""
    if shutil.which("zfs-fuse") is None:
        pytest.skip("zfs-fuse is not installed")
    return zfs_pool


@pytest.fixture
def devhost_states(zfs_daemon: Pool) -> Iterator[list[Path]]:
    """Append the state directories of the devhosts a test brings up: each is torn
    down (restarter, pool, run directory) after the test."""
    made: list[Path] = []
    yield made
    for state in made:
        tear_down(state)


@pytest.fixture(name="smf_host")
def _smf_host() -> Iterator[SmfHost]:
    """A state directory with the tool scripts and a running restarter (no pool, no
    kernel): `state`, `bin`, `env`, `run(*argv)`, `wait_state(fmri, state)`.
    Teardown shuts the restarter down, kills what its contracts left, by pid, and
    removes the directory."""
    with smf_host() as host:
        yield host
