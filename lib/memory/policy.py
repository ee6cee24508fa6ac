"""Memory admission: which guests fit, and how far the ZFS ARC must give way.

Pure arithmetic, no I/O (design.md, "Memory: the ARC as a balloon"). With T the
physical memory, R the OS reserve, F the ARC floor and a guest's charge its RAM
plus QEMU's overhead:

* a guest is admitted iff R + F + sum(charges) <= T, its own charge included;
* the ARC maximum is then T - R - sum(charges), clamped between the kernel's ARC
  minimum and the baseline maximum (the c_max saved once, before the first
  change); with no guest charged it is the baseline itself.

The ledger of charges is a mapping from guest name to bytes; the functions here
return a new one and never change the one they are given.

Edge cases, and what the ARC maximum does there (tests/test_memory_policy.py):

* Admission keeps T - R - sum(charges) >= F, so the ARC maximum is at least F
  whenever the baseline is. It is never raised above what the administrator
  had, so with a baseline below F it stays at the baseline: in general it is
  at least min(F, baseline).
* It is never below the kernel's c_min: the kernel's ARC target cannot go
  below c_min, and zfscache refuses c_min > c_max (illumos.md section 5), so a
  lower maximum would be one the kernel does not keep. If c_min is above the
  baseline (c_min raised after the baseline was saved), c_min wins, and "never
  above the baseline" reads "never above max(baseline, c_min)".
* With no guest left it is exactly the baseline (or c_min, if higher), even
  where T - R < baseline: the last guest's stop restores what the
  administrator had.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from fractions import Fraction

import attrs

MiB, GiB = 1 << 20, 1 << 30

# QEMU's own memory beside the guest's RAM. SmartOS charges a flat 1 GiB per KVM
# guest (VM.js KVM_MEM_OVERHEAD = 1024 MiB, added to max_locked_memory), but that
# covers the whole zone around QEMU; ours runs outside a zone, so:
# - fixed 256 MiB: the QEMU process itself (text, libraries, heap), 16 MiB of VGA
#   memory, firmware and option ROMs, the block layer's qcow2 caches, VNC buffers;
# - 16 MiB per vCPU: each vCPU is a thread with its stack and KVM's per-vCPU state;
# - 1 % of RAM: page tables for guest memory (EPT or shadow) and dirty bitmaps,
#   about 0.2 % of RAM, five times over.
# A 2 GiB, 2-vCPU guest is charged 2 GiB + 309 MiB; a 64 GiB one with 16 vCPUs,
# 64 GiB + 1.1 GiB, about SmartOS's flat figure. The estimate errs high on purpose:
# illumos-KVM locks guest RAM, and a host that overcommits it hangs
# (smartos-live#447) instead of failing cleanly.
DEFAULT_OVERHEAD_FIXED = 256 * MiB
DEFAULT_OVERHEAD_PER_VCPU = 16 * MiB
DEFAULT_OVERHEAD_RATIO = 0.01

# The ARC keeps at least a fifth of physical memory (design.md); Oracle keeps about a
# quarter for the kernel and the ARC on Solaris kernel zones (anchors.md section 1).
DEFAULT_ARC_FLOOR = 0.2
# "auto" OS reserve: an eighth of physical memory, at least 1 GiB. illumos holds
# back swapfs_minfree = physmem/8 for itself and sizes the ARC from the rest
# (allmem = physmem - swapfs_minfree, illumos.md section 5), so from 8 GiB up
# T - R is allmem, and the kernel's default c_max (at most allmem) fits under it;
# 1 GiB is the least the kernel, the appliance's services and vmbundle itself
# need on a small host.
AUTO_RESERVE_MIN = 1 * GiB


def _round_up_to_mib(n: Fraction | int) -> int:
    return math.ceil(Fraction(n) / MiB) * MiB


def _decimal(x: float) -> Fraction:
    # The fraction the operator wrote: 0.2 is 1/5, not the binary float just above
    # it, which would turn 0.2 x 10 GiB into 2049 MiB after rounding up.
    return Fraction(repr(x))


@attrs.frozen
class OverheadModel:
    """QEMU's memory beside the guest's RAM: fixed + per_vcpu * vCPUs + ratio * RAM."""

    fixed: int = DEFAULT_OVERHEAD_FIXED
    per_vcpu: int = DEFAULT_OVERHEAD_PER_VCPU
    ratio: float = DEFAULT_OVERHEAD_RATIO


def charge(ram: int, vcpus: int, model: OverheadModel) -> int:
    """The bytes a guest holds: its RAM plus QEMU's overhead, rounded up to a MiB."""
    return _round_up_to_mib(
        ram + model.fixed + model.per_vcpu * vcpus + _decimal(model.ratio) * ram
    )


