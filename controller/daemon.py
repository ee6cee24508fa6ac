"""The reconcile loop: wake, look, compare, act.

Events (a watched directory changes, a method's nudge, a QMP event, a timer) only
set `wake`; each pass then reads SMF, the run directories and the bundle roots
(controller.world), asks controller.plan what differs from what should be, and
does that. Nothing here survives a restart that the next pass cannot rebuild, and
nothing the controller starts belongs to a guest: a guest's QEMU lives in its own
SMF contract, so the controller's crash or restart never touches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vmbundle.adapters import smf
from vmbundle.controller import plan, policy, world
from vmbundle.controller.bus import EventBus
from vmbundle.controller.fresh_read import FreshRead
from vmbundle.controller.policy import Reaction
from vmbundle.controller.serial import SerialConsole
from vmbundle.controller.session import CommandFailed, GuestSession, NotConnected
from vmbundle.errors import VmbundleError
from vmbundle.guest.rundir import RunPaths
from vmbundle.memory import admission
from vmbundle.memory.arc_view import SharedArcView
from vmbundle.ops import arrivals, lifecycle
from vmbundle.ops import memory as memory_ops
from vmbundle.service.controller import ControllerPaths
from vmbundle.settings import HostSettings
from vmbundle.vm import bundle

# How often SMF is looked at without a nudge, and how often everything is. Each
# method nudges when it ends, a watched directory and a QMP event wake the loop
# too, so this pass is the safety net, and each costs one `svcs`.
PASS_SECONDS = 30.0
# While an instance is between states, look again this soon: the method's nudge
# can arrive before svc.startd records the state it moves to, and a guest that
# comes online is attached (its serial console read) only once a pass sees it.
SETTLING_SECONDS = 0.5
FULL_SCAN_SECONDS = 60.0
# Events come in bursts (a receive writes many files): one pass for a burst.
DEBOUNCE_SECONDS = 0.05


def shared_arc_view(settings: HostSettings) -> SharedArcView | None:
    """None where the host has no ARC to manage, or its backend is misconfigured
    (each start then says so itself)."""
    try:
        arc_backend = admission.backend(settings)
    except VmbundleError:
        return None
    return None if arc_backend is None else SharedArcView(arc_backend, settings.run_dir)


class Controller:
    def __init__(self, settings: HostSettings, log: Any) -> None:
        self.settings = settings
        self.log = log
        self.paths = ControllerPaths.under(settings.run_dir)
        self.bus = EventBus()
        self.sessions: dict[str, GuestSession] = {}
        # One serial console beside each session, for the same boot.
        self.serials: dict[str, SerialConsole] = {}
        self.wake = asyncio.Event()
        self.world: world.World | None = None
        self.survey: arrivals.Survey | None = None
        self.problems: dict[str, tuple[str, ...]] = {}
        self.passes = 0
        self.started = time.time()
        self._bundle_paths: dict[str, str] = {}
        # config/bundle of every instance, for the starts the controller prepares:
        # read after each start asked, so an edit made before `svcadm enable` counts.
        self.bundle_values = FreshRead(smf.bundle_paths)
        self._paths_stale = True
        self._bundles_dirty = True
        self._next_full = 0.0
        self._running: frozenset[str] | None = None
        self._cache = arrivals.ValidationCache()
        self._states: dict[str, tuple[str, str]] = {}
        self.after_pass: Callable[[], None] = lambda: None
        # The memory authority's one view of the ARC, for the starts it prepares.
        self.arc_view = shared_arc_view(settings)

    # -- waking -------------------------------------------------------------

    def poke(self, *, bundles: bool = False, paths: bool = False) -> None:
        self._bundles_dirty |= bundles
        self._paths_stale |= paths
        self.wake.set()

    def bundle_event(self) -> None:
        self.poke(bundles=True)

    def open_nudges(self) -> socket.socket:
        path = self.paths.nudge_socket
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        # The methods run as root; no one else may wake the controller.
        os.chmod(path, 0o600)
        sock.setblocking(False)
        asyncio.get_running_loop().add_reader(sock.fileno(), self._nudged, sock)
        return sock

    def _nudged(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                sock.recv(256)
        # A refresh may have pointed the instance at another bundle.
        self.poke(paths=True)

    # -- the loop -----------------------------------------------------------

    async def run_forever(self) -> None:
        while True:
            try:
                await self.reconcile()
            except Exception as exc:  # a pass that fails is retried by the next one
                self.log.exception("pass.failed", error=str(exc))
            self.after_pass()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self._next_pass_in())
            await asyncio.sleep(DEBOUNCE_SECONDS)

    def _next_pass_in(self) -> float:
        moving = any(next_state != "-" for _, next_state in self._states.values())
        return SETTLING_SECONDS if moving else PASS_SECONDS

    async def reconcile(self) -> world.World:
        """One pass; what it saw."""
        self.wake.clear()
        self.passes += 1
        now = time.monotonic()
        full = now >= self._next_full
        if full:
            self._next_full = now + FULL_SCAN_SECONDS
        states = await asyncio.to_thread(smf.states)
        if full or self._paths_stale or set(states) != set(self._bundle_paths):
            self._paths_stale = False
            self._bundle_paths = await asyncio.to_thread(smf.bundle_paths)
            self._bundles_dirty = True
        survey = None
        if full or self._bundles_dirty:
            self._bundles_dirty = False
            survey = await asyncio.to_thread(
                arrivals.survey, self.settings, self._bundle_paths, self._cache
            )
        guests = await asyncio.to_thread(world.guests, self.settings, states, self._bundle_paths)
        seen = world.World(guests, survey)
        if survey is not None:
            self.survey = survey
        self._note_states(states)
        if survey is not None:
            self._note_problems(plan.problems(seen))
        for action in plan.plan(seen, {n: s.key for n, s in self.sessions.items()}):
            await self._do(action, seen)
        running = frozenset(n for n, g in guests.items() if g.record is not None)
        if full or running != self._running:
            self._running = running
            await self._reconcile_memory()
        self.world = seen
        return seen

    def _note_states(self, states: dict[str, tuple[str, str]]) -> None:
        for fmri, now in states.items():
            if self._states.get(fmri) != now:
                name = smf.instance_name(fmri)
                self.log.info("smf.state", vm=name, fmri=fmri, state=now[0], next_state=now[1])
                self.bus.publish("state", name, fmri=fmri, state=now[0], next_state=now[1])
        for fmri in set(self._states) - set(states):
            self.bus.publish("state", smf.instance_name(fmri), fmri=fmri, state="deleted")
        self._states = dict(states)

    def _note_problems(self, found: dict[str, tuple[str, ...]]) -> None:
        for key, lines in found.items():
            if self.problems.get(key) != lines:
                for line in lines:
                    self.log.warning("bundle.problem", where=key, problem=line)
                self.bus.publish("problem", None, where=key, lines=list(lines))
        for key in set(self.problems) - set(found):
            self.log.info("bundle.problem_gone", where=key)
        self.problems = found

    async def _do(self, action: plan.Action, seen: world.World) -> None:
        if isinstance(action, plan.Import):
            await self._import(action)
        elif isinstance(action, plan.Remove):
            await self._remove(action)
        elif isinstance(action, plan.Attach):
            g = seen.guests[action.name]
            assert g.record is not None
            run = RunPaths.for_guest(self.settings.run_dir, g.name)
            s = GuestSession(g.name, g.fmri, run, g.record, self._react, self.bus, self.log)
            self.sessions[g.name] = s
            s.start()
            serial = SerialConsole(g.name, run, g.record.qemu_pid, s.log)
            self.serials[g.name] = serial
            serial.start()
        else:
            await self._detach(action.name)

    async def _detach(self, name: str) -> None:
        s = self.sessions.pop(name)
        serial = self.serials.pop(name, None)
        await s.close()
        if serial is not None:
            await serial.close()

    async def _import(self, action: plan.Import) -> None:
        log = self.log.bind(vm=action.name, bundle=str(action.path))

        def work() -> lifecycle.Imported:
            # Checked again, whole, right before: the survey may be seconds old.
            return lifecycle.add_instance(bundle.load(action.path, self.settings), settle=False)

        try:
            done = await asyncio.to_thread(work)
        except VmbundleError as exc:
            log.warning("bundle.import_failed", error=str(exc))
            self.bus.publish("problem", action.name, where=str(action.path), lines=[str(exc)])
            return
        self._paths_stale = True
        log.info("bundle.imported", fmri=done.fmri, state=done.state)
        self.bus.publish("imported", action.name, fmri=done.fmri, bundle=str(action.path))

    async def _remove(self, action: plan.Remove) -> None:
        log = self.log.bind(vm=action.name, fmri=action.fmri)
        try:
            await asyncio.to_thread(lifecycle.forget, action.name)
        except VmbundleError as exc:
            log.warning("bundle.remove_failed", error=str(exc))
            return
        self._paths_stale = True
        log.info("bundle.gone", bundle=action.bundle, removed=action.fmri)
        self.bus.publish("removed", action.name, fmri=action.fmri, bundle=action.bundle)

    async def _react(self, s: GuestSession, reaction: Reaction) -> None:
        s.log.info("policy", action=reaction.action, why=reaction.why)
        self.bus.publish("policy", s.name, action=reaction.action, why=reaction.why)
        try:
            if reaction.action == policy.DISABLE:
                await asyncio.to_thread(lifecycle.disable, s.fmri)
            elif reaction.action == policy.RESTART:
                await asyncio.to_thread(lifecycle.restart, s.name, wait=False)
            elif reaction.action == policy.RESET:
                await s.execute("system_reset")
                await s.execute("cont")
            else:
                s.preserved = reaction.why
        except (VmbundleError, CommandFailed, NotConnected, TimeoutError) as exc:
            s.log.warning("policy.failed", action=reaction.action, error=str(exc))
        self.wake.set()

    async def _reconcile_memory(self) -> None:
        try:
            released, charged = await asyncio.to_thread(memory_ops.reconcile, self.settings)
        except VmbundleError as exc:
            self.log.warning("memory.reconcile_failed", error=str(exc))
            return
        for name in released:
            self.log.info("memory.released", vm=name)
            self.bus.publish("memory", name, change="released")
        for name in charged:
            self.log.info("memory.charged", vm=name)
            self.bus.publish("memory", name, change="charged")

    # -- for the API --------------------------------------------------------

    def watched_dirs(self) -> list[Path]:
        """The roots, and the plain-directory bundles not imported yet (a copy
        under way). Never a bundle that is a dataset of its own: an inotify watch
        on a mounted file system keeps it busy, and `zfs destroy` of it fails
        (seen on zfs-fuse); a received dataset is whole once mounted anyway."""
        survey = self.survey
        if survey is None:
            return []
        imported = {os.path.realpath(p) for p in self._bundle_paths.values()}
        dirs = [r.path for r in survey.roots if r.path is not None]
        return dirs + [
            a.path
            for a in survey.arrivals
            if a.verdict != "imported"
            and os.path.realpath(a.path) not in imported
            and not os.path.ismount(a.path)
        ]

    async def close(self) -> None:
        await asyncio.gather(*(self._detach(name) for name in list(self.sessions)))
