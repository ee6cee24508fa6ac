"""Every bad bundle in the corpus: `vmbundle validate` exits 1 and `vmbundle run`
exits 96 (SMF_EXIT_ERR_CONFIG), each with the case's line, and neither changes a
byte of the bundle or of anything beside it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.bad_bundles import CASES, Case, build, fingerprint
from support.host import TestHost, test_host


@pytest.fixture
def host(tmp_path: Path) -> Iterator[TestHost]:
    (tmp_path / "outside").mkdir()
    with test_host(tmp_path) as h:
        yield h


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 25
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_bundle_is_refused_and_left_alone(case: Case, host: TestHost, tmp_path: Path) -> None:
    bundle = build(case, host.root, tmp_path / "outside")
    before = fingerprint(host.root), fingerprint(tmp_path / "outside")
    expect = case.expect.format(name=case.name)

    validate = host.vmbundle("validate", str(bundle), check=False)
    assert validate.returncode == 1, validate.stderr
    assert expect in validate.stderr
    assert validate.stdout == ""

    run = host.vmbundle("run", str(bundle), check=False)
    assert run.returncode == 96, run.stderr
    assert expect in run.stderr
    assert not (host.run_dir / case.name).exists()

    assert (fingerprint(host.root), fingerprint(tmp_path / "outside")) == before
