"""Running one method of one instance, as svc.startd's method_run does
(startd/method.c): find the method, expand it, handle `:true` and `:kill`, put
the method in a contract, wait for it with its timeout, and for a stop method
wait for the service's contract to empty.
"""

from __future__ import annotations

import enum
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from devhost.smf import notify, repository
from devhost.smf.contracts import Contract, ContractStore
from devhost.smf.fmri import Fmri, FmriError, parse
from devhost.smf.repository import Doc, Pgs, Repository
from devhost.smf.startd import config, methods
from devhost.smf.startd.config import Style
from devhost.smf.startd.instance import Instance, timestamp, write_restarter

SMF_EXIT_NODAEMON = 94
RINST_START_TIMES = 5
RINST_FAILURE_RATE = 600.0  # seconds: one failure per 10 minutes
RINST_WT_SVC_FAILURE_RATE = 1.0  # the same for child-model (wait) services


class Outcome(enum.Enum):
    OK = "ok"
    EINVAL = "a correct method or method context could not be read"
    EIO = "the contract could not be killed"
    EFAULT = "the method could not be run successfully"
    ELOOP = "restarting too quickly"
    ERANGE = "timed out, and timeout_retry is false"
    EAGAIN = "failed for an external cause: retry"
    ENOENT = "the method does not exist"


def signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name.removeprefix("SIG")
    except ValueError:
        return str(sig)


def compose(instance_pgs: Pgs, service_pgs: Pgs) -> Pgs:
    """The instance's groups laid over the service's, property by property,
    sharing the input (views are only read): scf_instance_get_pg_composed."""
    out: Pgs = dict(service_pgs)
    for name, pg in instance_pgs.items():
        below = service_pgs.get(name)
        if below is not None and below["type"] == pg["type"]:
            out[name] = {**pg, "props": {**below["props"], **pg["props"]}}
        else:
            out[name] = pg
    return out


def startd_view(doc: Doc, fmri: Fmri) -> Pgs:
    """What startd reads: the composed running snapshot (it takes one for every
    instance it loads; without one, the composed editing properties), with the
    instance's non-persistent groups. Read-only: it shares the document."""
    svc = repository.service(doc, fmri)
    inst = repository.entity(doc, fmri)
    assert svc is not None and inst is not None
    snap = inst["snapshots"].get("running")
    if snap is None:
        return compose(inst["pgs"], svc["pgs"])
    view = compose(snap["instance"], snap["service"])
    for name, pg in inst["pgs"].items():
        if pg.get("nonpersistent"):
            view[name] = pg
    return view


def property_lookup(doc: Doc, fmri: Fmri, view: Pgs) -> methods.PropertyLookup:
    """%{...} lookups (expand.c get_prop_val_str): a property FMRI, pg/prop, or
    a bare name in the application group; the running snapshot first, then the
    editing properties."""

    def in_views(views: list[Pgs], pg: str, prop: str) -> list[str] | None:
        for v in views:
            found = config.values(v, pg, prop)
            if found is not None:
                return found
        return None

    def editing(f: Fmri) -> Pgs:
        svc, inst = repository.service(doc, f), repository.entity(doc, f)
        assert svc is not None and inst is not None
        return compose(inst["pgs"], svc["pgs"])

    def lookup(spec: str) -> list[str] | None:
        if ":properties" in spec:
            head, _, tail = spec.partition("/:properties/")
            pg, _, prop = tail.partition("/")
            try:
                target = parse(head)
            except FmriError:
                return None
            if not pg or not prop:
                return None
            if target.instance is None:
                svc = repository.service(doc, target)
                return None if svc is None else config.values(svc["pgs"], pg, prop)
            if repository.entity(doc, target) is None:
                return None
            return in_views([startd_view(doc, target), editing(target)], pg, prop)
        pg, slash, prop = spec.partition("/")
        if not slash:
            pg, prop = "application", spec
        return in_views([view, editing(fmri)], pg, prop)

    return lookup


