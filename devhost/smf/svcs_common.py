"""What svcs(1) and its option modules (svcs_long, svcs_deps, svcs_explain) share:
the instance as svcs reads it, the messages and exit codes, time formats, and the
state of one run (its output, exit status and instance walk). They all import this
module and none of them imports svcs.py, so there is no import circle; svcs.py
imports the option modules only when their option is used. Kept free of heavy
imports: svcs starts on every poll of the product."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from devhost.smf import repository as repo
from devhost.smf.fmri import STARTD_FMRI
from devhost.smf.repository import Doc, Pgs

if TYPE_CHECKING:
    from _typeshed import StrPath

PROG = "svcs"
MSG_BASE = "http://illumos.org/msg/"

EXIT_FATAL = 1
EXIT_USAGE = 2

STATE_CHAR = {
    "uninitialized": "u",
    "offline": "0",
    "online": "1",
    "maintenance": "m",
    "disabled": "d",
    "degraded": "D",
    "legacy_run": "L",
}
MAX_STATE = 13  # MAX_SCF_STATE_STRING_SZ - 1

# A property's type is usable as any of its base types (libscf scf_type_base_type).
_BASE_TYPE = {
    "ustring": "astring",
    "uri": "ustring",
    "fmri": "uri",
    "host": "ustring",
    "hostname": "host",
    "net_address": "host",
    "net_address_v4": "net_address",
    "net_address_v6": "net_address",
}


class Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def type_is(actual: str, wanted: str) -> bool:
    t: str | None = actual
    while t is not None:
        if t == wanted:
            return True
        t = _BASE_TYPE.get(t)
    return False


def warn(msg: str) -> None:
    sys.stderr.write(f"{PROG}: {msg}\n")


def die(msg: str) -> NoReturn:
    warn(msg)
    raise Exit(EXIT_FATAL)


def parse_time(text: str) -> tuple[int, int] | None:
    """A time value (seconds[.fraction]) as (seconds, microseconds)."""
    sec, _, frac = text.partition(".")
    try:
        return int(sec), int((frac + "000000")[:6]) if frac else 0
    except ValueError:
        return None


def long_time(seconds: int) -> str:
    """strftime(NULL) in the C locale of illumos: %c."""
    return time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(seconds))


def locale_name() -> str:
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var)
        if value:
            return "".join(c if c.isalnum() or c == "_" else "_" for c in value)
    return "C"


class Inst:
    """One instance as svcs sees it; reads are cached because columns and sort keys
    ask for the same properties repeatedly."""

    def __init__(self, doc: Doc, service: str, instance: str) -> None:
        self.doc = doc
        self.service = service
        self.instance = instance
        self.fmri = f"svc:/{service}:{instance}"
        node = repo.node_of(doc, service, instance)
        assert node is not None
        self.node = node
        self._current: Pgs | None = None

    @property
    def current(self) -> Pgs:
        """The composed current view (what svcs reads restarter properties from)."""
        if self._current is None:
            self._current = repo.current_view_of(self.doc, self.service, self.instance)
        return self._current

    @property
    def direct(self) -> Pgs:
        pgs: Pgs = self.node["pgs"]
        return pgs

    def running_or_current(self) -> Pgs:
        snap = repo.snapshot_view_of(self.doc, self.service, self.instance, "running")
        return self.current if snap is None else snap

    def value(
        self, pgs: Pgs, pg: str, prop: str, ptype: str, *, empty_ok: bool = False
    ) -> str | None:
        group = pgs.get(pg)
        return None if group is None else self.single(group, pg, prop, ptype, empty_ok)

    def single(
        self, group: Any, pg: str, prop: str, ptype: str, empty_ok: bool = False
    ) -> str | None:
        """pg_get_single_val(): the single value, None when missing; a value of the wrong
        type or count is reported as misconfigured."""
        if prop not in group["props"]:
            return None
        entry = group["props"][prop]
        values = entry["values"]
        if type_is(entry["type"], ptype) and len(values) == 1:
            return str(values[0])
        if type_is(entry["type"], ptype) and not values and empty_ok:
            return None
        warn(f'Property "{self.fmri}{repo.PG_PREFIX}{pg}/{prop}" is misconfigured.')
        return None

    def restarter(self, prop: str, ptype: str = "astring", **kw: bool) -> str | None:
        return self.value(self.current, "restarter", prop, ptype, **kw)

    @property
    def state(self) -> str:
        return (self.restarter("state") or "")[:MAX_STATE]

    @property
    def next_state(self) -> str:
        return (self.restarter("next_state") or "")[:MAX_STATE]

    @property
    def transitioning(self) -> bool:
        return self.next_state in STATE_CHAR

    def stime(self) -> tuple[int, int] | None:
        text = self.restarter("state_timestamp", "time")
        return None if text is None else parse_time(text)

    def contracts(self) -> list[int] | None:
        """restarter/contract values, None when absent or not a count."""
        group = self.current.get("restarter")
        if group is None or "contract" not in group["props"]:
            return None
        entry = group["props"]["contract"]
        if not type_is(entry["type"], "count"):
            warn(f'Property "{self.fmri}{repo.PG_PREFIX}restarter/contract" is misconfigured.')
            return None
        return [int(v) for v in entry["values"]]

    def enabled(self, pg: str) -> bool | None:
        text = self.value(self.direct, pg, "enabled", "boolean")
        return None if text is None else text == "true"

    def restarter_fmri(self) -> str:
        return self.value(self.current, "general", "restarter", "astring") or STARTD_FMRI

    def restarter_canonical(self) -> str | None:
        parsed = repo.parse_svc_fmri(self.restarter_fmri())
        if parsed is None or parsed.instance is None:
            return None
        return f"svc:/{parsed.service}:{parsed.instance}"

    def common_name(self, view: Pgs) -> str | None:
        for name in (locale_name(), "C"):
            text = self.value(view, "tm_common_name", name, "ustring")
            if text is not None:
                return text
        return None


class Run:
    """One run of svcs: what it prints and its exit status, and the walk over the
    instances its operands name that -l, -L and -d share."""

    def __init__(self, state_dir: StrPath) -> None:
        self.state_dir = state_dir
        self.exit_status = 0
        self.out: list[str] = []

    def report(self, errors: list[str]) -> None:
        for msg in errors:
            warn(msg)
        if errors:
            self.exit_status = EXIT_FATAL

    def walk_instances(
        self, doc: Doc, operands: list[str], each: Callable[[Inst], None], legacy: bool = False
    ) -> None:
        walked = repo.walk(doc, operands, legacy=legacy, missing_instance=True)
        self.report(walked.errors)
        for match in walked.matches:
            assert match.instance is not None
            each(Inst(doc, match.service, match.instance))
