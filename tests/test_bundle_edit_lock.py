"""Edits of one bundle at once are serialised (issue 9, "Edits under a lock"): each
`vmbundle set` and `vmbundle disk add` holds the bundle's lock across its
read-modify-write of vm.json, so commands started together all succeed and no change
is lost. Only the real `vmbundle` command is driven; vm.json is read as a file."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.host import TestHost, test_host

BURSTS = 3  # one burst does not always lose an edit without a lock; three nearly always do


@pytest.fixture
def web01(tmp_path: Path) -> Iterator[TestHost]:
    with test_host(tmp_path) as h:
        h.vmbundle("create", "web01", "--ram", "256M", "--vcpus", "1", "--disk", "1M")
        yield h


def _all_at_once(h: TestHost, commands: list[list[str]]) -> list[tuple[list[str], int, str]]:
    """Start every command before waiting for any; (argv, exit status, stderr) each."""
    procs: list[tuple[list[str], subprocess.Popen[str]]] = []
    try:
        for argv in commands:
            procs.append((argv, h.popen(*argv)))
        results = []
        for argv, p in procs:
            _, err = p.communicate(timeout=60)
            results.append((argv, p.returncode, err))
        return results
    finally:
        for _, p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def _vm_json(h: TestHost) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((h.root / "web01" / "vm.json").read_text())
    return doc


def _burst_values(i: int) -> dict[str, str]:
    """Eight keys, each given a value different from the one the burst before left."""
    return {
        "description": f"burst {i}",
        "stop_timeout": str(40 + i),
        "on_poweroff": ("restart", "disable")[i % 2],
        "on_reboot": ("disable", "restart")[i % 2],
        "on_crash": ("preserve", "disable", "restart")[i % 3],
        "autostart": ("true", "false")[i % 2],
        "vnc.password": f"pw{i}",
        "disks.disk0.cache": ("none", "writethrough", "writeback")[i % 3],
    }


def _stored(doc: dict[str, Any]) -> dict[str, str]:
    """The same eight keys as vm.json holds them, in their text form."""
    return {
        "description": doc["description"],
        "stop_timeout": str(doc["stop_timeout"]),
        "on_poweroff": doc["on_poweroff"],
        "on_reboot": doc["on_reboot"],
        "on_crash": doc["on_crash"],
        "autostart": json.dumps(doc["autostart"]),
        "vnc.password": doc["vnc"]["password"],
        "disks.disk0.cache": doc["disks"][0]["cache"],
    }


def test_eight_sets_at_once_all_land(web01: TestHost) -> None:
    for i in range(BURSTS):
        values = _burst_values(i)
        results = _all_at_once(web01, [["set", "web01", f"{k}={v}"] for k, v in values.items()])
        failed = [(argv, code, err) for argv, code, err in results if code != 0]
        assert failed == [], f"burst {i}: {failed}"
        assert _stored(_vm_json(web01)) == values, f"burst {i}: an edit was lost"
    assert web01.vmbundle("validate", "web01").stdout == "web01: valid\n"


def test_four_disk_adds_at_once_all_land(web01: TestHost) -> None:
    bundle = web01.root / "web01"
    expected = 1
    for i in range(BURSTS):
        results = _all_at_once(web01, [["disk", "add", "web01", "1M"]] * 4)
        failed = [(code, err) for _, code, err in results if code != 0]
        assert failed == [], f"burst {i}: {failed}"
        expected += 4
        disks = _vm_json(web01)["disks"]
        ids = [d["id"] for d in disks]
        files = [d["file"] for d in disks]
        assert len(disks) == expected, f"burst {i}: {ids}"
        assert ids[0] == "disk0" and files[0] == "disk0.qcow2"
        assert len(set(ids)) == expected and len(set(files)) == expected, (ids, files)
        assert all(d["size"] == "1M" for d in disks), disks
        for f in files:
            assert (bundle / f).is_file(), f
        assert web01.vmbundle("validate", "web01").stdout == "web01: valid\n"
    # No stray image or temporary file beside the ones vm.json names.
    assert sorted(p.name for p in bundle.iterdir()) == sorted(["vm.json", *files])
