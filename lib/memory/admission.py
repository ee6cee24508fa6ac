"""Memory admission at a guest's start and stop: the policy (vmbundle.memory.policy),
the ARC backend (vmbundle.memory.arc) and the ledger (vmbundle.memory.ledger) put
together. The arithmetic is the policy's own admit, release and reconcile, so
its property tests cover what runs here.

A start reserves the guest's charge under the ledger's lock, which is held for
the arithmetic and the write of memory.json only (the ARC is read before it);
the ARC maximum the new ledger calls for is then set by whichever process sets
it (vmbundle.memory.arc_target, one at a time, the newest ask first), and the
start waits until it is set and the ARC's size has really come down. A stop
releases the charge and raises the maximum again, to the saved baseline after
the last guest. A refusal is final for that start (exit 95: SMF puts the
instance in maintenance at once, with the numbers in its log).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TypeVar

import attrs

from vmbundle.errors import SMF_EXIT_ERR_FATAL, VmbundleError
from vmbundle.guest import boot_record
from vmbundle.guest.process import running_pid
from vmbundle.guest.rundir import RunPaths
from vmbundle.memory import arc, arc_target, policy
from vmbundle.memory import ledger as memory_ledger
from vmbundle.memory.arc import ArcBackend, ArcState
from vmbundle.memory.arc_view import SharedArcView
from vmbundle.memory.ledger import Charge, Ledger
from vmbundle.memory.policy import Decision, HostMemory
from vmbundle.settings import HostSettings
from vmbundle.vm.model import VmConfig

Say = Callable[[str], None]


class AdmissionRefused(VmbundleError):
    """Not enough memory for the guest, or the ARC did not give it back in time."""

    exit_code = SMF_EXIT_ERR_FATAL


def backend(settings: HostSettings) -> ArcBackend | None:
    return arc.choose(settings.memory_backend)


def host_memory(settings: HostSettings, state: ArcState, ledger: Ledger) -> HostMemory:
    baseline = ledger.baseline if ledger.baseline is not None else state.c_max
    return HostMemory.build(
        state.physmem,
        state.c_min,
        baseline,
        reserve=settings.memory_reserve,
        arc_floor=settings.memory_arc_floor,
    )


def _guest_running(settings: HostSettings) -> Callable[[str], bool]:
    return lambda g: running_pid(RunPaths.for_guest(settings.run_dir, g)) is not None


class _Unchanged(Exception):
    """Raised by a decision that leaves the ledger as it is."""


T = TypeVar("T")
# A decision: from the host's memory and the ledger, the new ledger, the ARC
# maximum it calls for, and what the caller wants to know of it. Pure: it runs
# under the ledger's lock.
Decide = Callable[[HostMemory, Ledger], tuple[Ledger, int, T]]


def _change(
    settings: HostSettings, arc_backend: ArcBackend, decide: Decide[T]
) -> tuple[int, ArcState, T]:
    """One change of the ledger: the ARC read with no lock held, then decide's
    ledger saved under the lock; (the epoch whose setting covers it, the ARC as
    read, decide's own result). decide raises to change nothing."""
    run_dir = settings.run_dir
    deadline = time.monotonic() + arc_target.WAIT_SECONDS
    while True:
        seen = memory_ledger.read(run_dir)
        state = arc_backend.read()
        with memory_ledger.locked(run_dir) as book:
            before = book.ledger
            same = (seen.epoch, seen.applied, seen.fault) == (
                before.epoch,
                before.applied,
                before.fault,
            )
            # Without a saved baseline the kernel's maximum is it, unless a setting
            # of ours ran or runs between the read and the lock.
            if before.baseline is not None or (same and before.settled):
                ledger, arc_max, result = decide(host_memory(settings, state, before), before)
                ledger = ledger.asking(arc_max, state.c_max).tidy()
                book.save(ledger)
                return ledger.epoch, state, result
        if time.monotonic() >= deadline:
            raise arc_target.ArcNotSet(
                f"the ARC maximum kept changing while {run_dir} was read; try again"
            )
        time.sleep(0.005)


def reserve(
    settings: HostSettings,
    guest: str,
    cfg: VmConfig,
    say: Say,
    *,
    until: float | None = None,
    owner: int | None = None,
    view: ArcBackend | None = None,
) -> Decision | None:
    """Charge guest, lower the ARC maximum, and wait until the ARC's size is down
    (at most memory.shrink_timeout, and never past `until`, a monotonic time);
    AdmissionRefused (nothing left reserved) when it does not fit or the ARC
    does not shrink in time. None when the host has no ARC to manage. owner:
    the process the charge is held for (by default this one; see Ledger.stale).
    view: the ARC as a long-lived caller shares it (vmbundle.memory.arc_view)."""
    arc_backend = view if view is not None else backend(settings)
    if arc_backend is None:
        return None
    amount = policy.charge(cfg.ram, cfg.vcpus, settings.overhead_model())

    def decide(mem: HostMemory, before: Ledger) -> tuple[Ledger, int, Decision]:
        decision = policy.admit(mem, before.amounts(), guest, amount)
        if not decision.admitted:
            raise AdmissionRefused(decision.line(guest))
        # The baseline is saved before the first change, and kept until the last release.
        held_for = Charge.mine(amount) if owner is None else Charge(amount, owner)
        new = _ledger(mem, before, decision.charges, {guest: held_for})
        return new, decision.arc_max, decision

    epoch, state, decision = _change(settings, arc_backend, decide)
    try:
        arc_target.wait(settings.run_dir, arc_backend, epoch, until)
    except arc_target.ArcNotSet as exc:
        _give_back(settings, arc_backend, guest)
        raise arc_target.ArcNotSet(f"{guest}: {exc}; nothing is reserved") from None
    say(decision.line(guest))
    if decision.arc_max >= _size_since(arc_backend, state, epoch):
        return decision  # already small enough: no need to look again
    wait = float(settings.memory_shrink_timeout)
    if until is not None:
        wait = min(wait, until - time.monotonic())
    try:
        _wait_for_shrink(settings, arc_backend, guest, decision.arc_max, wait, say)
    except AdmissionRefused:
        release(settings, guest, say)
        raise
    return decision


def resize(settings: HostSettings, guest: str, cfg: VmConfig, say: Say) -> Decision | None:
    """Charge a running guest anew for cfg, its ram or vCPUs changed live. A
    larger charge is admitted as a start's is, and the ARC has come down before
    this returns; AdmissionRefused (the old charge and ARC maximum kept) when it
    does not fit or the ARC does not shrink in time. A smaller charge always
    fits. None when the host has no ARC to manage."""
    arc_backend = backend(settings)
    if arc_backend is None:
        return None
    amount = policy.charge(cfg.ram, cfg.vcpus, settings.overhead_model())

    def decide(
        mem: HostMemory, before: Ledger
    ) -> tuple[Ledger, int, tuple[Decision, Charge | None, int]]:
        held = before.charges.get(guest)
        decision = policy.admit(mem, before.amounts(), guest, amount)
        if decision.admitted:
            amounts, arc_max = dict(decision.charges), decision.arc_max
        elif held is not None and amount <= held.bytes:
            # Giving back never needs room, even on a host already overcommitted.
            amounts, arc_max = policy.reconcile(mem, before.amounts(), [], {guest: amount})
        else:
            raise AdmissionRefused(decision.line(guest))
        new = {} if held is not None else {guest: Charge.mine(amount)}
        return _ledger(mem, before, amounts, new), arc_max, (decision, held, arc_max)

    epoch, state, (decision, held, arc_max) = _change(settings, arc_backend, decide)
    try:
        arc_target.wait(settings.run_dir, arc_backend, epoch)
        if held is not None and amount == held.bytes:
            return decision
        say(decision.line(guest) if decision.admitted else f"{guest}: memory charge lowered")
        if arc_max < _size_since(arc_backend, state, epoch):
            _wait_for_shrink(
                settings, arc_backend, guest, arc_max, float(settings.memory_shrink_timeout), say
            )
    except (AdmissionRefused, arc_target.ArcNotSet):
        # Back to the charge held before; other guests may have come or gone since.
        def back(mem: HostMemory, now: Ledger) -> tuple[Ledger, int, None]:
            gone = [] if held is not None else [guest]
            kept = {guest: held.bytes} if held is not None else {}
            amounts, arc_max = policy.reconcile(mem, now.amounts(), gone, kept)
            return _ledger(mem, now, amounts, {}), arc_max, None

        epoch, _, _ = _change(settings, arc_backend, back)
        arc_target.wait(settings.run_dir, arc_backend, epoch)
        raise
    return decision


def _size_since(arc_backend: ArcBackend, state: ArcState, epoch: int) -> int:
    """The ARC's size once the maximum of epoch (or a newer one) is set: state's,
    read just before the change; or, with a shared view (whose reads may be
    older), one read begun once the ledger said so, shared by every start that
    epoch covers."""
    if isinstance(arc_backend, SharedArcView):
        return arc_backend.read_applied(epoch).size
    return state.size


def _wait_for_shrink(
    settings: HostSettings,
    arc_backend: ArcBackend,
    guest: str,
    target: int,
    seconds: float,
    say: Say,
) -> None:
    if isinstance(arc_backend, SharedArcView):
        arc_backend = arc_backend.kernel  # the size as it is now, each look
    limit = target + settings.memory_shrink_slack
    deadline = time.monotonic() + seconds
    size = arc_backend.read().size
    if size <= limit:
        return
    say(f"{guest}: waiting for the ARC to shrink from {_gib(size)} to {_gib(target)}")
    while size > limit:
        if time.monotonic() >= deadline:
            raise AdmissionRefused(
                f"{guest}: the ARC did not shrink to {_gib(target)} within "
                f"{seconds:.0f}s (still {_gib(size)}); nothing is reserved; "
                "try again later, or raise memory.shrink_timeout in the host configuration"
            )
        time.sleep(0.25)
        size = arc_backend.read().size


def _gib(n: int) -> str:
    return f"{n / policy.GiB:.2f} GiB"


def _ledger(
    mem: HostMemory, before: Ledger, amounts: Mapping[str, int], new: Mapping[str, Charge]
) -> Ledger:
    """The ledger holding the policy's amounts: each guest keeps the owner it had,
    or takes the one in new; the baseline stays until Ledger.tidy drops it."""
    charges = {g: new.get(g) or before.charges[g] for g in amounts}
    charges = {g: attrs.evolve(c, bytes=amounts[g]) for g, c in charges.items()}
    return attrs.evolve(before, baseline=mem.baseline, charges=charges)


def _give_back(settings: HostSettings, arc_backend: ArcBackend, guest: str) -> int | None:
    """Drop guest's charge and ask for the ARC maximum the rest call for; (that
    maximum, or None when guest held nothing and others hold charges)."""

    def decide(mem: HostMemory, before: Ledger) -> tuple[Ledger, int, int]:
        if guest not in before.charges and before.charges:
            raise _Unchanged
        amounts, arc_max = policy.release(mem, before.amounts(), guest)
        return _ledger(mem, before, amounts, {}), arc_max, arc_max

    try:
        epoch, _, arc_max = _change(settings, arc_backend, decide)
    except _Unchanged:
        return None
    arc_target.wait(settings.run_dir, arc_backend, epoch)
    return arc_max


def release(settings: HostSettings, guest: str, say: Say) -> None:
    """Give back guest's charge and let the ARC grow."""
    arc_backend = backend(settings)
    if arc_backend is None:
        return
    arc_max = _give_back(settings, arc_backend, guest)
    if arc_max is not None:
        say(f"{guest}: memory released; ARC maximum {_gib(arc_max)}")


def _running_uncharged(settings: HostSettings, ledger: Ledger) -> dict[str, Charge]:
    """Guests whose QEMU runs with no charge in the ledger (a ledger lost or
    damaged), charged from the configuration they run with."""
    found: dict[str, Charge] = {}
    if not settings.run_dir.is_dir():
        return found
    for entry in sorted(settings.run_dir.iterdir()):
        if entry.name in ledger.charges or not entry.is_dir():
            continue
        run = RunPaths(entry)
        pid = running_pid(run)
        record = boot_record.read(run)
        if pid is None or record is None:
            continue
        cfg = record.config
        amount = policy.charge(cfg.ram, cfg.vcpus, settings.overhead_model())
        found[entry.name] = Charge(amount, pid)
    return found


def _in_step(settings: HostSettings, ledger: Ledger) -> bool:
    """Nothing for reconcile to change: every charge's guest runs and every
    running guest is charged; or no charge, no baseline and nothing asked, the
    state in which the kernel's own maximum stands."""
    if ledger.stale(_guest_running(settings)) or _running_uncharged(settings, ledger):
        return False
    return bool(ledger.charges) or (ledger.baseline is None and ledger.settled)


def reconcile(settings: HostSettings) -> tuple[list[str], list[str]]:
    """Settle the ledger against the guests really running: drop the charges of
    guests gone (killed, crashed, or whose stop never ran) and charge running
    guests the ledger lacks; (the guests released, the guests charged)."""
    arc_backend = backend(settings)
    if arc_backend is None:
        return [], []
    # The controller reconciles at every wake-up, a boot storm's state changes
    # included: when the ledger already matches the guests running, say so
    # without reading the ARC (a kstat process each time).
    if _in_step(settings, memory_ledger.read(settings.run_dir)):
        return [], []

    def decide(mem: HostMemory, before: Ledger) -> tuple[Ledger, int, tuple[list[str], list[str]]]:
        stale = before.stale(_guest_running(settings))
        missing = _running_uncharged(settings, before)
        if not (stale or missing or not before.charges):
            raise _Unchanged
        amounts, arc_max = policy.reconcile(
            mem, before.amounts(), stale, {g: c.bytes for g, c in missing.items()}
        )
        return _ledger(mem, before, amounts, missing), arc_max, (stale, sorted(missing))

    try:
        epoch, _, (stale, charged) = _change(settings, arc_backend, decide)
    except _Unchanged:
        return [], []
    arc_target.wait(settings.run_dir, arc_backend, epoch)
    return stale, charged
