"""The SMF repository: services, instances, property groups, snapshots.

One JSON document per devhost (`<state>/smf/repository.json`), replaced
atomically, so a reader never needs a lock and always sees a whole repository;
writers take `<state>/smf/repository.lock` for a read-modify-write. The layout:

    {"services": {"system/vmbundle/vm": {
        "pgs": PGS,                         # the service's own (editing) property groups
        "instances": {"web01": {
            "pgs": PGS,                     # the instance's editing property groups
            "snapshots": {"running": SNAP, "initial": SNAP, "start": SNAP, ...}}}}}}
    PGS  = {"general": {"type": "framework", "nonpersistent": false,
                        "props": {"enabled": {"type": "boolean", "values": ["true"]}}}}
    SNAP = {"instance": PGS, "service": PGS}   # persistent property groups only

Values are kept as their canonical text (booleans "true"/"false", counts in
decimal). Non-persistent property groups (restarter, restarter_actions,
general_ovr) live in the same document and are dropped by `boot()`, which is
what a reboot does to them on illumos.
"""

from __future__ import annotations

import copy
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devhost.smf.fmri import Fmri

Doc = dict[str, Any]
Pgs = dict[str, Any]

PROPERTY_TYPES = (
    "count",
    "integer",
    "opaque",
    "host",
    "hostname",
    "net_address",
    "net_address_v4",
    "net_address_v6",
    "time",
    "astring",
    "ustring",
    "boolean",
    "fmri",
    "uri",
)


class RepositoryError(Exception):
    pass


class Repository:
    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir) / "smf"
        self.path = self.dir / "repository.json"
        self.lock_path = self.dir / "repository.lock"

    def exists(self) -> bool:
        return self.path.exists()

    def read(self) -> Doc:
        """The whole repository as it is now (no lock needed: writes are atomic)."""
        try:
            with self.path.open("rb") as f:
                doc: Doc = json.load(f)
        except FileNotFoundError:
            return {"services": {}}
        return doc

    @contextmanager
    def edit(self) -> Iterator[Doc]:
        """Read, let the with-block change the document, write it back atomically."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            doc = self.read()
            yield doc
            self._write(doc)
        finally:
            os.close(fd)

    def _write(self, doc: Doc) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".repository.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f, separators=(",", ":"))
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def boot(self) -> None:
        """Forget every non-persistent property group, as a reboot does."""
        with self.edit() as doc:
            for svc in doc["services"].values():
                _drop_nonpersistent(svc["pgs"])
                for inst in svc["instances"].values():
                    _drop_nonpersistent(inst["pgs"])


def _drop_nonpersistent(pgs: Pgs) -> None:
    for name in [n for n, pg in pgs.items() if pg.get("nonpersistent")]:
        del pgs[name]


# --- looking things up -----------------------------------------------------------------


def all_fmris(doc: Doc) -> list[Fmri]:
    out = []
    for sname, svc in doc["services"].items():
        out.append(Fmri(sname))
        out.extend(Fmri(sname, iname) for iname in svc["instances"])
    return sorted(out)


def instance_fmris(doc: Doc) -> list[Fmri]:
    return [f for f in all_fmris(doc) if f.instance is not None]


def service(doc: Doc, fmri: Fmri) -> Doc | None:
    svc: Doc | None = doc["services"].get(fmri.service)
    return svc


def entity(doc: Doc, fmri: Fmri) -> Doc | None:
    """The service or instance node for fmri, or None."""
    svc = service(doc, fmri)
    if svc is None or fmri.instance is None:
        return svc
    inst: Doc | None = svc["instances"].get(fmri.instance)
    return inst


def add_service(doc: Doc, fmri: Fmri) -> Doc:
    return doc["services"].setdefault(fmri.service, {"pgs": {}, "instances": {}})  # type: ignore[no-any-return]


def add_instance(doc: Doc, fmri: Fmri) -> Doc:
    assert fmri.instance is not None
    svc = add_service(doc, fmri)
    return svc["instances"].setdefault(fmri.instance, {"pgs": {}, "snapshots": {}})  # type: ignore[no-any-return]


# --- property groups and properties ------------------------------------------------------


def new_pg(pg_type: str, nonpersistent: bool = False) -> Doc:
    return {"type": pg_type, "nonpersistent": nonpersistent, "props": {}}


def set_prop(
    pgs: Pgs,
    pg: str,
    prop: str,
    ptype: str,
    values: list[str],
    *,
    pg_type: str = "application",
    nonpersistent: bool = False,
) -> None:
    """Set pg/prop, creating the group when missing (for the restarter's own writes)."""
    group = pgs.setdefault(pg, new_pg(pg_type, nonpersistent))
    group["props"][prop] = {"type": ptype, "values": list(values)}


def get_values(pgs: Pgs, pg: str, prop: str) -> list[str] | None:
    group = pgs.get(pg)
    if group is None or prop not in group["props"]:
        return None
    values: list[str] = group["props"][prop]["values"]
    return values


def compose(instance_pgs: Pgs, service_pgs: Pgs) -> Pgs:
    """The composed view: the service's groups with the instance's laid over them,
    property by property."""
    out: Pgs = copy.deepcopy(service_pgs)
    for name, pg in instance_pgs.items():
        if name in out and out[name]["type"] == pg["type"]:
            out[name]["props"].update(copy.deepcopy(pg["props"]))
            out[name]["nonpersistent"] = pg.get("nonpersistent", False)
        else:
            out[name] = copy.deepcopy(pg)
    return out


def _persistent(pgs: Pgs) -> Pgs:
    return {n: copy.deepcopy(pg) for n, pg in pgs.items() if not pg.get("nonpersistent")}


def take_snapshot(doc: Doc, fmri: Fmri, name: str) -> None:
    """Snapshot an instance's and its service's persistent property groups."""
    svc = service(doc, fmri)
    inst = entity(doc, fmri)
    assert svc is not None and inst is not None and fmri.instance is not None
    inst["snapshots"][name] = {
        "instance": _persistent(inst["pgs"]),
        "service": _persistent(svc["pgs"]),
    }


def running_view(doc: Doc, fmri: Fmri) -> Pgs:
    """What svcprop shows by default and svc.startd reads: the composed running
    snapshot plus the instance's current non-persistent groups; without a running
    snapshot, the directly attached properties."""
    inst = entity(doc, fmri)
    svc = service(doc, fmri)
    assert inst is not None and svc is not None
    snap = inst["snapshots"].get("running")
    if snap is None:
        return copy.deepcopy(inst["pgs"])
    view = compose(snap["instance"], snap["service"])
    for name, pg in inst["pgs"].items():
        if pg.get("nonpersistent"):
            view[name] = copy.deepcopy(pg)
    return view


def editing_view(doc: Doc, fmri: Fmri) -> Pgs:
    """svcprop -c: the composed current (editing) properties."""
    inst = entity(doc, fmri)
    svc = service(doc, fmri)
    assert svc is not None
    if fmri.instance is None:
        return copy.deepcopy(svc["pgs"])
    assert inst is not None
    return compose(inst["pgs"], svc["pgs"])


def enabled(doc: Doc, fmri: Fmri) -> bool:
    """general_ovr/enabled (temporary) when set, else general/enabled."""
    inst = entity(doc, fmri)
    if inst is None:
        return False
    for pg in ("general_ovr", "general"):
        values = get_values(inst["pgs"], pg, "enabled")
        if values:
            return values[0] == "true"
    return False
