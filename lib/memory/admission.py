"""Memory admission at a guest's start and stop: the policy (vmbundle.memory.policy),
the ARC backend (vmbundle.memory.arc) and the ledger (vmbundle.memory.ledger) put
together. The arithmetic is the policy's own admit, release and reconcile, so
its property tests cover what runs here.

A start reserves the guest's charge and lowers the ARC maximum under the
ledger's lock, then waits, outside the lock, until the ARC's size has really
come down; a stop releases the charge and raises the maximum again, to the
saved baseline after the last guest. A refusal is final for that start (exit
95: SMF puts the instance in maintenance at once, with the numbers in its log).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import attrs

from vmbundle.errors import SMF_EXIT_ERR_FATAL, VmbundleError
from vmbundle.guest import boot_record
from vmbundle.guest.process import running_pid
from vmbundle.guest.rundir import RunPaths
from vmbundle.memory import arc, policy
from vmbundle.memory import ledger as memory_ledger
from vmbundle.memory.arc import ArcBackend, ArcState
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


def _set_max(arc_backend: ArcBackend, state: ArcState, arc_max: int) -> None:
    if arc_max != state.c_max:
        arc_backend.set_max(arc_max)


def reserve(
    settings: HostSettings, guest: str, cfg: VmConfig, say: Say, *, until: float | None = None
) -> Decision | None:
    """Charge guest, lower the ARC maximum, and wait until the ARC's size is down
    (at most memory.shrink_timeout, and never past `until`, a monotonic time);
    AdmissionRefused (nothing left reserved) when it does not fit or the ARC
    does not shrink in time. None when the host has no ARC to manage."""
    arc_backend = backend(settings)
    if arc_backend is None:
        return None
    amount = policy.charge(cfg.ram, cfg.vcpus, settings.overhead_model())
    with memory_ledger.locked(settings.run_dir) as book:
        state = arc_backend.read()
        mem = host_memory(settings, state, book.ledger)
        decision = policy.admit(mem, book.ledger.amounts(), guest, amount)
        if not decision.admitted:
            raise AdmissionRefused(decision.line(guest))
        before = book.ledger
        # The baseline is saved before the first change, and kept until the last release.
        book.save(_ledger(mem, before, decision.charges, {guest: Charge.mine(amount)}))
        try:
            _set_max(arc_backend, state, decision.arc_max)
        except VmbundleError:
            book.save(before)
            raise
    say(decision.line(guest))
    if decision.arc_max >= state.size:
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
    with memory_ledger.locked(settings.run_dir) as book:
        state = arc_backend.read()
        mem = host_memory(settings, state, book.ledger)
        before = book.ledger
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
        book.save(_ledger(mem, before, amounts, new))
        try:
            _set_max(arc_backend, state, arc_max)
        except VmbundleError:
            book.save(before)
            raise
    if held is not None and amount == held.bytes:
        return decision
    say(decision.line(guest) if decision.admitted else f"{guest}: memory charge lowered")
    if arc_max >= state.size:
        return decision
    try:
        _wait_for_shrink(
            settings, arc_backend, guest, arc_max, float(settings.memory_shrink_timeout), say
        )
    except AdmissionRefused:
        # Back to the charge held before; other guests may have come or gone since.
        with memory_ledger.locked(settings.run_dir) as book:
            now = arc_backend.read()
            mem = host_memory(settings, now, book.ledger)
            gone = [] if held is not None else [guest]
            kept = {guest: held.bytes} if held is not None else {}
            amounts, arc_max = policy.reconcile(mem, book.ledger.amounts(), gone, kept)
            _set_max(arc_backend, now, arc_max)
            book.save(_ledger(mem, book.ledger, amounts, {}))
        raise
    return decision


def _wait_for_shrink(
    settings: HostSettings,
    arc_backend: ArcBackend,
    guest: str,
    target: int,
    seconds: float,
    say: Say,
) -> None:
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
    or takes the one in new; the baseline goes with the last charge."""
    charges = {g: new.get(g) or before.charges[g] for g in amounts}
    charges = {g: attrs.evolve(c, bytes=amounts[g]) for g, c in charges.items()}
    return Ledger(baseline=mem.baseline if charges else None, charges=charges)


def release(settings: HostSettings, guest: str, say: Say) -> None:
    """Give back guest's charge and let the ARC grow."""
    arc_backend = backend(settings)
    if arc_backend is None:
        return
    with memory_ledger.locked(settings.run_dir) as book:
        if guest not in book.ledger.charges and book.ledger.charges:
            return
        state = arc_backend.read()
        mem = host_memory(settings, state, book.ledger)
        amounts, arc_max = policy.release(mem, book.ledger.amounts(), guest)
        _set_max(arc_backend, state, arc_max)
        book.save(_ledger(mem, book.ledger, amounts, {}))
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


def reconcile(settings: HostSettings) -> tuple[list[str], list[str]]:
    """Settle the ledger against the guests really running: drop the charges of
    guests gone (killed, crashed, or whose stop never ran) and charge running
    guests the ledger lacks; (the guests released, the guests charged)."""
    arc_backend = backend(settings)
    if arc_backend is None:
        return [], []
    with memory_ledger.locked(settings.run_dir) as book:
        stale = book.ledger.stale(_guest_running(settings))
        missing = _running_uncharged(settings, book.ledger)
        if stale or missing or not book.ledger.charges:
            state = arc_backend.read()
            mem = host_memory(settings, state, book.ledger)
            amounts, arc_max = policy.reconcile(
                mem, book.ledger.amounts(), stale, {g: c.bytes for g, c in missing.items()}
            )
            _set_max(arc_backend, state, arc_max)
            book.save(_ledger(mem, book.ledger, amounts, missing))
    return stale, sorted(missing)
