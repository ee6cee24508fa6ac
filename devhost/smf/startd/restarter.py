"""The restarter and graph engine: svc.startd's restarter.c and graph.c, in one
loop over the repository.

The loop (`tick`) runs whenever something is nudged and every second anyway. For
each instance no method thread owns, it handles, in order: stops propagated from
its dependencies, events from its contract, the administrative actions svcadm
left in `restarter_actions`, enabling and disabling, and starting it once its
dependencies are satisfied. Methods run in threads of their own (`method_thread`,
as in method.c), so a slow method holds up only its instance.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from devhost.smf import repository
from devhost.smf.contracts import ContractStore
from devhost.smf.fmri import STARTD_FMRI, Fmri, FmriError, parse
from devhost.smf.repository import Doc, Pgs, Repository
from devhost.smf.startd import config, graph, instance
from devhost.smf.startd.config import Style
from devhost.smf.startd.instance import (
    FAULT,
    REFRESH,
    RESTART,
    RUNNING,
    Instance,
    StopCause,
    commit_states,
    write_restarter,
)
from devhost.smf.startd.runner import (
    SMF_EXIT_NODAEMON,
    Host,
    Outcome,
    Runner,
    rate_critical,
    remove_contract,
    startd_view,
)

FAULT_THRESHOLD = 3
NOT_RETRYABLE = (95, 96, 99, 100)  # FATAL, CONFIG, NOSMF, PERM
WT_SVC_ERR_THROTTLE = 1.0
ACTIONS = (
    "maint_off",
    "restore",
    "maint_on_immediate",
    "maint_on_immtemp",
    "maint_on",
    "maint_on_temporary",
    "degraded",
    "degrade_immediate",
    "refresh",
    "restart",
)


def instance_fmris(doc: Doc) -> list[Fmri]:
    return [
        Fmri(sname, iname)
        for sname, svc in sorted(doc["services"].items())
        for iname in sorted(svc["instances"])
    ]


@attrs.frozen
class Stop:
    """A stop the graph asks of a running instance (STOP / STOP_RESET events)."""

    cause: StopCause
    reset: bool


class Restarter:
    def __init__(self, state_dir: Path, log: logging.Logger | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.repo = Repository(self.state_dir)
        self.store = ContractStore(self.state_dir)
        self.log = log or logging.getLogger("startd")
        self.lock = threading.RLock()
        self.instances: dict[Fmri, Instance] = {}
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.doc: Doc = {"services": {}}
        self._doc_key: repository.FileKey | None = None
        self._holders: list[subprocess.Popen[bytes]] = []
        self._threads: set[threading.Thread] = set()
        self._paths: dict[str, bool] = {}
        self._views: dict[Fmri, Pgs] = {}
        self._held_starts: list[threading.Thread] | None = None  # spawned in a pass
        self.host = Host(
            state_dir=self.state_dir,
            repo=self.repo,
            store=self.store,
            base_env=dict(os.environ),
            adopt_holder=self._adopt_holder,
            stopping=self.stopping,
        )

    # --- plumbing ----------------------------------------------------------------------------

    def nudged(self) -> None:
        """A svc* command or a holder sent a nudge: the next pass runs now, and
        method threads waiting on their contracts look again."""
        self.wake.set()
        self.host.bell.ring()

    def _adopt_holder(self, proc: subprocess.Popen[bytes]) -> None:
        with self.lock:
            self._holders.append(proc)

    def _reap_holders(self) -> None:
        with self.lock:
            self._holders = [p for p in self._holders if p.poll() is None]

    def read_doc(self) -> Doc:
        try:
            st = os.stat(self.repo.path)
            key = repository.file_key(st)
        except FileNotFoundError:
            key = None
        if key is None or key != self._doc_key:
            self.doc = self.repo.read_shared(key)
            self._doc_key = key
            self._views.clear()
        return self.doc

    def view(self, fmri: Fmri) -> Pgs:
        v = self._views.get(fmri)
        if v is None:
            v = startd_view(self.doc, fmri) if repository.entity(self.doc, fmri) else {}
            self._views[fmri] = v
        return v

    def enabled(self, fmri: Fmri) -> bool:
        return repository.enabled(self.doc, fmri)

    def _poke_paths(self) -> None:
        # File dependencies are looked at again on graph events only: svc.startd
        # assumes files do not appear by themselves.
        self._paths.clear()

    # --- the graph's view of things ----------------------------------------------------------

    def state(self, fmri: Fmri) -> str | None:
        inst = self.instances.get(fmri)
        if inst is None:
            return None
        if inst.disabling:
            return "disabled"  # GV_TODISABLE: unsatisfiable from now on
        return inst.state

    def dependencies(self, fmri: Fmri) -> list[config.Dependency]:
        return config.dependencies(self.view(fmri)) if fmri in self.instances else []

    def service_instances(self, service: str) -> list[Fmri] | None:
        svc = self.doc["services"].get(service)
        if svc is None:
            return None
        return [Fmri(service, name) for name in sorted(svc["instances"])]

    def path_ready(self, path: str) -> bool:
        ready = self._paths.get(path)
        if ready is None:
            ready = self._paths[path] = os.path.exists(path)
        return ready

    # --- states -------------------------------------------------------------------------------

    def set_states(
        self, inst: Instance, state: str, next_state: str, err: int, aux: str | None
    ) -> None:
        """restarter_instance_update_states, and the graph's reaction to it."""
        with self.lock:
            was_running = inst.running
            commit_states(self.repo, inst, state, next_state, aux)
            self._poke_paths()
            if next_state == "none":
                if was_running and not inst.running:
                    self._propagate_stop(inst.fmri, err)
                elif inst.running and not was_running:
                    self._propagate_exclusion(inst.fmri)
            self.wake.set()

    def _propagate_stop(self, fmri: Fmri, err: int) -> None:
        """propagate_stop: running dependents whose restart_on covers err stop."""
        if err == 0:
            return
        for dep, group in graph.dependents(self, fmri, list(self.instances)):
            if group.grouping == "exclude_all" or err > group.restart_on:
                continue
            d = self.instances[dep]
            if d.running:
                d.pending.append(Stop(instance.DEPENDENCY, reset=err in (RESTART, REFRESH)))

    def _propagate_exclusion(self, fmri: Fmri) -> None:
        """An instance came up: what excludes it must go down."""
        for dep, group in graph.dependents(self, fmri, list(self.instances)):
            d = self.instances[dep]
            if group.grouping == "exclude_all" and d.running:
                d.pending.append(Stop(instance.DEPENDENCY, reset=True))

    def _subtree(self, fmri: Fmri) -> set[Fmri]:
        """Every instance that depends on fmri, directly or not."""
        seen: set[Fmri] = set()
        todo = [fmri]
        while todo:
            for dep, group in graph.dependents(self, todo.pop(), list(self.instances)):
                if group.grouping != "exclude_all" and dep not in seen and dep != fmri:
                    seen.add(dep)
                    todo.append(dep)
        return seen

    # --- method threads ------------------------------------------------------------------------

    def _spawn(self, inst: Instance, target: Any, *args: Any) -> None:
        inst.busy = True
        if self._held_starts is not None:
            # In a pass: the log file's name goes into the pass's one edit.
            write_restarter(self.repo, inst.fmri, {"logfile": ("astring", [str(inst.log)])})

        def body() -> None:
            try:
                target(inst, *args)
            except Exception:
                self.log.exception("%s: method thread failed", inst.fmri)
                with self.lock:
                    if inst.in_transition:
                        self.set_states(inst, inst.state, "none", 0, None)
            finally:
                with self.lock:
                    inst.busy = False
                    self._threads.discard(threading.current_thread())
                self.wake.set()

        t = threading.Thread(target=body, name=f"method {inst.fmri}", daemon=True)
        with self.lock:
            self._threads.add(t)
            if self._held_starts is not None:
                self._held_starts.append(t)
                return
        t.start()

    @contextlib.contextmanager
    def _pass(self) -> Iterator[None]:
        """One pass over many instances, under the lock: the states it commits
        are written in one repository edit at its end, and only then do the
        method threads it spawned start, all at once (svc.startd runs each
        instance's methods in a thread of its own, so independent instances
        start together; a re-read and rewrite of the whole repository for
        each instance would stagger them)."""
        with self.lock:
            held: list[threading.Thread] = []
            self._held_starts = held
            try:
                with instance.batched(self.repo):
                    yield
            finally:
                self._held_starts = None
                for t in held:
                    t.start()

    def method_thread(
        self, inst: Instance, mtype: str, err: int, reason: str | None, resume: Any = None
    ) -> None:
        """Run a method to move inst to its next_state, retrying or giving up to
        maintenance as method.c's method_thread does."""
        while True:
            runner = Runner(self.host, inst, mtype)
            if resume is not None:
                r, resume = runner.resume_start(resume), None
            else:
                r = runner.run()
            code = runner.exit_code
            if r is Outcome.OK and code in (0, SMF_EXIT_NODAEMON):
                # The start snapshot and the new states go in one edit.
                snap = self._snapshot_change(inst.fmri, "start", from_running=True)
                with self.lock, instance.batched(self.repo, snap if mtype == "start" else None):
                    if mtype == "stop" and inst.primary_ctid:
                        if inst.next_state == "offline":
                            # Kept for the next start, which replaces it.
                            inst.primary_stopped = True
                        else:
                            remove_contract(self.host, inst, primary=True)
                    running_before = inst.running
                    self.set_states(inst, inst.next_state, "none", err, reason)
                    inst.fault_count = 0
                    if mtype == "refresh" and running_before:
                        self._propagate_stop(inst.fmri, REFRESH)
                return
            retryable = r in (Outcome.OK, Outcome.EAGAIN) and code not in NOT_RETRYABLE
            if retryable and not self.stopping.is_set():
                inst.fault_count += 1
                if inst.fault_count < FAULT_THRESHOLD:
                    continue
            if r is Outcome.ELOOP:
                aux = "restarting_too_quickly"
            elif retryable:
                aux = "fault_threshold_reached"
            else:
                aux = "method_failed"
            with self.lock, instance.batched(self.repo):
                self.set_states(inst, "maintenance", "none", FAULT, aux)
                if mtype == "start" and inst.primary_ctid:
                    remove_contract(self.host, inst, primary=True)
            return

    def _snapshot(self, fmri: Fmri, name: str, from_running: bool = False) -> None:
        self.repo.update(self._snapshot_change(fmri, name, from_running))

    @staticmethod
    def _snapshot_change(fmri: Fmri, name: str, from_running: bool) -> instance.Change:
        def change(doc: Doc) -> bool:
            inst = repository.entity(doc, fmri)
            if inst is None:
                return False
            running = inst["snapshots"].get("running")
            if from_running and running is not None:
                inst["snapshots"][name] = running
            else:
                repository.take_snapshot(doc, fmri, name)
            return True

        return change

    # --- what the restarter does to an instance (restarter.c) ---------------------------------

    def start_instance(self, inst: Instance, reason: str) -> None:
        if inst.state in ("maintenance", "disabled") or not self.enabled(inst.fmri):
            return
        if inst.running:
            return
        self.set_states(inst, inst.state, "online", 0, reason)
        self._spawn(inst, self.method_thread, "start", 0, reason)

    def stop_instance(self, inst: Instance, cause: StopCause) -> None:
        if inst.state in ("maintenance", "disabled") or not inst.running:
            return
        inst.say(f"Stopping because {cause.text}.")
        style = config.startd_props(self.view(inst.fmri)).style
        if style is Style.WAIT and cause in (instance.EXIT, instance.ERR_CFG, instance.ERR_EXIT):
            # The child has exited already: nothing to stop.
            self.set_states(inst, inst.state, "offline", cause.err, cause.reason)
            if cause is instance.ERR_EXIT:
                inst.fault_count += 1
                if rate_critical(inst, config.startd_props(self.view(inst.fmri))):
                    inst.say("Failing too quickly, throttling.")
                    inst.hold_until = time.monotonic() + WT_SVC_ERR_THROTTLE
            else:
                inst.fault_count = 0
                inst.reset_start_times()
            remove_contract(self.host, inst, primary=True)
            self.set_states(inst, inst.next_state, "none", cause.err, cause.reason)
            if cause is not instance.ERR_CFG:
                return
        if cause is instance.ERR_CFG:
            new_state = "maintenance"
        else:
            new_state = "offline" if self.enabled(inst.fmri) else "disabled"
        self.set_states(inst, inst.state, new_state, 0, cause.reason)
        self._spawn(inst, self.method_thread, "stop", cause.err, cause.reason)

    def maintain_instance(self, inst: Instance, immediate: bool, reason: str) -> None:
        inst.say(f"Stopping for maintenance due to {reason}.")
        if inst.state == "maintenance":
            return
        if reason == "service_request":
            self._copy_aux_fmri(inst)
        if immediate or not inst.running:
            if inst.primary_ctid:
                remove_contract(self.host, inst, primary=True)
            self.set_states(inst, "maintenance", "none", RESTART, reason)
            return
        self.set_states(inst, inst.state, "maintenance", 0, reason)
        self._spawn(inst, self.method_thread, "stop", RESTART, reason)

    def _copy_aux_fmri(self, inst: Instance) -> None:
        fmri = config.single(self.view(inst.fmri), "restarter_actions", "auxiliary_fmri")
        try:
            valid = fmri is not None and parse(fmri) is not None
        except FmriError:
            valid = False
        if valid and fmri is not None:
            write_restarter(self.repo, inst.fmri, {"auxiliary_fmri": ("astring", [fmri])})
        else:
            write_restarter(self.repo, inst.fmri, {}, delete=("auxiliary_fmri",))

    def unmaintain_instance(self, inst: Instance, clear: bool) -> None:
        if inst.state != "maintenance":
            return
        inst.say(f"Leaving maintenance because {'clear' if clear else 'disable'} requested.")
        reason = "clear_request" if clear else "disable_request"
        self.set_states(inst, "uninitialized", "none", RESTART, reason)
        inst.cleared = clear
        if inst.primary_ctid:
            # mark -I leaves the contract behind; it goes now.
            remove_contract(self.host, inst, primary=True)

    def refresh_instance(self, inst: Instance) -> None:
        inst.say("Rereading configuration.")
        # svcadm refresh only posts the request: the running snapshot is taken here.
        self._snapshot(inst.fmri, "running")
        self.read_doc()
        self._poke_paths()
        if inst.running:
            self.set_states(inst, inst.state, inst.state, 0, None)
            self._spawn(inst, self.method_thread, "refresh", REFRESH, None)

    def restart_instance(self, inst: Instance) -> None:
        if not inst.running:
            return  # "Not restarting ...; not running."
        if self._take_action(inst.fmri, "do_dump"):
            # restart -d: the SIGABRT makes the contract report a core dump.
            if inst.primary_ctid:
                self.store.get(inst.primary_ctid).kill(6)
            return
        inst.start_reason = "restart_request"
        self.stop_instance(inst, instance.RESTART_REQUEST)
        inst.reset_start_times()

    def enable_instance(self, inst: Instance, enable: bool, admin: bool) -> None:
        """enable_inst."""
        state = inst.state
        if enable:
            if state in ("uninitialized", "disabled"):
                inst.say("Enabled.")
                if inst.cleared:
                    reason = "clear_request"
                elif state == "disabled":
                    reason = "enable_request"
                else:
                    reason = "per_configuration"
                self.set_states(inst, "offline", "none", 0, reason)
            return
        if state in RUNNING:
            self.stop_instance(inst, instance.DISABLE)
        elif state in ("offline", "uninitialized"):
            if inst.primary_ctid:
                remove_contract(self.host, inst, primary=True)
            inst.say("Disabled.")
            reason = "disable_request" if state == "offline" or admin else "per_configuration"
            self.set_states(inst, "disabled", "none", RESTART, reason)
        elif state == "maintenance" and admin:
            self.unmaintain_instance(inst, clear=False)
        if admin:
            inst.reset_start_times()

    # --- restarter_actions ------------------------------------------------------------------------

    def _pending_actions(self, fmri: Fmri) -> list[tuple[int, str]]:
        inst = repository.entity(self.doc, fmri)
        group = None if inst is None else inst["pgs"].get("restarter_actions")
        if group is None:
            return []
        out = []
        for name in ACTIONS:
            prop = group["props"].get(name)
            if prop is None:
                continue
            try:
                ts = int(prop["values"][0]) if prop["values"] else 0
            except ValueError:
                ts = 0
            out.append((ts, name))
        return sorted(out)

    def _take_action(self, fmri: Fmri, name: str, seen: int | None = None) -> bool:
        """Delete restarter_actions/name unless a newer request than the one seen
        came in meanwhile (libscf_unset_action); whether it was there."""
        with self.repo.edit() as doc:
            inst = repository.entity(doc, fmri)
            group = None if inst is None else inst["pgs"].get("restarter_actions")
            if group is None or name not in group["props"]:
                return False
            values = group["props"][name]["values"]
            newer = (
                seen is not None
                and bool(values)
                and values[0].lstrip("-").isdigit()
                and int(values[0]) > seen
            )
            if newer:
                return True  # act now; the newer request stays for later
            del group["props"][name]
        self.read_doc()
        return True

    def _from_tty(self, fmri: Fmri) -> bool:
        """restarter_inst_ractions_from_tty: svcadm said whether it ran on a terminal."""
        value = config.single(self.view(fmri), "restarter_actions", "auxiliary_tty", "boolean")
        return value != "false"

    def _admin(self, inst: Instance, action: str) -> None:
        if action == "maint_off":
            self.unmaintain_instance(inst, clear=True)
            inst.reset_start_times()
        elif action in ("maint_on", "maint_on_temporary", "maint_on_immediate", "maint_on_immtemp"):
            reason = "administrative_request" if self._from_tty(inst.fmri) else "service_request"
            self.maintain_instance(inst, "imm" in action, reason)
        elif action == "refresh":
            self.refresh_instance(inst)
        elif action == "restart":
            self.restart_instance(inst)
        elif action in ("degraded", "degrade_immediate"):
            if inst.state == "online":
                self.set_states(inst, "degraded", "none", 0, "administrative_request")
        elif action == "restore" and inst.state == "degraded":
            self.set_states(inst, "online", "none", 0, "administrative_request")

    # --- loading instances (restarter_insert_inst, graph insertion) ------------------------------

    def _managed(self, fmri: Fmri) -> bool:
        """Instances that name another restarter in general/restarter are not ours."""
        svc = repository.service(self.doc, fmri)
        inst = repository.entity(self.doc, fmri)
        assert svc is not None and inst is not None
        for pgs in (inst["pgs"], svc["pgs"]):
            other = config.single(pgs, "general", "restarter")
            if other is not None:
                return other in ("", STARTD_FMRI)
        return True

    def _insert(self, fmri: Fmri) -> Instance:
        inst = Instance(fmri=fmri, log=instance.log_path(self.state_dir, fmri))
        node = repository.entity(self.doc, fmri)
        assert node is not None
        if "running" not in node["snapshots"]:
            self._snapshot(fmri, "running")
            self.read_doc()
        node = repository.entity(self.doc, fmri)
        assert node is not None
        pgs = node["pgs"]
        state = repository.get_values(pgs, "restarter", "state")
        next_state = repository.get_values(pgs, "restarter", "next_state")
        aux = repository.get_values(pgs, "restarter", "auxiliary_state")
        ctid = repository.get_values(pgs, "restarter", "contract")
        tctid = repository.get_values(pgs, "restarter", "transient_contract")
        self.instances[fmri] = inst
        if not state or state[0] not in instance.STATES:
            commit_states(self.repo, inst, "uninitialized", "none", "none")
            return inst
        inst.state = state[0]
        inst.next_state = next_state[0] if next_state else "none"
        inst.aux = aux[0] if aux else "none"
        for value, primary in ((ctid, True), (tctid, False)):
            if not value or not value[0].isdigit():
                continue
            n = int(value[0])
            if self.store.get(n).exists:
                if primary:
                    inst.primary_ctid = n
                    inst.primary_stopped = not inst.running
                else:
                    inst.transient_ctid = n
            else:
                name = "contract" if primary else "transient_contract"
                write_restarter(self.repo, fmri, {}, delete=(name,))
        if inst.next_state == "online":
            inflight = self._inflight_start(inst)
            if inflight is not None:
                self.log.info("%s: resuming its start method in contract %s", fmri, inflight)
                self._spawn(
                    inst, self.method_thread, "start", 0, inst.aux, self.store.get(inflight)
                )
                return inst
        if inst.in_transition:
            # Its method died with the old restarter, or runs on unwatched: the
            # instance stays where it was, as a restarted svc.startd leaves it.
            if inst.transient_ctid:
                remove_contract(self.host, inst, primary=False)
            commit_states(self.repo, inst, inst.state, "none", None)
        return inst

    def _inflight_start(self, inst: Instance) -> int | None:
        for ctid in (inst.primary_ctid, inst.transient_ctid):
            if ctid and self.store.get(ctid).method == "start":
                return ctid
        return None

    def _sync(self) -> None:
        present = {f for f in instance_fmris(self.doc) if self._managed(f)}
        for fmri in sorted(present - set(self.instances)):
            self.log.info("%s: loaded", fmri)
            self._insert(fmri)
        for fmri in sorted(set(self.instances) - present):
            inst = self.instances[fmri]
            if inst.busy:
                inst.deleted = True
                continue
            self.log.info("%s: deleted; its contract is killed", fmri)
            for ctid in (inst.primary_ctid, inst.transient_ctid):
                if ctid:
                    self.store.get(ctid).kill(9)
                    self.store.get(ctid).abandon()
            del self.instances[fmri]

    # --- one pass ------------------------------------------------------------------------------

    def tick(self) -> None:
        with self._pass():
            self.read_doc()
            self._sync()
            for inst in list(self.instances.values()):
                if inst.busy or inst.deleted:
                    continue
                try:
                    self._step(inst)
                except Exception:
                    self.log.exception("%s: step failed", inst.fmri)
        self._reap_holders()
        self.store.sweep()

    def _step(self, inst: Instance) -> None:
        while inst.pending and not inst.busy:
            stop = inst.pending.popleft()
            if inst.running:
                if stop.reset:
                    inst.reset_start_times()
                self.stop_instance(inst, stop.cause)
        if inst.busy:
            return
        if inst.running:
            self._watch_contract(inst)
            if inst.busy:
                return
        for ts, action in self._pending_actions(inst.fmri):
            if self._take_action(inst.fmri, action, ts):
                self._admin(inst, action)
            if inst.busy:
                return
        self._enable_step(inst)
        if inst.busy:
            return
        if inst.state == "offline" and not inst.disabling and self.enabled(inst.fmri):
            if time.monotonic() < inst.hold_until:
                return
            # Waiting for dependencies writes nothing: restarter/auxiliary_state keeps
            # the reason of the move to offline (restarter.c has no "unsatisfied"
            # reason; svcs -x works the cause out from the dependencies' states).
            if graph.Evaluator(self).instance(inst.fmri) == graph.SATISFIED:
                cleared = "clear_request" if inst.cleared else "dependencies_satisfied"
                reason = inst.start_reason or cleared
                inst.start_reason = None
                inst.cleared = False
                self.start_instance(inst, reason)

    def _enable_step(self, inst: Instance) -> None:
        enabled = self.enabled(inst.fmri)
        admin = inst.enabled_seen is not None and enabled != inst.enabled_seen
        inst.enabled_seen = enabled
        if inst.disabling:
            # Until it is down, it counts as disabled for its dependents (GV_TODISABLE).
            if enabled or not inst.running:
                inst.disabling = False
            elif any(
                self.instances[d].running or self.instances[d].busy
                for d in self._subtree(inst.fmri)
            ):
                return  # its dependents go down first
            else:
                self.enable_instance(inst, False, admin=True)
                return
        if enabled:
            if inst.state in ("uninitialized", "disabled"):
                self._poke_paths()
                self.enable_instance(inst, True, admin)
            return
        if inst.state == "disabled" or (inst.state == "maintenance" and not admin):
            return
        if admin and inst.running:
            # An administrator's disable takes the dependents down first.
            dependents = [d for d in self._subtree(inst.fmri) if self.instances[d].running]
            if dependents:
                inst.disabling = True
                for d in dependents:
                    self.instances[d].pending.append(Stop(instance.DEPENDENCY, reset=True))
                self.wake.set()
                return
        self.enable_instance(inst, False, admin)

    def _watch_contract(self, inst: Instance) -> None:
        """contract_action and the wait thread: what happened in the contract of
        a running instance."""
        if inst.in_transition or inst.primary_ctid == 0 or inst.primary_stopped:
            return
        view = self.view(inst.fmri)
        style = config.startd_props(view).style
        if style is Style.TRANSIENT:
            return
        contract = self.store.get(inst.primary_ctid)
        if style is Style.WAIT:
            status = contract.method_status()
            if status is None and not contract.is_empty():
                return
            code = os.WEXITSTATUS(status) if status is not None else 0
            if code == 0:
                self.stop_instance(inst, instance.EXIT)
            elif code == 96:
                self.stop_instance(inst, instance.ERR_CFG)
            else:
                self.stop_instance(inst, instance.ERR_EXIT)
            return
        try:
            critical = config.method_props(view, "start").critical_events
        except (config.NoMethodGroup, config.NoExecProperty):
            critical = config.EV_CORE | config.EV_EMPTY | config.EV_SIGNAL | config.EV_HWERR
        for path, kind, pid, sig in contract.events():
            path.unlink(missing_ok=True)
            event = config.EV_CORE if kind == "core" else config.EV_SIGNAL
            if event & critical:
                self.stop_instance(inst, instance.CORE if kind == "core" else instance.SIGNAL)
                return
            # Only in the daemon's own log: svc.startd says nothing of it.
            self.log.info(
                "%s: %s event of pid %d (signal %d) in contract %d is not critical",
                inst.fmri, kind, pid, sig, inst.primary_ctid,
            )  # fmt: skip
        if contract.is_empty() and critical & config.EV_EMPTY:
            self.stop_instance(inst, instance.EXIT)

    # --- shutdown ---------------------------------------------------------------------------------

    def busy(self) -> bool:
        with self.lock:
            return any(i.busy for i in self.instances.values())

    def shutdown_step(self) -> bool:
        """One round of stopping for shutdown, leaves first; True when all are down."""
        with self._pass():
            self.read_doc()
            self._sync()
            up = [i for i in self.instances.values() if i.running or i.busy]
            if not up:
                return True
            needed: set[Fmri] = set()  # what an instance still up depends on
            for inst in up:
                for dep in self.dependencies(inst.fmri):
                    for entity in dep.entities:
                        target = graph.service_entity(entity)
                        if target is not None:
                            needed.add(target)
                            needed.add(target.service_fmri)
            for inst in up:
                if inst.busy or inst.fmri in needed or inst.fmri.service_fmri in needed:
                    continue
                inst.say("Stopping because service disabled.")
                self.set_states(inst, inst.state, "disabled", 0, "disable_request")
                self._spawn(inst, self.method_thread, "stop", RESTART, "disable_request")
        return False

    def threads(self) -> list[threading.Thread]:
        with self.lock:
            return list(self._threads)
