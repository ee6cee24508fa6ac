"""vmbundle.atomic.write_atomic: a whole file or none, and nothing left beside it."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from vmbundle.atomic import write_atomic


def test_replaces_the_file_with_its_mode_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "vm.json"
    target.write_bytes(b"old\n")
    write_atomic(target, b'{"name": "web01"}\n', mode=0o600)
    assert target.read_bytes() == b'{"name": "web01"}\n'
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    write_atomic(target, b"again\n", durable=False)
    assert target.read_bytes() == b"again\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vm.json"]


def test_a_refused_directory_names_the_file_and_changes_nothing(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root writes in a 0500 directory anyway: take one that cannot exist instead
        target = tmp_path / "missing" / "vm.json"
    else:
        (tmp_path / "ro").mkdir(mode=0o500)
        target = tmp_path / "ro" / "vm.json"
    with pytest.raises(OSError) as caught:
        write_atomic(target, b"new\n")
    assert caught.value.filename == str(target)
    assert not target.exists()
    parent = target.parent
    assert not parent.exists() or list(parent.iterdir()) == []


def test_writers_at_once_each_get_their_own_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    contents = [f"writer {i}\n".encode() * 200 for i in range(16)]
    start = threading.Barrier(len(contents))

    def write(data: bytes) -> None:
        start.wait()
        for _ in range(20):
            write_atomic(target, data, durable=False)

    threads = [threading.Thread(target=write, args=(c,)) for c in contents]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert target.read_bytes() in contents
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