def auto_reserve(physmem: int) -> int:
    """The OS reserve for `reserve = "auto"`: max(1 GiB, physmem/8)."""
    return max(AUTO_RESERVE_MIN, physmem // 8)


def arc_floor_bytes(arc_floor: float | int, physmem: int, arc_min: int) -> int:
    """F from the configured floor: a float is a fraction of physmem, an int bytes.

    A fraction is rounded up to a whole MiB (the safe side). F is never below the
    kernel's c_min, which the ARC keeps anyway (anchors.md, checklist 1).
    """
    if isinstance(arc_floor, float):
        floor = _round_up_to_mib(_decimal(arc_floor) * physmem)
    else:
        floor = arc_floor
    return max(floor, arc_min)


@attrs.frozen
class HostMemory:
    """The numbers admission works from, all in bytes."""

    physmem: int  # T
    reserve: int  # R: the kernel, the appliance's services, vmbundle
    floor: int  # F: the ARC keeps at least this much while guests run
    arc_min: int  # the kernel's c_min
    baseline: int  # the c_max saved once, before vmbundle first changed it

    @classmethod
    def build(
        cls,
        physmem: int,
        arc_min: int,
        baseline: int,
        reserve: int | None = None,
        arc_floor: float | int = DEFAULT_ARC_FLOOR,
    ) -> HostMemory:
        """From the kernel's numbers and the host configuration's [memory] reserve
        (None for "auto") and arc_floor (a fraction, or bytes)."""
        return cls(
            physmem=physmem,
            reserve=auto_reserve(physmem) if reserve is None else reserve,
            floor=arc_floor_bytes(arc_floor, physmem, arc_min),
            arc_min=arc_min,
            baseline=baseline,
        )


def arc_max_for(mem: HostMemory, charges: Mapping[str, int]) -> int:
    """The ARC maximum while these charges are held (see the module's edge cases)."""
    if not charges:
        return max(mem.baseline, mem.arc_min)
    room = mem.physmem - mem.reserve - sum(charges.values())
    return max(mem.arc_min, min(mem.baseline, room))


def _size(n: int, rounding: Callable[[Fraction], int] = round) -> str:
    """n bytes for an operator: GiB with one decimal from 1 GiB, whole MiB below."""
    if abs(n) >= GiB:
        return f"{rounding(Fraction(n * 10, GiB)) / 10:.1f} GiB"
    return f"{rounding(Fraction(n, MiB))} MiB"


@attrs.frozen
class Decision:
    """Whether a guest fits, with the numbers behind the answer."""

    admitted: bool
    needed: int  # the guest's charge
    free: int  # T - R - F - the other guests' charges; negative when overcommitted
    holders: tuple[tuple[str, int], ...]  # the other guests' charges, biggest first
    arc_max: int  # the ARC maximum after the decision (unchanged when refused)
    arc_max_before: int
    memory: HostMemory
    # The ledger after the decision: the guest's charge added (or replaced) if admitted.
    charges: Mapping[str, int] = attrs.field(hash=False)

    def line(self, guest: str) -> str:
        """One line for the operator, naming the guest."""
        if self.admitted:
            arc = (
                f"ARC maximum {_size(self.arc_max_before)} -> {_size(self.arc_max)}"
                if self.arc_max != self.arc_max_before
                else f"ARC maximum stays {_size(self.arc_max)}"
            )
            return f"{guest}: fits: needs {_size(self.needed)} of {_size(self.free)} free; {arc}"
        m = self.memory
        # Needed rounded up and free rounded down, so the line shows the shortfall.
        free = (
            f"{_size(self.free, math.floor)} free"
            if self.free >= 0
            else f"nothing free, already {_size(-self.free, math.ceil)} over"
        )
        sums = f"physical {_size(m.physmem)} - OS reserve {_size(m.reserve)} - ARC floor {_size(m.floor)}"
        if self.holders:
            held = sum(n for _, n in self.holders)
            each = ", ".join(f"{g} {_size(n)}" for g, n in self.holders)
            sums += f" - guests {_size(held)}: {each}"
            fix = "stop a guest or lower its ram"
        else:
            fix = "lower its ram, or memory.reserve or memory.arc_floor in the host configuration"
        return f"{guest}: not enough memory: needs {_size(self.needed, math.ceil)}, {free} ({sums}); {fix}"


def admit(mem: HostMemory, charges: Mapping[str, int], guest: str, charge: int) -> Decision:
    """Admit guest with this charge, or refuse it. A guest already charged is
    charged anew: its old charge is replaced, not added to (a start that runs
    again reserves once)."""
    others = {g: n for g, n in charges.items() if g != guest}
    free = mem.physmem - mem.reserve - mem.floor - sum(others.values())
    admitted = charge <= free
    after = {**others, guest: charge} if admitted else dict(charges)
    return Decision(
        admitted=admitted,
        needed=charge,
        free=free,
        holders=tuple(sorted(others.items(), key=lambda gn: (-gn[1], gn[0]))),
        arc_max=arc_max_for(mem, after),
        arc_max_before=arc_max_for(mem, charges),
        memory=mem,
        charges=after,
    )


def release(mem: HostMemory, charges: Mapping[str, int], guest: str) -> tuple[dict[str, int], int]:
    """The ledger without guest's charge, and the ARC maximum it allows. Releasing a
    guest that holds nothing changes nothing (a stop may be reported twice)."""
    after = {g: n for g, n in charges.items() if g != guest}
    return after, arc_max_for(mem, after)


def reconcile(
    mem: HostMemory,
    charges: Mapping[str, int],
    gone: Iterable[str],
    found: Mapping[str, int],
) -> tuple[dict[str, int], int]:
    """The ledger once the guests gone are released and the running guests it
    lacks are charged (they run, so they are charged whether they fit or not),
    and the ARC maximum it allows."""
    after = dict(charges)
    for guest in gone:
        after, _ = release(mem, after, guest)
    after.update(found)
    return after, arc_max_for(mem, after)


# Not a guest name (those start with a letter), so it never replaces a real charge.
WHAT_IF_GUEST = "(what if)"


def what_if(
    mem: HostMemory,
    charges: Mapping[str, int],
    ram: int,
    vcpus: int,
    model: OverheadModel,
    guest: str = WHAT_IF_GUEST,
) -> Decision:
    """Would a guest of this size fit now, and what would the ARC maximum become?
    Name an existing guest to ask about resizing it (its charge is replaced)."""
    return admit(mem, charges, guest, charge(ram, vcpus, model))
