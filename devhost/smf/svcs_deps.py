"""svcs(1) -d and -D, and the dependency helpers -l and -x share (svcs.c
walk_dependencies, list_svc_or_inst_fmri, list_dependents). Imported only when one
of those options is used, so that a plain listing stays cheap to start."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from devhost.smf import repository as repo
from devhost.smf.fmri import file_path
from devhost.smf.repository import Doc, Walked
from devhost.smf.svcs_common import EXIT_FATAL, Inst, Run


def dependency_groups(i: Inst) -> list[tuple[str, Any]]:
    """The instance's dependency groups in its running snapshot (composed), or in the
    current composed view when it has none."""
    return [(n, pg) for n, pg in i.running_or_current().items() if pg["type"] == "dependency"]


def prop_values(pg: Any, name: str) -> list[str]:
    entry = pg["props"].get(name)
    return [] if entry is None else list(entry["values"])


def fmri_state(doc: Doc, fmri: str) -> str:
    """What svcs -l shows after a dependency: the state of the instance, the one
    instance of a service, or a file's presence."""
    if fmri.startswith("file:"):
        path = file_path(fmri)
        if path is None:
            return "invalid"
        try:
            os.stat(path)
        except FileNotFoundError:
            return "absent"
        except OSError:
            return "unknown"
        return "online"
    parsed = repo.parse_svc_fmri(fmri)
    if parsed is None or parsed.service is None or parsed.pg is not None:
        return "invalid"
    svc = doc["services"].get(parsed.service)
    if parsed.instance is not None:
        if svc is None or parsed.instance not in svc["instances"]:
            return "absent"
        return Inst(doc, parsed.service, parsed.instance).state
    if svc is None or not svc["instances"]:
        return "absent"
    if len(svc["instances"]) > 1:
        return "multiple"
    only = next(iter(svc["instances"]))
    return Inst(doc, parsed.service, only).state


def grouping(pg: Any) -> str | None:
    entry = pg["props"].get("grouping")
    if entry is None or entry["type"] != "astring" or len(entry["values"]) != 1:
        return None
    value: str = entry["values"][0]
    return value


def provides(provider: Walked, fmri: str) -> bool:
    """Whether a dependency on fmri is one on the provider (a dependency on a service
    counts for each of its instances)."""
    parsed = repo.parse_svc_fmri(fmri)
    if parsed is None or parsed.service is None or parsed.pg is not None:
        return False
    if parsed.service != provider.service:
        return False
    if provider.instance is None:
        return parsed.instance is None
    return parsed.instance is None or parsed.instance == provider.instance


def list_dependencies(svcs: Run, doc: Doc, i: Inst, list_instance: Callable[[Inst], None]) -> None:
    """-d: what one instance depends on (svcs.c list_dependencies)."""
    for _, pg in dependency_groups(i):
        if grouping(pg) in (None, "exclude_all"):
            continue
        for fmri in prop_values(pg, "entities"):
            list_svc_or_inst(svcs, doc, fmri, list_instance)


def list_svc_or_inst(svcs: Run, doc: Doc, fmri: str, list_instance: Callable[[Inst], None]) -> None:
    """svcs.c list_svc_or_inst_fmri(), without complaints (as -d calls it)."""
    parsed = repo.parse_svc_fmri(fmri)
    if parsed is None:
        svcs.exit_status = EXIT_FATAL
        return
    if parsed.service is None or parsed.pg is not None:
        return
    svc = doc["services"].get(parsed.service)
    if parsed.instance is not None:
        if svc is not None and parsed.instance in svc["instances"]:
            list_instance(Inst(doc, parsed.service, parsed.instance))
        return
    if svc is None:
        svcs.exit_status = EXIT_FATAL
        return
    for name in svc["instances"]:
        list_instance(Inst(doc, parsed.service, name))
    svcs.exit_status = 0  # svcs.c resets it here


def list_dependents(doc: Doc, provider: Walked, list_instance: Callable[[Inst], None]) -> None:
    """-D: the instances that depend on the provider."""
    for match in repo.walk(doc, []).matches:
        assert match.instance is not None
        i = Inst(doc, match.service, match.instance)
        if any(
            provides(provider, fmri)
            for _, pg in dependency_groups(i)
            if grouping(pg) not in (None, "exclude_all")
            for fmri in prop_values(pg, "entities")
        ):
            list_instance(i)
