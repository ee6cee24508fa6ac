"""The simulated kernel's ARC (devhost.kernel.arc): arc_init() defaults, lazy
eviction towards c at the configured speed, and a document safe to share."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devhost.kernel import arc

GIB, MIB = arc.GIB, arc.MIB
T0 = 1_000_000.0


def _boot(tmp_path: Path, physmem: int = 16 * GIB, speed: int = 1 * GIB) -> arc.Kernel:
    return arc.boot(tmp_path, physmem, shrink_speed=speed, now=T0)


@pytest.mark.parametrize(
    ("physmem", "minfree"),
    [
        (16 * GIB, 2 * GIB),  # physmem/8
        (8 * MIB, 2 * MIB),  # btopr(2 MiB) beats physmem/8
        (16 * MIB, 2 * MIB),  # the two agree
        (16 * GIB + 3 * 4096, 2 * GIB),  # physmem/8 in whole pages, rounded down
    ],
)
def test_swapfs_minfree_defaults_to_an_eighth_of_physmem_or_2_mib(
    physmem: int, minfree: int
) -> None:
    assert arc.swapfs_minfree(physmem // arc.PAGESIZE) * arc.PAGESIZE == minfree


def test_arc_allmem_is_physmem_less_swapfs_minfree() -> None:
    # illumos.md section 5: allmem = ptob(physmem - swapfs_minfree).
    assert arc.arc_allmem(16 * GIB) == 14 * GIB
    assert arc.arc_allmem(8 * MIB) == 6 * MIB


@pytest.mark.parametrize(
    ("physmem", "c_min", "c_max"),
    [
        (2 * GIB, 64 * MIB, 1344 * MIB),  # allmem 1.75G: allmem*3/4 beats allmem - 1G
        (16 * GIB, 224 * MIB, 13 * GIB),  # allmem 14G: allmem/64 between 64M and 1G
        (128 * GIB, 1 * GIB, 111 * GIB),  # allmem 112G: allmem/64 capped at 1G
        (1 * GIB, 64 * MIB, 672 * MIB),  # allmem 896M: allmem/64 raised to 64M
    ],
)
def test_arc_init_defaults_follow_illumos(physmem: int, c_min: int, c_max: int) -> None:
    assert arc.arc_init_defaults(physmem) == (c_min, c_max)


def test_boot_sets_c_to_c_max_p_to_half_and_a_warm_size(tmp_path: Path) -> None:
    k = _boot(tmp_path)
    assert k.arc.c == k.arc.c_max == 13 * GIB
    assert k.arc.p == k.arc.c // 2
    assert k.arc.size == int(13 * GIB * arc.WARM_FRACTION)
    assert k.physmem_pages * arc.PAGESIZE == 16 * GIB


def test_arc_size_follows_c_down_at_the_configured_speed(tmp_path: Path) -> None:
    k = _boot(tmp_path, speed=1 * GIB)
    start = k.arc.size
    k = arc.poke(tmp_path, "c", 4 * GIB, now=T0)
    assert k.arc.size_now(T0) == start
    assert k.arc.size_now(T0 + 2.5) == start - int(2.5 * GIB)
    # It stops at the target, never below.
    assert k.arc.size_now(T0 + 3600) == 4 * GIB


def test_arc_with_speed_0_never_shrinks(tmp_path: Path) -> None:
    k = _boot(tmp_path, speed=0)
    k = arc.poke(tmp_path, "c", 1 * GIB, now=T0)
    assert k.arc.size_now(T0 + 3600) == k.arc.size


def test_writing_c_max_alone_does_not_shrink_the_arc(tmp_path: Path) -> None:
    # illumos arc_adapt() returns early when arc_c >= arc_c_max: the target stays.
    k = _boot(tmp_path)
    k = arc.poke(tmp_path, "c_max", 2 * GIB, now=T0)
    assert k.arc.c == 13 * GIB
    assert k.arc.size_now(T0 + 3600) == k.arc.size


def test_arc_size_does_not_grow_back_when_c_is_raised(tmp_path: Path) -> None:
    _boot(tmp_path, speed=1 * GIB)
    arc.poke(tmp_path, "c", 4 * GIB, now=T0)
    k = arc.poke(tmp_path, "c", 13 * GIB, now=T0 + 100)
    assert k.arc.size_now(T0 + 10_000) == 4 * GIB


def test_lowering_c_again_continues_from_the_size_reached(tmp_path: Path) -> None:
    k = _boot(tmp_path, speed=1 * GIB)
    start = k.arc.size
    arc.poke(tmp_path, "c", 4 * GIB, now=T0)
    k = arc.poke(tmp_path, "c", 2 * GIB, now=T0 + 1)
    assert k.arc.size == start - GIB
    assert k.arc.size_now(T0 + 2) == start - 2 * GIB


def test_poke_only_accepts_the_live_arc_variables(tmp_path: Path) -> None:
    _boot(tmp_path)
    with pytest.raises(ValueError, match="not a live ARC variable"):
        arc.poke(tmp_path, "size", 1)


def test_boot_forgets_what_mdb_poked(tmp_path: Path) -> None:
    _boot(tmp_path)
    arc.poke(tmp_path, "c_max", 2 * GIB, now=T0)
    k = _boot(tmp_path)
    assert k.arc.c_max == 13 * GIB


def test_read_without_a_booted_kernel_raises_kernel_missing(tmp_path: Path) -> None:
    with pytest.raises(arc.KernelMissing):
        arc.read(tmp_path)


def test_kernel_json_is_readable_by_everyone_and_whole(tmp_path: Path) -> None:
    _boot(tmp_path)
    path = Path(arc.kernel_path(tmp_path))
    assert path.stat().st_mode & 0o777 == 0o644
    assert json.loads(path.read_text())["pagesize"] == 4096
    assert not list(tmp_path.glob(".kernel.*"))  # no temporary left behind


def test_concurrent_pokes_lose_no_update(tmp_path: Path) -> None:
    _boot(tmp_path)
    fields = ("c", "c_min", "c_max", "p")

    def poker(field: str) -> None:
        for i in range(1, 41):
            arc.poke(tmp_path, field, i * MIB)

    threads = [threading.Thread(target=poker, args=(f,)) for f in fields]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    k = arc.read(tmp_path)
    assert [getattr(k.arc, f) for f in fields] == [40 * MIB] * 4


def test_value_addresses_are_48_bytes_apart_at_offset_32(tmp_path: Path) -> None:
    k = _boot(tmp_path)
    c, c_max = arc.value_address(k, "c"), arc.value_address(k, "c_max")
    assert c_max - c == 2 * 48
    assert (c - k.arc_stats_addr) % 48 == 32
    assert arc.stat_at(k, c) == "c"
    assert arc.stat_at(k, c + 8) is None
    assert arc.stat_at(k, k.arc_stats_addr) is None


def test_addresses_are_stable_per_state_dir_and_differ_between_them(tmp_path: Path) -> None:
    a = arc.arc_stats_address(tmp_path / "a")
    assert a == arc.arc_stats_address(tmp_path / "a")
    assert a != arc.arc_stats_address(tmp_path / "b")
    assert f"{a:x}".startswith("fffffffffb")


def test_arcstats_sizes_add_up(tmp_path: Path) -> None:
    k = _boot(tmp_path)
    s = arc.arcstats(k, T0 + 10)
    assert s["size"] == s["data_size"] + s["metadata_size"] + s["other_size"] + s["hdr_size"]
    assert s["hits"] > s["misses"] > 0
    assert set(s) == set(arc.ARCSTAT_NAMES)


def test_freemem_grows_as_the_arc_shrinks(tmp_path: Path) -> None:
    _boot(tmp_path, speed=1 * GIB)
    k = arc.poke(tmp_path, "c", 4 * GIB, now=T0)
    before = arc.system_pages(k, T0)["freemem"]
    after = arc.system_pages(k, T0 + 3600)["freemem"]
    assert after - before == (k.arc.size - 4 * GIB) // arc.PAGESIZE


@given(
    size=st.integers(0, 1 << 40),
    c=st.integers(0, 1 << 40),
    speed=st.integers(0, 1 << 32),
    t1=st.floats(0, 1e6),
    t2=st.floats(0, 1e6),
)
def test_arc_size_never_rises_and_never_undershoots_the_target(
    size: int, c: int, speed: int, t1: float, t2: float
) -> None:
    a = arc.Arc(p=0, c=c, c_min=0, c_max=c, size=size, at=0.0, shrink_speed=speed)
    early, late = sorted((t1, t2))
    assert a.size_now(late) <= a.size_now(early) <= size
    assert a.size_now(late) >= min(size, c)
