"""A throwaway host configuration for tests that drive the real `vmbundle` command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs

VMBUNDLE = str(Path(sys.executable).parent / "vmbundle")


@attrs.frozen
class TestHost:
    config: Path
    root: Path
    iso_dir: Path
    run_dir: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "VMBUNDLE_CONFIG": str(self.config)}

    def vmbundle(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [VMBUNDLE, *args], capture_output=True, text=True, env=self.env(), timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"vmbundle {' '.join(args)} exited {proc.returncode}: {proc.stderr}"
            )
        return proc

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [VMBUNDLE, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
            stdin=subprocess.DEVNULL,
        )


TestHost.__test__ = False  # type: ignore[attr-defined]


@contextmanager
def test_host(
    tmp_path: Path,
    root: Path | str | None = None,
    iso_dir: Path | None = None,
    accelerator: str = "auto",
) -> Iterator[TestHost]:
    """A host config with a bundle root, an ISO directory and a short run directory
    (QEMU refuses socket paths of 108 bytes or more, and pytest's are long)."""
    run_dir = Path(tempfile.mkdtemp(prefix="vmb", dir="/tmp"))
    root_path = Path(root) if root is not None else tmp_path / "root"
    if root is None:
        root_path.mkdir()
    iso = iso_dir or tmp_path / "iso"
    iso.mkdir(exist_ok=True)
    config = tmp_path / "vmbundle.toml"
    config.write_text(
        f'[bundles]\nroots = ["{root if isinstance(root, str) else root_path}"]\niso_dirs = ["{iso}"]\n'
        f'[run]\ndir = "{run_dir}"\n[qemu]\naccelerator = "{accelerator}"\n'
    )
    try:
        yield TestHost(config=config, root=root_path, iso_dir=iso, run_dir=run_dir)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


test_host.__test__ = False  # type: ignore[attr-defined]