class Bell:
    """Rung on every nudge (a holder writes one each time a contract file
    changes), so method threads sleep until something happened instead of
    polling contract files: in a boot storm's profile of the restarter, its
    sixteen threads polling were the largest part. The polling stays, slowly,
    for a nudge that never comes."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._rung = 0

    def ring(self) -> None:
        with self._cond:
            self._rung += 1
            self._cond.notify_all()

    def mark(self) -> int:
        """Take before looking, then wait(mark): a ring in between is not lost."""
        return self._rung

    def wait(self, mark: int, timeout: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._rung != mark, timeout)


@attrs.define
class Host:
    """What running a method needs from the restarter."""

    state_dir: Path
    repo: Repository
    store: ContractStore
    base_env: dict[str, str]
    adopt_holder: Callable[[subprocess.Popen[bytes]], None]  # reap it later
    stopping: threading.Event
    bell: Bell = attrs.field(factory=Bell)


def record_start(inst: Instance) -> None:
    inst.start_times.append(time.monotonic())
    del inst.start_times[:-64]


def rate_critical(inst: Instance, sp: config.StartdProps) -> bool:
    """method_rate_critical: the average gap over the last N starts is below the
    period (N = 5, the period 600 s, or 1 s for the child model, unless
    startd/critical_failure_count and _period say otherwise)."""
    count = RINST_START_TIMES
    period = RINST_WT_SVC_FAILURE_RATE if sp.style is Style.WAIT else RINST_FAILURE_RATE
    if sp.critical_count is not None and sp.critical_period is not None:
        count, period = sp.critical_count, sp.critical_period
    if count < 2 or len(inst.start_times) < count:
        return False
    window = inst.start_times[-count:]
    return (window[-1] - window[0]) / (count - 1) < period


class Runner:
    def __init__(self, host: Host, inst: Instance, mtype: str) -> None:
        self.host = host
        self.inst = inst
        self.mtype = mtype
        self.exit_code = 0

    def say(self, text: str) -> None:
        self.inst.say(text)

    # -- contract bookkeeping (method_store_contract, method_remove_contract) -------------

    def _store_contract(self, ctid: int, primary: bool) -> None:
        inst = self.inst
        if primary:
            if inst.primary_ctid:
                # The stopped contract kept for the restart goes now.
                self.host.store.get(inst.primary_ctid).abandon()
            inst.primary_ctid, inst.primary_stopped = ctid, False
            write_restarter(self.host.repo, inst.fmri, {"contract": ("count", [str(ctid)])})
        else:
            inst.transient_ctid = ctid
            write_restarter(
                self.host.repo, inst.fmri, {"transient_contract": ("count", [str(ctid)])}
            )

    def remove_contract(self, primary: bool) -> None:
        remove_contract(self.host, self.inst, primary)

    def _write_status(self, status: int) -> None:
        write_restarter(
            self.host.repo,
            self.inst.fmri,
            {
                f"{self.mtype}_method_timestamp": ("time", [timestamp()]),
                f"{self.mtype}_method_waitstatus": ("integer", [str(status)]),
            },
        )

    # -- the method --------------------------------------------------------------------------

    def run(self) -> Outcome:
        inst, mtype, host = self.inst, self.mtype, self.host
        doc = host.repo.read_shared()
        if repository.entity(doc, inst.fmri) is None:
            return Outcome.EFAULT
        view = startd_view(doc, inst.fmri)
        if config.single(view, "restarter", "logfile") != str(inst.log):
            # Usually the pass that spawned the method has named it already.
            write_restarter(host.repo, inst.fmri, {"logfile": ("astring", [str(inst.log)])})
        try:
            m = config.method_props(view, mtype)
        except config.NoMethodGroup:
            if mtype == "refresh":
                self.say(f"No '{mtype}' method defined.  Treating as :true.")
            else:
                self.say(f"Method property group '{mtype}' is not present.")
            return Outcome.OK
        except config.NoExecProperty:
            self.say(f"Method property '{mtype}/exec is not present.")
            return Outcome.OK
        if m.timeout_note:
            self.say(m.timeout_note)
        try:
            method = methods.expand_tokens(
                m.exec, inst.fmri, mtype, property_lookup(doc, inst.fmri, view)
            )
        except methods.TokenError as e:
            self.say(f'Could not expand method tokens in "{m.exec}": {e}.')
            return Outcome.EINVAL
        sp = config.startd_props(view)
        contract_style = sp.style is not Style.TRANSIENT

        if mtype == "stop" and contract_style:
            if inst.primary_ctid == 0:
                return Outcome.OK  # not running: nothing to stop
            if not host.store.get(inst.primary_ctid).exists:
                self.say(
                    f"Could not open service contract {inst.primary_ctid}.  Stop method not run."
                )
                return Outcome.EFAULT

        if methods.is_null_method(method):
            self.say(f"Executing {mtype} method (null).")
            if mtype == "start":
                self._write_status(0)
            return Outcome.OK

        timeout = m.timeout
        sig = methods.kill_signal(method)
        if sig is not None:
            if inst.primary_ctid == 0:
                self.say('Invalid use of ":kill" as stop method for transient service.')
                return Outcome.EINVAL
            self.say(f"Executing {mtype} method (:kill).")
            host.store.get(inst.primary_ctid).kill(sig)
            return self._assured_kill(Outcome.OK, sp, timeout)

        try:
            ctx = methods.method_context(view, inst.fmri, mtype, host.state_dir, host.base_env)
        except methods.ContextError as e:
            self.say(str(e))
            return Outcome.EINVAL

        if sp.style is Style.WAIT and mtype == "start":
            program = method.split(" ", 1)[0]
            if program.startswith("/") and not os.path.exists(program):
                self.say(f"Missing start method ({program}), changing state to maintenance.")
                return Outcome.ENOENT

        if mtype == "start":
            record_start(inst)
            if sp.style is not Style.WAIT and rate_critical(inst, sp):
                self.say("Restarting too quickly, changing state to maintenance.")
                return Outcome.ELOOP

        primary = mtype == "start" and contract_style
        spec: dict[str, Any] = {
            "exec": method,
            "banner": f'Executing {mtype} method ("{method}").',
            "log": str(inst.log),
            "env": ctx.env,
            "cwd": ctx.cwd,
            "credentials": ctx.credentials,
            "need_session": sp.need_session,
            "notes": ctx.notes,
            "nudge": str(notify.socket_path(host.state_dir)),
        }
        inst.log.parent.mkdir(parents=True, exist_ok=True)
        contract, proc = host.store.create(str(inst.fmri), mtype, spec)
        host.adopt_holder(proc)
        self._store_contract(contract.ctid, primary)

        pid = self._wait_method_pid(contract, proc)
        if pid is None:
            return self._contract_out(Outcome.EFAULT, primary)
        if mtype == "start":
            write_restarter(host.repo, inst.fmri, {"start_pid": ("count", [str(pid)])})

        if sp.style is Style.WAIT and mtype == "start":
            # The child is the service: no timeout, online at once; the
            # restarter watches for it to exit.
            self._write_status(0)
            return Outcome.OK

        return self._finish(contract, primary, sp, timeout)

    def resume_start(self, contract: Contract) -> Outcome:
        """Pick up a start method a previous restarter left running."""
        doc = self.host.repo.read_shared()
        if repository.entity(doc, self.inst.fmri) is None:
            return Outcome.EFAULT
        view = startd_view(doc, self.inst.fmri)
        try:
            m = config.method_props(view, "start")
        except (config.NoMethodGroup, config.NoExecProperty):
            return Outcome.OK
        sp = config.startd_props(view)
        if sp.style is Style.WAIT:
            return Outcome.OK
        timeout = m.timeout
        if timeout is not None:
            created = float(contract.info().get("created", time.time()))
            timeout = max(timeout - (time.time() - created), 0.0)
        return self._finish(contract, sp.style is not Style.TRANSIENT, sp, timeout)

    def _finish(
        self, contract: Contract, primary: bool, sp: config.StartdProps, timeout: float | None
    ) -> Outcome:
        """Wait for the method, then judge it."""
        mtype = self.mtype
        started = time.monotonic()
        status, fired = self._wait_method(contract, timeout)
        if mtype == "start":
            self._write_status(status)
        if fired and not sp.timeout_retry:
            return self._contract_out(Outcome.ERANGE, primary)
        if not os.WIFEXITED(status):
            if os.WIFSIGNALED(status):
                self.say(f'Method "{mtype}" failed due to signal {signame(os.WTERMSIG(status))}.')
            else:
                self.say(f'Method "{mtype}" failed with exit status {os.WEXITSTATUS(status)}.')
            return self._contract_out(Outcome.EAGAIN, primary)
        self.exit_code = os.WEXITSTATUS(status)
        self.say(f'Method "{mtype}" exited with status {self.exit_code}.')
        if self.exit_code != 0:
            # Failures, and SMF_EXIT_NODAEMON, leave no contract behind.
            return self._contract_out(Outcome.OK, primary)
        if timeout is not None:
            timeout -= time.monotonic() - started
        result = self._assured_kill(Outcome.OK, sp, timeout)
        return self._contract_out(result, primary)

    def _contract_out(self, result: Outcome, primary: bool) -> Outcome:
        """Abandon the method's contract unless it is now the service's."""
        if not primary or self.exit_code != 0 or result is not Outcome.OK:
            self.remove_contract(primary)
        return result

    def _wait_method_pid(self, contract: Contract, proc: subprocess.Popen[bytes]) -> int | None:
        bell = self.host.bell
        delay = 0.005
        while True:
            mark = bell.mark()
            pid = contract.method_pid()
            if pid is not None:
                return pid
            if proc.poll() is not None:
                self.say("Could not start the method's contract holder.")
                return None
            bell.wait(mark, delay)
            delay = min(delay * 2, 0.1)

    def _wait_method(self, contract: Contract, timeout: float | None) -> tuple[int, bool]:
        """The method's wait status, killing its contract when the timeout fires
        (restarter.c timeout_now, which fires every second until the method goes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        fired = False
        next_kill = 0.0
        delay = 0.005
        bell = self.host.bell
        while True:
            mark = bell.mark()
            status = contract.method_status()
            if status is not None:
                return status, fired
            now = time.monotonic()
            if deadline is not None and now >= deadline and now >= next_kill:
                fired = True
                self.say(f"Method or service exit timed out.  Killing contract {contract.ctid}.")
                contract.kill(signal.SIGKILL)
                next_kill = now + 1.0
            if contract.is_empty() and contract.method_status() is None:
                # The holder is gone without a word: the method is lost.
                return int(signal.SIGKILL), fired  # as if killed: the holder was
            if deadline is not None and now < deadline:
                delay = min(delay, max(deadline - now, 0.001))
            bell.wait(mark, delay)
            delay = min(delay * 2, 0.5)

    def _assured_kill(
        self, result: Outcome, sp: config.StartdProps, timeout: float | None
    ) -> Outcome:
        """For stop methods: wait until the service's contract is empty,
        killing it when the rest of the timeout runs out."""
        inst = self.inst
        if self.mtype != "stop" or sp.style is Style.TRANSIENT or inst.primary_ctid == 0:
            return result
        contract = self.host.store.get(inst.primary_ctid)
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0)
        next_kill = 0.0
        fired = False
        times = 0
        bell = self.host.bell
        while True:
            mark = bell.mark()
            if contract.is_empty():
                break
            now = time.monotonic()
            if deadline is not None and now >= deadline and now >= next_kill:
                fired = True
                self.say(f"Method or service exit timed out.  Killing contract {contract.ctid}.")
                contract.kill(signal.SIGKILL)
                next_kill = now + 1.0
            # Check often at first, then back off, as method.c does.
            bell.wait(mark, 0.005 if times < 20 else 0.1)
            times += 1
        return Outcome.EFAULT if fired else result


def remove_contract(host: Host, inst: Instance, primary: bool) -> None:
    """method_remove_contract: forget the contract and abandon it."""
    ctid = inst.primary_ctid if primary else inst.transient_ctid
    if ctid == 0:
        return
    host.store.get(ctid).abandon()
    name = "contract" if primary else "transient_contract"
    write_restarter(host.repo, inst.fmri, {}, delete=(name,))
    if primary:
        inst.primary_ctid, inst.primary_stopped = 0, False
    else:
        inst.transient_ctid = 0
