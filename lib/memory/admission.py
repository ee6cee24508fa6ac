"""Memory admission at a guest's start and stop: the policy (memory_policy), the
ARC backend (arc) and the ledger (memory_ledger) put together.

A start reserves the guest's charge and lowers the ARC maximum under the
ledger's lock, then waits, outside the lock, until the ARC's size has really
come down; a stop releases the charge and raises the maximum again, to the
saved baseline after the last guest. A refusal is final for that start (exit
95: SMF puts the instance in maintenance at once, with the numbers in its log).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs

from vmbundle.errors import SMF_EXIT_ERR_FATAL, VmbundleError
from vmbundle.guest import boot_record
from vmbundle.guest.process import running_pid
from vmbundle.guest.rundir import RunPaths
from vmbundle.memory import arc, policy
from vmbundle.memory import ledger as memory_ledger
from vmbundle.memory.arc import ArcBackend, ArcState
from vmbundle.memory.ledger import Ledger
from vmbundle.memory.policy import Decision, HostMemory
from vmbundle.settings import HostSettings
from vmbundle.vm.model import VmConfig

Say = Callable[[str], None]


class AdmissionRefused(VmbundleError):
    """Not enough memory for the guest, or the ARC did not give it back in time."""

    exit_code = SMF_EXIT_ERR_FATAL


def backend(host: HostSettings) -> ArcBackend | None:
    return arc.choose(host.memory_backend)


def host_memory(host: HostSettings, state: ArcState, ledger: Ledger) -> HostMemory:
    baseline = ledger.baseline if ledger.baseline is not None else state.c_max
    return HostMemory.build(
        state.physmem,
        state.c_min,
        baseline,
        reserve=host.memory_reserve,
        arc_floor=host.memory_arc_floor,
    )


def _guest_running(host: HostSettings) -> Callable[[str], bool]:
    return lambda g: running_pid(RunPaths.for_guest(host.run_dir, g)) is not None


def _set_max(arc_backend: ArcBackend, state: ArcState, arc_max: int) -> None:
    if arc_max != state.c_max:
        arc_backend.set_max(arc_max)


def reserve(host: HostSettings, guest: str, cfg: VmConfig, say: Say) -> Decision | None:
    """Charge guest, lower the ARC maximum, and wait until the ARC's size is down;
    AdmissionRefused (nothing left reserved) when it does not fit or the ARC does
    not shrink in time. None when the host has no ARC to manage."""
    arc_backend = backend(host)
    if arc_backend is None:
        return None
    amount = policy.charge(cfg.ram, cfg.vcpus, host.overhead_model())
    with memory_ledger.locked(host.run_dir) as book:
        state = arc_backend.read()
        mem = host_memory(host, state, book.ledger)
        decision = policy.admit(mem, book.ledger.amounts(), guest, amount)
        if not decision.admitted:
            raise AdmissionRefused(decision.line(guest))
        # The baseline is saved before the first change, and kept until the last release.
        book.save(memory_ledger.charged(attrs.evolve(book.ledger, baseline=mem.baseline), guest, amount))
        try:
            _set_max(arc_backend, state, decision.arc_max)
        except VmbundleError:
            book.save(attrs.evolve(book.ledger, charges=_without(book.ledger, guest)))
            raise
    say(decision.line(guest))
    if decision.arc_max >= state.size:
        return decision  # already small enough: no need to look again
    try:
        _wait_for_shrink(host, arc_backend, guest, decision.arc_max, say)
    except AdmissionRefused:
        release(host, guest, say)
        raise
    return decision


def _wait_for_shrink(
    host: HostSettings, arc_backend: ArcBackend, guest: str, target: int, say: Say
) -> None:
    limit = target + host.memory_shrink_slack
    deadline = time.monotonic() + host.memory_shrink_timeout
    size = arc_backend.read().size
    if size <= limit:
        return
    say(f"{guest}: waiting for the ARC to shrink from {_gib(size)} to {_gib(target)}")
    while size > limit:
        if time.monotonic() >= deadline:
            raise AdmissionRefused(
                f"{guest}: the ARC did not shrink to {_gib(target)} within "
                f"{host.memory_shrink_timeout}s (still {_gib(size)}); nothing is reserved; "
                "try again later, or raise memory.shrink_timeout in the host configuration"
            )
        time.sleep(0.25)
        size = arc_backend.read().size


def _gib(n: int) -> str:
    return f"{n / policy.GiB:.2f} GiB"


def _without(ledger: Ledger, guest: str) -> dict[str, memory_ledger.Charge]:
    return {g: c for g, c in ledger.charges.items() if g != guest}


def _settle(
    host: HostSettings,
    arc_backend: ArcBackend,
    book: memory_ledger.Book,
    drop: list[str],
    add: dict[str, memory_ledger.Charge] | None = None,
) -> int:
    """Drop these guests' charges, add those, and set the ARC maximum the result
    allows (the baseline, forgotten afterwards, when no charge is left)."""
    state = arc_backend.read()
    mem = host_memory(host, state, book.ledger)
    charges = {g: c for g, c in book.ledger.charges.items() if g not in drop}
    charges.update(add or {})
    arc_max = policy.arc_max_for(mem, {g: c.bytes for g, c in charges.items()})
    _set_max(arc_backend, state, arc_max)
    book.save(Ledger(baseline=mem.baseline if charges else None, charges=charges))
    return arc_max


def release(host: HostSettings, guest: str, say: Say) -> None:
    """Give back guest's charge and let the ARC grow."""
    arc_backend = backend(host)
    if arc_backend is None:
        return
    with memory_ledger.locked(host.run_dir) as book:
        if guest not in book.ledger.charges and book.ledger.charges:
            return
        arc_max = _settle(host, arc_backend, book, [guest])
    say(f"{guest}: memory released; ARC maximum {_gib(arc_max)}")


def _running_uncharged(host: HostSettings, ledger: Ledger) -> dict[str, memory_ledger.Charge]:
    """Guests whose QEMU runs with no charge in the ledger (a ledger lost or
    damaged), charged from the configuration they run with."""
    found: dict[str, memory_ledger.Charge] = {}
    if not host.run_dir.is_dir():
        return found
    for entry in sorted(host.run_dir.iterdir()):
        if entry.name in ledger.charges or not entry.is_dir():
            continue
        run = RunPaths(entry)
        pid = running_pid(run)
        record = boot_record.read(run)
        if pid is None or record is None:
            continue
        cfg = record.config
        amount = policy.charge(cfg.ram, cfg.vcpus, host.overhead_model())
        found[entry.name] = memory_ledger.Charge(amount, pid)
    return found


def reconcile(host: HostSettings) -> tuple[list[str], list[str]]:
    """Settle the ledger against the guests really running: drop the charges of
    guests gone (killed, crashed, or whose stop never ran) and charge running
    guests the ledger lacks; (the guests released, the guests charged)."""
    arc_backend = backend(host)
    if arc_backend is None:
        return [], []
    with memory_ledger.locked(host.run_dir) as book:
        stale = book.ledger.stale(_guest_running(host))
        missing = _running_uncharged(host, book.ledger)
        if stale or missing or not book.ledger.charges:
            _settle(host, arc_backend, book, stale, missing)
    return stale, sorted(missing)
