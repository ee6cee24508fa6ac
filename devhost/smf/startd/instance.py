"""One service instance as the restarter holds it, and what it writes about it:
the non-persistent `restarter` property group and svc.startd's lines in the
instance log.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import attrs

from devhost.smf import repository
from devhost.smf.fmri import Fmri
from devhost.smf.repository import Repository
from devhost.smf.startd.holder import startd_line

STATES = ("uninitialized", "offline", "online", "degraded", "maintenance", "disabled")
RUNNING = ("online", "degraded")

# Why a running instance stops (restarter.c stop_cause_t): the log text, the
# restarter error the graph propagates, and the auxiliary state written.
FAULT, RESTART, REFRESH = 1, 2, 3


@attrs.frozen
class StopCause:
    text: str
    err: int
    reason: str


EXIT = StopCause("all processes in service exited", RESTART, "ct_ev_exit")
ERR_CFG = StopCause("service exited with a configuration error", FAULT, "method_failed")
ERR_EXIT = StopCause("service exited with an error", RESTART, "ct_ev_exit")
CORE = StopCause("process dumped core", FAULT, "ct_ev_core")
SIGNAL = StopCause("process received fatal signal from outside the service", FAULT, "ct_ev_signal")
DEPENDENCY = StopCause("dependency activity requires stop", RESTART, "dependency_activity")
DISABLE = StopCause("service disabled", RESTART, "disable_request")
RESTART_REQUEST = StopCause("service restarting", RESTART, "restart_request")


def log_path(state_dir: Path, fmri: Fmri) -> Path:
    """<state>/var/svc/log/<service, / as ->:<instance>.log, as on illumos."""
    stem = f"{fmri.service}:{fmri.instance}".replace("/", "-")
    return Path(state_dir) / "var" / "svc" / "log" / f"{stem}.log"


def timestamp(t: float | None = None) -> str:
    """A `time` property value: SECONDS.NANOSECONDS."""
    ns = time.time_ns() if t is None else int(t * 1e9)
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


@attrs.define(eq=False)
class Instance:
    fmri: Fmri
    log: Path
    state: str = "uninitialized"
    next_state: str = "none"
    aux: str = "none"
    primary_ctid: int = 0
    primary_stopped: bool = False  # stopped by us on the way to offline: events ignored
    transient_ctid: int = 0
    fault_count: int = 0
    start_times: list[float] = attrs.Factory(list)
    busy: bool = False  # a method thread owns the instance
    deleted: bool = False
    enabled_seen: bool | None = None  # the enabled value last acted on
    disabling: bool = False  # an admin disable waits for its dependents to go down
    hold_until: float = 0.0  # child-model throttle: no start before this
    start_reason: str | None = None  # restart_request: kept for the start that follows
    cleared: bool = False  # left maintenance by `svcadm clear`
    paths: dict[str, bool] = attrs.Factory(dict)  # file dependencies as last looked at
    pending: collections.deque[Any] = attrs.Factory(collections.deque)

    @property
    def running(self) -> bool:
        return self.state in RUNNING

    @property
    def in_transition(self) -> bool:
        return self.next_state != "none"

    def say(self, text: str) -> None:
        """Write one of svc.startd's own lines into the instance log."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("a") as f:
            f.write(startd_line(text))

    def reset_start_times(self) -> None:
        self.start_times.clear()


# --- the restarter property group -----------------------------------------------------------

Prop = tuple[str, list[str]]  # (type, values)


Change = Callable[[repository.Doc], bool]  # an edit of the document; whether it changed it


class _Pass(threading.local):
    """The repository writes one thread holds back (see `batched`)."""

    repo: Repository | None = None
    writes: dict[Fmri, tuple[dict[str, Prop], set[str]]]
    edits: list[Change]

    def __init__(self) -> None:
        self.writes, self.edits = {}, []


_held = _Pass()


