"""The vmbundle wheel (issue 9, "Packaging"): `pip wheel .` at the top of the tree
builds a distribution an appliance can install, without devhost (the illumos
emulator) or the tests, and whose console scripts all point at code it contains.

The wheel is built from a copy of the tracked (and new, unignored) files, so the
build leaves no build/ or *.egg-info in the source tree."""

from __future__ import annotations

import ast
import configparser
import importlib.metadata
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CONSOLE_SCRIPTS = {"vmbundle", "vmbundle-method", "vmbundle-controller"}
MUST_CONTAIN = ["vmbundle/__init__.py", "vmbundle/method/main.py", "vmbundle/manifests/vm.xml"]


def _copy_of_the_tree(dest: Path) -> Path:
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if not src.is_file():  # deleted in the work tree, not yet in the index
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    return dest


def _setuptools_is_recent() -> bool:
    """Whether this environment's setuptools satisfies pyproject's setuptools>=68,
    so the wheel can be built offline without build isolation."""
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return False
    major = version.split(".")[0]
    return major.isdigit() and int(major) >= 68


def _build_wheel(tmp_path: Path) -> Path:
    src = _copy_of_the_tree(tmp_path / "src")
    out = tmp_path / "wheels"
    isolation = ["--no-build-isolation"] if _setuptools_is_recent() else []
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheels = list(out.glob("vmbundle-*.whl"))
    assert len(wheels) == 1, sorted(p.name for p in out.iterdir())
    return wheels[0]


def _defines(source: bytes, function: str) -> bool:
    tree = ast.parse(source)
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == function
        for node in tree.body
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    before = sorted(p.name for p in ROOT.iterdir())
    path = _build_wheel(tmp_path_factory.mktemp("wheel"))
    assert sorted(p.name for p in ROOT.iterdir()) == before, "the build wrote into the tree"
    with zipfile.ZipFile(path) as z:
        yield z


def test_the_wheel_holds_the_product_and_nothing_else(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    top = {n.split("/")[0] for n in names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert len(dist_info) == 1 and top - dist_info == {"vmbundle"}, sorted(top)
    assert [n for n in names if n.startswith(("devhost/", "tests/"))] == []
    assert [n for n in names if n.endswith(".pyc") or "__pycache__/" in n] == []
    for required in MUST_CONTAIN:
        assert required in names, required


def test_each_console_script_points_at_code_in_the_wheel(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    parser = configparser.ConfigParser()
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(wheel.read(entry_points).decode())
    scripts = dict(parser["console_scripts"])
    problems = []
    for name, target in sorted(scripts.items()):
        module, _, function = target.partition(":")
        base = module.replace(".", "/")
        candidates = [f"{base}.py", f"{base}/__init__.py"]
        present = [c for c in candidates if c in names]
        if not function:
            problems.append(f"{name} = {target}: no function")
        elif not present:
            problems.append(f"{name} = {target}: the wheel has none of {candidates}")
        elif not _defines(wheel.read(present[0]), function):
            problems.append(f"{name} = {target}: {present[0]} defines no function {function}")
    if set(scripts) != CONSOLE_SCRIPTS:
        problems.append(f"console scripts are {sorted(scripts)}, not {sorted(CONSOLE_SCRIPTS)}")
    assert not problems, "\n".join(problems)
