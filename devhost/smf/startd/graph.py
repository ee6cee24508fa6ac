"""Dependency evaluation, after svc.startd's graph engine (startd/graph.c).

Every evaluation returns 1 (satisfied), 0 (unsatisfied, may become satisfied) or
-1 (unsatisfiable without an administrator). `satbility` asks for the recursion
that tells 0 from -1, as graph.c's functions do.
"""

from __future__ import annotations

from typing import Protocol

from devhost.smf.fmri import Fmri, FmriError, file_path, parse
from devhost.smf.startd.config import Dependency

SATISFIED, UNSATISFIED, UNSATISFIABLE = 1, 0, -1
RUNNING = ("online", "degraded")


class GraphView(Protocol):
    def state(self, fmri: Fmri) -> str | None:
        """The instance's state, None when there is no such instance."""

    def enabled(self, fmri: Fmri) -> bool: ...

    def dependencies(self, fmri: Fmri) -> list[Dependency]: ...

    def service_instances(self, service: str) -> list[Fmri] | None:
        """None when there is no such service."""

    def path_ready(self, path: str) -> bool: ...


def service_entity(entity: str) -> Fmri | None:
    try:
        return parse(entity)
    except FmriError:
        return None


class Evaluator:
    def __init__(self, g: GraphView) -> None:
        self.g = g
        self._visiting: set[Fmri] = set()

    # -- one element of a dependency group ---------------------------------------------

    def _instance(self, fmri: Fmri, satbility: bool) -> int:
        state = self.g.state(fmri)
        if state is None:
            return UNSATISFIABLE
        if state in RUNNING:
            return SATISFIED
        if state == "offline":
            if not satbility:
                return UNSATISFIED
            return UNSATISFIABLE if self.instance(fmri, True) == UNSATISFIABLE else UNSATISFIED
        if state in ("disabled", "maintenance"):
            return UNSATISFIABLE
        return UNSATISFIED  # uninitialized

    def _service(self, service: str, satbility: bool) -> int:
        instances = self.g.service_instances(service)
        if not instances:
            return UNSATISFIABLE
        return self._any([self._instance(i, satbility) for i in instances], satbility)

    def _element(self, entity: str, satbility: bool) -> int:
        path = file_path(entity)
        if path is not None:
            # Files are assumed not to appear by themselves.
            return SATISFIED if self.g.path_ready(path) else UNSATISFIABLE
        fmri = service_entity(entity)
        if fmri is None:
            return UNSATISFIABLE
        if fmri.instance is None:
            return self._service(fmri.service, satbility)
        return self._instance(fmri, satbility)

    # -- groupings -------------------------------------------------------------------------

    @staticmethod
    def _all(results: list[int], satbility: bool) -> int:
        worst = SATISFIED
        for r in results:
            if r == SATISFIED:
                continue
            if not satbility:
                return UNSATISFIED
            if r == UNSATISFIABLE:
                return UNSATISFIABLE
            worst = UNSATISFIED
        return worst

    @staticmethod
    def _any(results: list[int], satbility: bool) -> int:
        if not results or SATISFIED in results:
            return SATISFIED
        return UNSATISFIED if not satbility or UNSATISFIED in results else UNSATISFIABLE

    def _optional_all(self, entities: tuple[str, ...], satbility: bool) -> int:
        results = []
        for entity in entities:
            fmri = None if file_path(entity) is not None else service_entity(entity)
            if fmri is not None and fmri.instance is not None:
                state = self.g.state(fmri)
                if state is None or state == "maintenance":
                    continue  # missing and broken instances do not count
                if state == "offline":
                    r = self._instance(fmri, True)
                    results.append(SATISFIED if r == UNSATISFIABLE else r)
                elif state == "disabled":
                    # On its way out of disabled it is worth waiting for.
                    results.append(UNSATISFIED if self.g.enabled(fmri) else SATISFIED)
                else:
                    results.append(self._instance(fmri, satbility))
            elif fmri is not None:
                instances = self.g.service_instances(fmri.service) or []
                sub = tuple(str(i) for i in instances)
                results.append(self._optional_all(sub, satbility) if sub else SATISFIED)
            else:
                results.append(self._element(entity, satbility))
        return self._all(results, satbility)

    def _exclude_all(self, entities: tuple[str, ...]) -> int:
        for entity in entities:
            path = file_path(entity)
            if path is not None:
                if self.g.path_ready(path):
                    return UNSATISFIABLE
                continue
            fmri = service_entity(entity)
            if fmri is None:
                continue
            targets = [fmri] if fmri.instance else (self.g.service_instances(fmri.service) or [])
            for t in targets:
                state = self.g.state(t)
                if state in RUNNING:
                    return UNSATISFIABLE if self.g.enabled(t) else UNSATISFIED
                if state in ("offline", "uninitialized"):
                    return UNSATISFIED
        return SATISFIED

    def group(self, dep: Dependency, satbility: bool) -> int:
        if dep.grouping == "exclude_all":
            return self._exclude_all(dep.entities)
        if dep.grouping == "optional_all":
            return self._optional_all(dep.entities, satbility)
        results = [self._element(e, satbility) for e in dep.entities]
        if dep.grouping == "require_any":
            return self._any(results, satbility)
        return self._all(results, satbility)  # require_all, and what startd treats as such

    def instance(self, fmri: Fmri, satbility: bool = False) -> int:
        """Whether every dependency group of fmri is satisfied (instance_satisfied)."""
        if fmri in self._visiting:
            return UNSATISFIED  # a cycle: graph.c refuses these when it loads them
        self._visiting.add(fmri)
        try:
            results = [self.group(d, satbility) for d in self.g.dependencies(fmri)]
        finally:
            self._visiting.discard(fmri)
        return self._all(results, satbility)


def dependents(g: GraphView, fmri: Fmri, candidates: list[Fmri]) -> list[tuple[Fmri, Dependency]]:
    """The (instance, dependency group) pairs among candidates that name fmri."""
    out = []
    for c in candidates:
        for dep in g.dependencies(c):
            for entity in dep.entities:
                target = service_entity(entity) if file_path(entity) is None else None
                if target is None:
                    continue
                if target == fmri or (target.instance is None and target.service == fmri.service):
                    out.append((c, dep))
                    break
    return out