@contextlib.contextmanager
def batched(repo: Repository, edit: Change | None = None) -> Iterator[None]:
    """Within the block, this thread's write_restarter calls on repo are held
    back and made at its end in one repository edit (with edit, when given), as
    svc.startd commits the states of a pass over many instances without
    rewriting the repository for each. Other threads (method threads) write
    at once, sharing an edit with those writing at the same time
    (_group_commit). Nested: the outer block writes."""
    if _held.repo is not None:
        if edit is not None:
            _held.edits.append(edit)
        yield
        return
    _held.repo, _held.writes, _held.edits = repo, {}, [] if edit is None else [edit]
    try:
        yield
    finally:
        writes, edits = _held.writes, _held.edits
        _held.repo, _held.writes, _held.edits = None, {}, []
        if writes or edits:
            repo.update(lambda doc: _apply_all(doc, writes, edits))


def _apply_all(
    doc: repository.Doc,
    writes: dict[Fmri, tuple[dict[str, Prop], set[str]]],
    edits: list[Change],
) -> bool:
    changed = False
    for change in edits:
        changed = change(doc) or changed
    for fmri, (props, delete) in writes.items():
        changed = _apply(doc, fmri, props, delete) or changed
    return changed


def _apply(doc: repository.Doc, fmri: Fmri, props: dict[str, Prop], delete: Iterable[str]) -> bool:
    """Set and delete properties of fmri's restarter group in doc; whether anything changed."""
    inst = repository.entity(doc, fmri)
    if inst is None:
        return False
    current = inst["pgs"].get("restarter", {"props": {}})["props"]
    changed = False
    for name, (ptype, vals) in props.items():
        have = current.get(name)
        if have is None or have["type"] != ptype or have["values"] != vals:
            repository.set_prop(
                inst["pgs"], "restarter", name, ptype, vals,
                pg_type="framework", nonpersistent=True,
            )  # fmt: skip
            current = inst["pgs"]["restarter"]["props"]
            changed = True
    for name in delete:
        if name in current:
            del current[name]
            changed = True
    return changed


def write_restarter(
    repo: Repository, fmri: Fmri, props: dict[str, Prop], delete: tuple[str, ...] = ()
) -> None:
    """Set (and delete) properties of the instance's restarter group; nothing
    when the instance is gone. Writes nothing when nothing would change, and
    within `batched` only at the end of the block."""
    if _held.repo is repo:
        sets, dels = _held.writes.setdefault(fmri, ({}, set()))
        for name in delete:
            sets.pop(name, None)
            dels.add(name)
        for name, prop in props.items():
            dels.discard(name)
            sets[name] = prop
        return
    _group_commit(repo, lambda doc: _apply(doc, fmri, props, delete))


class _Queued:
    def __init__(self, change: Change) -> None:
        self.change = change
        self.done = False
        self.error: BaseException | None = None


_queue_lock = threading.Lock()  # guards _queued and _writers
_queued: dict[str, list[_Queued]] = {}
_writers: dict[str, threading.Lock] = {}


def _group_commit(repo: Repository, change: Change) -> None:
    """The change, made by this thread or by another one writing at the same
    time: method threads that finish together (a boot storm) share one
    repository edit, in the order they asked, rather than each rewriting it;
    returns once the change is in the repository."""
    me = _Queued(change)
    with _queue_lock:
        _queued.setdefault(repo.path, []).append(me)
        writer = _writers.setdefault(repo.path, threading.Lock())
    with writer:
        if not me.done:
            with _queue_lock:
                batch, _queued[repo.path] = _queued[repo.path], []
            try:
                repo.update(lambda doc: _apply_all(doc, {}, [q.change for q in batch]))
            except BaseException as exc:
                for q in batch:
                    q.error = exc
                raise
            finally:
                for q in batch:
                    q.done = True
    if me.error is not None:
        raise me.error


def commit_states(
    repo: Repository, inst: Instance, state: str, next_state: str, aux: str | None
) -> None:
    """_restarter_commit_states: state, next_state, state_timestamp, and the
    auxiliary state when one is given."""
    props: dict[str, Prop] = {
        "state": ("astring", [state]),
        "next_state": ("astring", [next_state]),
        "state_timestamp": ("time", [timestamp()]),
    }
    if aux is not None:
        props["auxiliary_state"] = ("astring", [aux])
        inst.aux = aux
    write_restarter(repo, inst.fmri, props)
    inst.state, inst.next_state = state, next_state
