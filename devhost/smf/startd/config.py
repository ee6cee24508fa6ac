"""What svc.startd reads from an instance's (running) properties: its methods,
the `startd` property group, and its dependencies.

Every function takes a *view*: the composed property groups of one instance
(repository.running_view), as startd/libscf.c reads them with
scf_instance_get_pg_composed on the running snapshot.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from devhost.smf.repository import Pgs

INFINITE = None  # a method timeout of 0, -1 or none at all


class Style(enum.Enum):
    """startd/duration: only "child" and "transient" are recognised."""

    CONTRACT = "contract"
    TRANSIENT = "transient"
    WAIT = "child"


# Contract events (sys/contract/process.h), as the critical-event terms use them.
EV_CORE = 0x01
EV_EMPTY = 0x02
EV_SIGNAL = 0x08
EV_HWERR = 0x10

_RESTART_ON_EVENTS = {
    "all": EV_HWERR | EV_SIGNAL | EV_CORE | EV_EMPTY,
    "external_fault": EV_HWERR | EV_SIGNAL,
    "any_fault": EV_HWERR | EV_SIGNAL | EV_CORE,
}


def _prop(view: Pgs, pg: str, prop: str) -> dict[str, Any] | None:
    group = view.get(pg)
    if group is None:
        return None
    p: dict[str, Any] | None = group["props"].get(prop)
    return p


def single(view: Pgs, pg: str, prop: str, ptype: str | None = None) -> str | None:
    """The one value of pg/prop, or None when missing, multi-valued or of another type."""
    p = _prop(view, pg, prop)
    if p is None or len(p["values"]) != 1 or (ptype is not None and p["type"] != ptype):
        return None
    value: str = p["values"][0]
    return value


def values(view: Pgs, pg: str, prop: str) -> list[str] | None:
    p = _prop(view, pg, prop)
    return None if p is None else list(p["values"])


def _boolean(view: Pgs, pg: str, prop: str, default: bool) -> bool:
    value = single(view, pg, prop, "boolean")
    return default if value is None else value == "true"


@attrs.frozen
class StartdProps:
    style: Style
    ignore_mask: int  # contract events startd/ignore_error masks
    timeout_retry: bool
    need_session: bool
    critical_count: int | None  # startd/critical_failure_count and _period, when both
    critical_period: float | None  # are set as integers, as method_rate_critical reads them


def startd_props(view: Pgs) -> StartdProps:
    duration = single(view, "startd", "duration")
    style = {"child": Style.WAIT, "transient": Style.TRANSIENT}.get(duration or "", Style.CONTRACT)
    ignore = single(view, "startd", "ignore_error") or ""
    mask = {
        "core": EV_CORE,
        "signal": EV_SIGNAL,
        "core,signal": EV_CORE | EV_SIGNAL,
        "signal,core": EV_CORE | EV_SIGNAL,
    }.get(ignore, 0)
    count = single(view, "startd", "critical_failure_count", "integer")
    period = single(view, "startd", "critical_failure_period", "integer")
    both = count is not None and period is not None
    return StartdProps(
        style=style,
        ignore_mask=mask,
        timeout_retry=_boolean(view, "startd", "timeout_retry", True),
        need_session=_boolean(view, "startd", "need_session", False),
        critical_count=int(count) if both and count is not None else None,
        critical_period=float(period) if both and period is not None else None,
    )


@attrs.frozen
class MethodProps:
    name: str
    exec: str  # before % token expansion
    timeout: float | None  # seconds; None is infinite
    timeout_note: str | None  # what startd logs about a timeout it could not use
    critical_events: int  # start only: from start/restart_on, minus startd/ignore_error


class NoMethodGroup(Exception):
    """LIBSCF_PGROUP_ABSENT"""


class NoExecProperty(Exception):
    """LIBSCF_PROPERTY_ABSENT"""


def method_props(view: Pgs, name: str) -> MethodProps:
    group = view.get(name)
    if group is None:
        raise NoMethodGroup(name)
    exec_values = values(view, name, "exec")
    if exec_values is None:
        raise NoExecProperty(name)
    timeout: float | None = INFINITE
    note = None
    t = _prop(view, name, "timeout_seconds")
    if t is not None:
        if t["type"] != "count" or len(t["values"]) != 1:
            note = f"{name}/timeout_seconds is multi-valued or not of type count.  Using infinite timeout."
        else:
            raw = int(t["values"][0])
            # Both 0 and -1 mean infinite; -1 is what a count of 2^64-1 reads as.
            if raw not in (0, -1) and 0 < raw < 2**63:
                timeout = float(raw)
    events = 0
    if name == "start":
        restart_on = single(view, "start", "restart_on") or "all"
        events = _RESTART_ON_EVENTS.get(restart_on, _RESTART_ON_EVENTS["all"])
        events &= ~startd_props(view).ignore_mask
    return MethodProps(
        name=name,
        exec=exec_values[0] if exec_values else "",
        timeout=timeout,
        timeout_note=note,
        critical_events=events,
    )


# --- dependencies ------------------------------------------------------------------------

RESTART_ON_LEVEL = {"none": 0, "error": 1, "restart": 2, "refresh": 3}


@attrs.frozen
class Dependency:
    name: str
    grouping: str  # require_all | require_any | optional_all | exclude_all
    restart_on: int  # RESTART_ON_LEVEL
    type: str  # service | path
    entities: tuple[str, ...]


def dependencies(view: Pgs) -> list[Dependency]:
    out = []
    for name, group in sorted(view.items()):
        if group.get("type") != "dependency":
            continue
        out.append(
            Dependency(
                name=name,
                grouping=single(view, name, "grouping") or "",
                restart_on=RESTART_ON_LEVEL.get(single(view, name, "restart_on") or "none", 0),
                type=single(view, name, "type") or "",
                entities=tuple(values(view, name, "entities") or ()),
            )
        )
    return out
