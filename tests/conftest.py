"""Shared fixtures; tests/ goes on sys.path so that `support` imports work."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
# devhost's own test helpers (smf_support, dh_support) serve the product's tests
# too; appended, so the name `devhost` stays the package, not that folder.
sys.path.append(str(Path(__file__).parent / "devhost"))

import pytest
from support.zfs_pool import Pool
from support.zfs_pool import zfs_pool as _zfs_pool


@pytest.fixture(scope="session")
def zfs_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    """One zfs-fuse pool for the whole run; tests make their own datasets in it."""
    if shutil.which("zpool") is None or shutil.which("zfs-fuse") is None:
        pytest.skip("zfs-fuse is not installed")
    with _zfs_pool(tmp_path_factory.mktemp("zfs")) as pool:
        yield pool
