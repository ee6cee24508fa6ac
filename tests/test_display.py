"""VNC displays: unique under concurrency, skipped when the port is busy, reclaimed
when the guest that held one is gone."""

from __future__ import annotations

import multiprocessing
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from vmbundle.errors import VmbundleError
from vmbundle.guest import display


def _never_running(_: str) -> bool:
    return False


def _take(args: tuple[str, str]) -> int:
    run_dir, guest = args
    return display.allocate(Path(run_dir), guest, 0, 99, "127.0.0.1", _never_running)


def free_range(count: int) -> int:
    """A first display with count free ports after it (tests share the machine)."""
    for first in range(40, 99 - count):
        if all(display.port_free("127.0.0.1", 5900 + n) for n in range(first, first + count)):
            return first
    raise AssertionError("no free VNC ports")


def test_twenty_guests_at_once_get_twenty_displays(tmp_path: Path) -> None:
    # Each allocation runs in its own process, as twenty start methods would; the
    # processes stay alive until all have allocated, so no entry is stale.
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(20) as pool:
        numbers = pool.map(_take, [(str(tmp_path), f"g{i}") for i in range(20)])
    assert len(set(numbers)) == 20
    assert set(display.held(tmp_path).values()) == {f"g{i}" for i in range(20)}


def test_same_guest_keeps_its_display(tmp_path: Path) -> None:
    a = display.allocate(tmp_path, "web01", 0, 99, "127.0.0.1", _never_running)
    assert display.allocate(tmp_path, "web01", 0, 99, "127.0.0.1", _never_running) == a


def test_busy_port_is_skipped(tmp_path: Path) -> None:
    first = free_range(2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 5900 + first))
        s.listen()
        n = display.allocate(tmp_path, "web01", first, first + 1, "127.0.0.1", _never_running)
    assert n == first + 1


def test_display_of_a_dead_guest_is_reclaimed(tmp_path: Path) -> None:
    first = free_range(1)
    # A process that took the only display and died without releasing it (a crash).
    code = (
        "import sys; from pathlib import Path; from vmbundle.guest import display; "
        f"display.allocate(Path({str(tmp_path)!r}), 'crashed', {first}, {first}, '127.0.0.1', lambda g: False)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert display.held(tmp_path) == {first: "crashed"}
    # While the crashed guest's QEMU still runs, its display stays taken.
    with pytest.raises(VmbundleError, match="no free VNC display"):
        display.allocate(tmp_path, "other", first, first, "127.0.0.1", lambda g: g == "crashed")
    assert display.allocate(tmp_path, "other", first, first, "127.0.0.1", _never_running) == first
    assert display.held(tmp_path) == {first: "other"}


def test_release_frees_it(tmp_path: Path) -> None:
    n = display.allocate(tmp_path, "web01", 0, 99, "127.0.0.1", _never_running)
    display.release(tmp_path, "web01")
    assert n not in display.held(tmp_path)
