"""Memory admission and the ARC maximum (vmbundle.memory.policy): a worked example
with exact numbers, the edge cases, the operator's line, and properties over any
sequence of admissions and releases."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vmbundle.memory.policy import (
    GiB,
    HostMemory,
    MiB,
    OverheadModel,
    admit,
    arc_max_for,
    auto_reserve,
    charge,
    reconcile,
    release,
    what_if,
)

MODEL = OverheadModel()  # 256 MiB + 16 MiB per vCPU + 1 % of RAM

# The worked example: 8 GiB of memory, 1 GiB for the OS, the ARC keeps a fifth,
# the kernel booted with c_max 6 GiB and c_min 256 MiB.
HOST = HostMemory.build(physmem=8 * GiB, arc_min=256 * MiB, baseline=6 * GiB)
WEB01 = charge(2 * GiB, 2, MODEL)  # 2048 + 256 + 32 + 20.48 MiB
WEB02 = charge(1 * GiB, 1, MODEL)  # 1024 + 256 + 16 + 10.24 MiB
WEB03 = charge(3 * GiB, 2, MODEL)  # 3072 + 256 + 32 + 30.72 MiB


def test_charge_is_ram_plus_overhead_rounded_up_to_a_mib() -> None:
    assert charge(2 * GiB, 2, MODEL) == WEB01 == 2357 * MiB
    assert charge(1 * GiB, 1, MODEL) == WEB02 == 1307 * MiB
    assert charge(3 * GiB, 2, MODEL) == WEB03 == 3391 * MiB
    assert charge(2 * GiB, 2, OverheadModel(fixed=0, per_vcpu=0, ratio=0.0)) == 2 * GiB
    assert charge(64 * GiB, 16, MODEL) == 64 * GiB + 1168 * MiB  # about SmartOS's 1 GiB
    # 1 % of 100 GiB is 1 GiB exactly, not the binary 0.01's MiB more.
    assert charge(100 * GiB, 1, OverheadModel(fixed=0, per_vcpu=0, ratio=0.01)) == 101 * GiB


def test_build_takes_an_auto_reserve_and_a_fifth_rounded_up_to_a_mib() -> None:
    built = HostMemory.build(physmem=8 * GiB, arc_min=256 * MiB, baseline=6 * GiB)
    assert built == HOST
    assert built == HostMemory(
        physmem=8 * GiB,
        reserve=1 * GiB,  # max(1 GiB, 8 GiB / 8)
        floor=1639 * MiB,  # 0.2 * 8 GiB = 1638.4 MiB
        arc_min=256 * MiB,
        baseline=6 * GiB,
    )
    assert auto_reserve(4 * GiB) == 1 * GiB
    assert auto_reserve(64 * GiB) == 8 * GiB
    # A fifth of 10 GiB is 2048 MiB exactly, not the binary 0.2's MiB more.
    assert HostMemory.build(10 * GiB, 256 * MiB, 6 * GiB).floor == 2048 * MiB


def test_build_takes_a_configured_reserve_and_a_floor_in_bytes() -> None:
    mem = HostMemory.build(8 * GiB, 256 * MiB, 6 * GiB, reserve=2 * GiB, arc_floor=3 * GiB)
    assert (mem.reserve, mem.floor) == (2 * GiB, 3 * GiB)


def test_the_floor_is_never_below_the_kernels_arc_minimum() -> None:
    mem = HostMemory.build(8 * GiB, arc_min=1 * GiB, baseline=6 * GiB, arc_floor=0.05)
    assert mem.floor == 1 * GiB
    assert HostMemory.build(8 * GiB, 1 * GiB, 6 * GiB, arc_floor=512 * MiB).floor == 1 * GiB


def test_worked_example() -> None:
    first = admit(HOST, {}, "web01", WEB01)
    assert first.admitted
    assert first.free == (8192 - 1024 - 1639) * MiB == 5529 * MiB
    assert first.holders == ()
    assert first.arc_max_before == 6 * GiB
    assert first.arc_max == (8192 - 1024 - 2357) * MiB == 4811 * MiB
    assert first.charges == {"web01": WEB01}

    second = admit(HOST, first.charges, "web02", WEB02)
    assert second.admitted
    assert second.free == (5529 - 2357) * MiB
    assert second.arc_max == (8192 - 1024 - 2357 - 1307) * MiB == 3504 * MiB
    assert second.charges == {"web01": WEB01, "web02": WEB02}

    third = admit(HOST, second.charges, "web03", WEB03)
    assert not third.admitted
    assert third.needed == WEB03
    assert third.free == (5529 - 2357 - 1307) * MiB == 1865 * MiB
    assert third.holders == (("web01", WEB01), ("web02", WEB02))
    assert third.arc_max == third.arc_max_before == 3504 * MiB
    assert third.charges == second.charges

    charges, arc_max = release(HOST, second.charges, "web01")
    assert (charges, arc_max) == ({"web02": WEB02}, (8192 - 1024 - 1307) * MiB)
    charges, arc_max = release(HOST, charges, "web02")
    assert (charges, arc_max) == ({}, 6 * GiB)


def test_refused_line_names_every_number() -> None:
    second = admit(HOST, {}, "web01", WEB01)
    third = admit(HOST, {**second.charges, "web02": WEB02}, "web03", WEB03)
    assert third.line("web03") == (
        "web03: not enough memory: needs 3.4 GiB, 1.8 GiB free"
        " (physical 8.0 GiB - OS reserve 1.0 GiB - ARC floor 1.6 GiB"
        " - guests 3.6 GiB: web01 2.3 GiB, web02 1.3 GiB); stop a guest or lower its ram"
    )


def test_refused_line_rounds_so_the_shortfall_shows() -> None:
    # needs 1.42 GiB, 1.38 GiB free: to the nearest tenth both would read 1.4.
    mem = HostMemory(physmem=10 * GiB, reserve=0, floor=0, arc_min=0, baseline=8 * GiB)
    line = admit(mem, {"a": 10 * GiB - 1413 * MiB}, "b", 1454 * MiB).line("b")
    assert "needs 1.5 GiB, 1.3 GiB free" in line


def test_refused_line_without_guests_points_at_the_host_configuration() -> None:
    line = admit(HOST, {}, "big", 6 * GiB).line("big")
    assert line == (
        "big: not enough memory: needs 6.0 GiB, 5.3 GiB free"
        " (physical 8.0 GiB - OS reserve 1.0 GiB - ARC floor 1.6 GiB);"
        " lower its ram, or memory.reserve or memory.arc_floor in the host configuration"
    )


def test_refused_line_when_already_overcommitted() -> None:
    # Guests charged beyond the floor (the reserve was raised since they started).
    line = admit(HOST, {"web01": 5 * GiB, "web02": 800 * MiB}, "web03", 300 * MiB).line("web03")
    assert line == (
        "web03: not enough memory: needs 300 MiB, nothing free, already 391 MiB over"
        " (physical 8.0 GiB - OS reserve 1.0 GiB - ARC floor 1.6 GiB"
        " - guests 5.8 GiB: web01 5.0 GiB, web02 800 MiB); stop a guest or lower its ram"
    )


def test_admitted_line_gives_the_new_arc_maximum() -> None:
    assert admit(HOST, {}, "web01", WEB01).line("web01") == (
        "web01: fits: needs 2.3 GiB of 5.4 GiB free; ARC maximum 6.0 GiB -> 4.7 GiB"
    )
    small = HostMemory(8 * GiB, 1 * GiB, 1 * GiB, 256 * MiB, baseline=2 * GiB)
    assert admit(small, {}, "tiny", 512 * MiB).line("tiny") == (
        "tiny: fits: needs 512 MiB of 6.0 GiB free; ARC maximum stays 2.0 GiB"
    )


def test_an_exact_fit_is_admitted_and_one_byte_more_is_refused() -> None:
    free = admit(HOST, {"web01": WEB01}, "x", 0).free
    exact = admit(HOST, {"web01": WEB01}, "web02", free)
    assert exact.admitted
    assert exact.arc_max == HOST.floor  # T - R - sum(charges) is F exactly
    assert not admit(HOST, {"web01": WEB01}, "web02", free + 1).admitted


def test_readmission_replaces_the_guests_charge() -> None:
    charges = admit(HOST, {}, "web01", WEB01).charges
    again = admit(HOST, charges, "web01", WEB01)
    assert again.admitted
    assert again.charges == {"web01": WEB01}
    assert again.free == (8192 - 1024 - 1639) * MiB  # its own old charge is not counted
    assert again.holders == ()
    assert again.arc_max == again.arc_max_before == 4811 * MiB
    smaller = admit(HOST, charges, "web01", WEB02)
    assert smaller.charges == {"web01": WEB02}


def test_refused_readmission_keeps_the_old_charge() -> None:
    charges = {"web01": WEB01, "web02": WEB02}
    grown = admit(HOST, charges, "web01", 5 * GiB)
    assert not grown.admitted
    assert grown.charges == charges
    assert grown.holders == (("web02", WEB02),)


def test_releasing_a_guest_that_holds_nothing_changes_nothing() -> None:
    assert release(HOST, {"web01": WEB01}, "web09") == ({"web01": WEB01}, 4811 * MiB)
    assert release(HOST, {}, "web09") == ({}, 6 * GiB)


def test_a_baseline_below_the_floor_wins() -> None:
    # An administrator capped the ARC at 1 GiB: it is never raised above that.
    mem = HostMemory.build(8 * GiB, 256 * MiB, baseline=1 * GiB)
    decision = admit(mem, {}, "web01", WEB01)
    assert decision.admitted
    assert (decision.arc_max_before, decision.arc_max) == (1 * GiB, 1 * GiB)
    # Admission still keeps the floor's share of memory free of guests.
    assert decision.free == (8192 - 1024 - 1639) * MiB


def test_the_kernels_minimum_wins_over_everything() -> None:
    mem = HostMemory(8 * GiB, 1 * GiB, floor=1 * GiB, arc_min=2 * GiB, baseline=6 * GiB)
    assert arc_max_for(mem, {"web01": 5 * GiB}) == 2 * GiB
    # c_min raised above the saved baseline: the kernel's minimum still holds.
    odd = HostMemory(8 * GiB, 1 * GiB, floor=1 * GiB, arc_min=2 * GiB, baseline=1 * GiB)
    assert arc_max_for(odd, {}) == 2 * GiB
    assert arc_max_for(odd, {"web01": 1 * GiB}) == 2 * GiB


def test_no_guest_left_restores_the_baseline_even_above_physical_less_reserve() -> None:
    mem = HostMemory.build(8 * GiB, 256 * MiB, baseline=6 * GiB, reserve=3 * GiB)
    assert arc_max_for(mem, {"web01": 1 * GiB}) == 4 * GiB
    assert release(mem, {"web01": 1 * GiB}, "web01") == ({}, 6 * GiB)


def test_what_if_asks_without_reserving() -> None:
    charges = {"web01": WEB01}
    fits = what_if(HOST, charges, 2 * GiB, 2, MODEL)
    assert fits.admitted
    assert fits.needed == WEB01
    assert fits.arc_max == (8192 - 1024 - 2 * 2357) * MiB
    assert charges == {"web01": WEB01}
    assert not what_if(HOST, charges, 4 * GiB, 2, MODEL).admitted
    # Naming a guest asks about resizing it: its own charge is set aside.
    assert what_if(HOST, charges, 4 * GiB, 2, MODEL, guest="web01").admitted


# Properties over any sequence of admissions and releases.

NAMES = ["web01", "web02", "web03", "db01", "db02", "ci"]


@st.composite
def hosts(draw: st.DrawFn) -> HostMemory:
    physmem = draw(st.integers(256, 1 << 20)) * MiB + draw(st.integers(0, 255)) * 4096
    arc_min = draw(st.integers(0, physmem // 8))
    reserve = draw(st.none() | st.integers(0, physmem))
    arc_floor = draw(st.floats(0.01, 0.99) | st.integers(0, physmem))
    # Mostly a baseline the kernel would boot with; sometimes one below c_min.
    baseline = draw(st.integers(arc_min, physmem) | st.integers(0, physmem))
    return HostMemory.build(physmem, arc_min, baseline, reserve=reserve, arc_floor=arc_floor)


# (what, guest, size, vcpus): an admission's size is the guest's RAM, a fill's the
# bytes beyond what is free; a release ignores both.
admission = st.tuples(
    st.just("admit"),
    st.sampled_from(NAMES),
    st.integers(32, 64 * 1024).map(lambda mib: mib * MiB),
    st.integers(1, 64),
)
releasing = st.tuples(st.just("release"), st.sampled_from(NAMES), st.just(0), st.just(0))
# A guest whose charge is exactly what is free, or one byte more: the boundary.
filling = st.tuples(st.just("fill"), st.sampled_from(NAMES), st.integers(0, 1), st.just(0))


def check_arc_max(mem: HostMemory, charges: dict[str, int], arc_max: int) -> None:
    used = mem.reserve + sum(charges.values())
    # (b) never below the kernel's minimum, nor below the floor unless the baseline is.
    assert arc_max >= mem.arc_min
    assert arc_max >= min(mem.floor, mem.baseline)
    # ... never above the baseline (or the kernel's minimum, if that is higher) ...
    assert arc_max <= max(mem.baseline, mem.arc_min)
    if mem.arc_min <= mem.baseline:
        assert arc_max <= mem.baseline
    # ... and with guests charged, it leaves them their memory unless c_min forbids it.
    if charges:
        assert arc_max <= max(mem.arc_min, mem.physmem - used)


@settings(max_examples=400, deadline=None)
@given(hosts(), st.lists(admission | releasing | filling, max_size=30))
def test_no_sequence_overcommits_or_misplaces_the_arc_maximum(
    mem: HostMemory, ops: list[tuple[str, str, int, int]]
) -> None:
    charges: dict[str, int] = {}
    arc_max = arc_max_for(mem, charges)
    for what, guest, size, vcpus in ops:
        if what == "release":
            charges, arc_max = release(mem, charges, guest)
        else:
            if what == "admit":
                need = charge(size, vcpus, MODEL)
            else:
                need = max(1, admit(mem, charges, guest, 0).free + size)
            decision = admit(mem, charges, guest, need)
            others = sum(n for g, n in charges.items() if g != guest)
            assert decision.admitted == (mem.reserve + mem.floor + others + need <= mem.physmem)
            assert decision.arc_max_before == arc_max
            if not decision.admitted:
                assert decision.charges == charges
                assert decision.arc_max == arc_max
            charges, arc_max = dict(decision.charges), decision.arc_max
        # (a) the guests, the OS reserve and the ARC floor fit in physical memory.
        assert not charges or sum(charges.values()) + mem.reserve + mem.floor <= mem.physmem
        check_arc_max(mem, charges, arc_max)
    # (c) the last release restores the baseline.
    for guest in list(charges):
        charges, arc_max = release(mem, charges, guest)
        check_arc_max(mem, charges, arc_max)
    assert charges == {}
    assert arc_max == max(mem.baseline, mem.arc_min)
    if mem.arc_min <= mem.baseline:
        assert arc_max == mem.baseline


@settings(max_examples=300, deadline=None)
@given(
    hosts(),
    st.dictionaries(st.sampled_from(NAMES), st.integers(1, 1 << 16).map(lambda m: m * MiB)),
    st.sets(st.sampled_from(NAMES)),
    st.dictionaries(st.sampled_from(NAMES), st.integers(1, 1 << 16).map(lambda m: m * MiB)),
)
def test_reconcile_is_releases_then_charges(
    mem: HostMemory, charges: dict[str, int], gone: set[str], found: dict[str, int]
) -> None:
    after, arc_max = reconcile(mem, charges, sorted(gone), found)
    expected = {g: n for g, n in charges.items() if g not in gone} | found
    assert after == expected
    assert arc_max == arc_max_for(mem, expected)
    # Guests found running are charged whether they fit or not, so only the
    # kernel's bounds hold: never below c_min, never above the baseline, and
    # never more than the guests leave unless c_min forbids it.
    assert mem.arc_min <= arc_max <= max(mem.baseline, mem.arc_min)
    if after:
        assert arc_max <= max(mem.arc_min, mem.physmem - mem.reserve - sum(after.values()))
    else:
        assert arc_max == max(mem.baseline, mem.arc_min)
    assert reconcile(mem, after, [], {}) == (after, arc_max)  # a second pass changes nothing
