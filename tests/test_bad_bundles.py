"""Every bad bundle in the corpus: `vmbundle validate` exits 1 and `vmbundle run`
exits 96 (SMF_EXIT_ERR_CONFIG), each with the case's line, and neither changes a
byte of the bundle or of anything beside it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.bad_bundles import CASES, Case, build, fingerprint

VMBUNDLE = str(Path(sys.executable).parent / "vmbundle")


@pytest.fixture
def host(tmp_path: Path) -> Path:
    (tmp_path / "iso").mkdir()
    (tmp_path / "root").mkdir()
    (tmp_path / "outside").mkdir()
    conf = tmp_path / "vmbundle.toml"
    conf.write_text(
        f'[bundles]\nroots = ["{tmp_path}/root"]\niso_dirs = ["{tmp_path}/iso"]\n'
        f'[run]\ndir = "{tmp_path}/run"\n'
    )
    return conf


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 25
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_bundle_is_refused_and_left_alone(case: Case, host: Path, tmp_path: Path) -> None:
    bundle = build(case, tmp_path / "root", tmp_path / "outside")
    before = fingerprint(tmp_path / "root"), fingerprint(tmp_path / "outside")
    expect = case.expect.format(name=case.name)

    validate = subprocess.run(
        [VMBUNDLE, "--config", str(host), "validate", str(bundle)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert validate.returncode == 1, validate.stderr
    assert expect in validate.stderr
    assert validate.stdout == ""

    run = subprocess.run(
        [VMBUNDLE, "--config", str(host), "run", str(bundle)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 96, run.stderr
    assert expect in run.stderr
    assert not (tmp_path / "run" / case.name).exists()

    assert (fingerprint(tmp_path / "root"), fingerprint(tmp_path / "outside")) == before
