"""What the controller does when a guest powers off, reboots or panics
(vmbundle.controller.policy), and what one reconcile pass plans
(vmbundle.controller.plan): pure, so checked without a host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st

from vmbundle.controller import plan, policy
from vmbundle.controller.world import GuestSeen, World
from vmbundle.guest.boot_record import BootRecord
from vmbundle.ops.arrivals import Arrival, RootSeen, Survey
from vmbundle.vm.model import MiB, VmConfig

UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
CFG = VmConfig(schema_version=1, name="web01", uuid=UUID, ram=128 * MiB, vcpus=1)
ROOT = Path("/pool/vms")


def cfg(**changes: Any) -> VmConfig:
    return attrs.evolve(CFG, **changes)


def test_a_guest_that_powers_itself_off_is_disabled_by_default() -> None:
    r = policy.on_event(CFG, "SHUTDOWN", {"guest": True, "reason": "guest-shutdown"})
    assert r == policy.Reaction(
        policy.DISABLE, "the guest powered itself off (on_poweroff=disable)"
    )


def test_on_poweroff_restart_restarts_the_instance() -> None:
    r = policy.on_event(
        cfg(on_poweroff="restart"), "SHUTDOWN", {"guest": True, "reason": "guest-shutdown"}
    )
    assert r is not None and r.action == policy.RESTART


def test_a_shutdown_the_host_asked_for_is_left_to_smf() -> None:
    for reason in ("host-qmp-quit", "host-signal", "host-qmp-system-reset"):
        assert policy.on_event(CFG, "SHUTDOWN", {"guest": False, "reason": reason}) is None


def test_a_reboot_is_let_be_unless_on_reboot_is_disable() -> None:
    assert policy.on_event(CFG, "RESET", {"guest": True, "reason": "guest-reset"}) is None
    assert not policy.reboot_is_shutdown(CFG)
    off = cfg(on_reboot="disable")
    assert policy.reboot_is_shutdown(off)
    # With set-action reboot=shutdown, QEMU reports the reboot as a shutdown...
    r = policy.on_event(off, "SHUTDOWN", {"guest": True, "reason": "guest-reset"})
    assert r is not None and r.action == policy.DISABLE
    # ...and where it cannot, as a reset.
    r = policy.on_event(off, "RESET", {"guest": True, "reason": "guest-reset"})
    assert r is not None and r.action == policy.DISABLE


def test_a_panic_follows_on_crash() -> None:
    wanted = {"restart": policy.RESET, "disable": policy.DISABLE, "preserve": policy.PRESERVE}
    for choice, action in wanted.items():
        r = policy.on_event(cfg(on_crash=choice), "GUEST_PANICKED", {"action": "pause"})
        assert r is not None and r.action == action
        assert f"on_crash={choice}" in r.why


def test_a_state_found_on_attaching_is_settled_as_if_seen() -> None:
    r = policy.on_status(CFG, "shutdown")
    assert r is not None and r.action == policy.DISABLE
    r = policy.on_status(cfg(on_crash="preserve"), "guest-panicked")
    assert r is not None and r.action == policy.PRESERVE
    for status in ("running", "paused", "prelaunch", "inmigrate"):
        assert policy.on_status(CFG, status) is None


def test_other_events_ask_for_nothing() -> None:
    for event in ("STOP", "RESUME", "RTC_CHANGE", "POWERDOWN", "DEVICE_DELETED"):
        assert policy.on_event(CFG, event, {"guest": True}) is None


# -- plan ---------------------------------------------------------------------------


def record(pid: int = 100, started: float = 1.0) -> BootRecord:
    return BootRecord(
        bundle=str(ROOT / "web01"), config=CFG, profile="modern", qemu_pid=pid, started=started
    )


def guest(
    name: str, state: str, *, present: bool = True, rec: BootRecord | None = None
) -> GuestSeen:
    return GuestSeen(
        name=name,
        fmri=f"svc:/system/vmbundle/vm:{name}",
        state=state,
        next_state="-",
        bundle=str(ROOT / name),
        bundle_present=present,
        record=rec,
    )


def survey(*arrivals: Arrival, available: bool = True) -> Survey:
    return Survey(
        roots=(RootSeen(spec="pool/vms", path=ROOT, available=available, dataset="pool/vms"),),
        arrivals=tuple(arrivals),
    )


def arrival(name: str, verdict: str, lines: tuple[str, ...] = ()) -> Arrival:
    return Arrival(name=name, path=ROOT / name, verdict=verdict, lines=lines, fmri=None)


def world(*guests: GuestSeen, seen: Survey | None = None) -> World:
    return World({g.name: g for g in guests}, seen)


def test_an_importable_bundle_is_imported_and_nothing_else_is() -> None:
    w = world(
        seen=survey(
            arrival("new1", "importable"),
            arrival("busy", "receiving", ("busy: still receiving",)),
            arrival("bad", "invalid", ('bad: ram: must be a size like 20G, got "lots"',)),
        )
    )
    assert plan.plan(w, {}) == [plan.Import("new1", ROOT / "new1")]
    assert set(plan.problems(w)) == {str(ROOT / "busy"), str(ROOT / "bad")}


def test_a_gone_bundle_removes_only_a_disabled_guest_in_a_mounted_root() -> None:
    gone = guest("old", "disabled", present=False)
    assert plan.plan(world(gone, seen=survey()), {}) == [
        plan.Remove("old", gone.fmri, str(ROOT / "old"))
    ]
    # The pool did not come back: keep every guest.
    assert plan.plan(world(gone, seen=survey(available=False)), {}) == []
    assert "kept" in plan.problems(world(gone, seen=survey(available=False)))["old"][0]
    running = guest("run1", "online", present=False, rec=record())
    assert [
        a for a in plan.plan(world(running, seen=survey()), {}) if isinstance(a, plan.Remove)
    ] == []
    assert "left as it is" in plan.problems(world(running, seen=survey()))["run1"][0]
    # Without a look at the roots this pass, nothing is removed.
    assert plan.plan(world(gone), {}) == []


def test_sessions_follow_the_live_boots() -> None:
    a = guest("a", "online", rec=record(100, 1.0))
    b = guest("b", "online", rec=record(200, 2.0))
    off = guest("c", "disabled")
    w = world(a, b, off)
    assert plan.plan(w, {}) == [plan.Attach("a", (100, 1.0)), plan.Attach("b", (200, 2.0))]
    # b was restarted (a new QEMU), c was attached but has stopped.
    attached = {"a": (100, 1.0), "b": (150, 0.5), "c": (300, 3.0)}
    assert plan.plan(w, attached) == [
        plan.Detach("b"),
        plan.Detach("c"),
        plan.Attach("b", (200, 2.0)),
    ]
    # A guest in maintenance with a QEMU left over is SMF's to clean up.
    assert plan.plan(world(guest("m", "maintenance", rec=record())), {}) == []


STATES = st.sampled_from(["online", "disabled", "maintenance", "offline", "degraded"])


@st.composite
def worlds(draw: st.DrawFn) -> tuple[World, dict[str, plan.BootKey]]:
    names = draw(st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), unique=True))
    guests = [
        guest(
            n,
            draw(STATES),
            present=draw(st.booleans()),
            rec=record(draw(st.integers(1, 3)), 1.0) if draw(st.booleans()) else None,
        )
        for n in names
    ]
    # A bundle the survey found is one whose guest (if any) has it present.
    gone = {g.name for g in guests if not g.bundle_present}
    new = [
        n for n in draw(st.lists(st.sampled_from(["a", "x", "y"]), unique=True)) if n not in gone
    ]
    verdicts = st.sampled_from(["importable", "invalid", "receiving", "taken"])
    seen = survey(*(arrival(n, draw(verdicts)) for n in new), available=draw(st.booleans()))
    attached = {
        n: (draw(st.integers(1, 3)), 1.0)
        for n in draw(st.lists(st.sampled_from(["a", "b", "z"]), unique=True))
    }
    return world(*guests, seen=seen), attached


@given(worlds())
def test_a_plan_carried_out_leaves_nothing_to_do(
    case: tuple[World, dict[str, plan.BootKey]],
) -> None:
    w, attached = case
    actions = plan.plan(w, attached)
    # Carry it out on the model: sessions as planned, imports become disabled guests.
    sessions = dict(attached)
    guests = dict(w.guests)
    for a in actions:
        if isinstance(a, plan.Detach):
            del sessions[a.name]
        elif isinstance(a, plan.Attach):
            assert a.name not in sessions
            sessions[a.name] = a.key
        elif isinstance(a, plan.Import):
            assert a.name not in guests, "an import never replaces a guest"
            guests[a.name] = guest(a.name, "disabled")
        else:
            assert w.guests[a.name].state == "disabled", "only a disabled guest is removed"
            del guests[a.name]
    assert w.survey is not None
    imported = {str(ROOT / n) for n in guests}
    done = Survey(
        roots=w.survey.roots,
        arrivals=tuple(
            attrs.evolve(x, verdict="imported") if str(x.path) in imported else x
            for x in w.survey.arrivals
        ),
    )
    assert plan.plan(World(guests, done), sessions) == []
