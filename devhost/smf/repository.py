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
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, NamedTuple

# tempfile costs ~7 ms: svcs and svcprop import this module and must start fast, so it
# is imported only where it is used (as is fmri.py, which most of them do not need).
if TYPE_CHECKING:
    from _typeshed import StrPath

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


FileKey = tuple[int, int, int]  # (inode, mtime in ns, size): a version of the file


def file_key(st: os.stat_result) -> FileKey:
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class Repository:
    """The files' paths are str: svcprop and svcs read the repository on every
    run, and pathlib (with fnmatch and urllib.parse) would cost each 8 ms."""

    def __init__(self, state_dir: StrPath) -> None:
        self.dir = os.path.join(state_dir, "smf")
        self.path = os.path.join(self.dir, "repository.json")
        self.lock_path = os.path.join(self.dir, "repository.lock")
        # The document this object last wrote, and the version of the file that
        # holds it (read_shared).
        self._written: tuple[FileKey, Doc] | None = None

    def exists(self) -> bool:
        return os.path.exists(self.path)

    def read(self) -> Doc:
        """The whole repository as it is now (no lock needed: writes are atomic)."""
        try:
            with open(self.path, "rb") as f:
                doc: Doc = json.load(f)
        except FileNotFoundError:
            return {"services": {}}
        return doc

    def read_shared(self, key: FileKey | None = None) -> Doc:
        """The repository for a reader that changes nothing: when the file is
        still the version this object last wrote (key, or as stat finds it),
        the document written, not parsed again. The restarter's passes and
        method threads read the repository after each of its own writes, and
        a parse of a boot storm's repository is some milliseconds each time."""
        written = self._written
        if written is not None:
            if key is None:
                try:
                    key = file_key(os.stat(self.path))
                except FileNotFoundError:
                    return {"services": {}}
            if key == written[0]:
                return written[1]
        return self.read()

    @contextmanager
    def edit(self) -> Iterator[Doc]:
        """Read, let the with-block change the document, write it back atomically."""
        os.makedirs(self.dir, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            doc = self.read()
            yield doc
            self._write(doc)
        finally:
            os.close(fd)

    def update(self, change: Callable[[Doc], bool]) -> bool:
        """edit(), but written back only when change(doc) says it changed
        something: one read, under the lock, and no write for nothing."""
        os.makedirs(self.dir, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            doc = self.read()
            changed = change(doc)
            if changed:
                self._write(doc)
            return changed
        finally:
            os.close(fd)

    def _write(self, doc: Doc) -> None:
        import tempfile

        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".repository.", suffix=".tmp")
        try:
            # One dumps() is several times faster than dump() writing piece by piece.
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(doc, separators=(",", ":")))
                f.flush()
                key = file_key(os.fstat(f.fileno()))
            os.replace(tmp, self.path)
            # The writer is done with doc: from now on it is only read.
            self._written = (key, doc)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(tmp)
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
    from devhost.smf.fmri import Fmri

    out = []
    for sname, svc in doc["services"].items():
        out.append(Fmri(sname))
        out.extend(Fmri(sname, iname) for iname in svc["instances"])
    # A service sorts before its instances (an Fmri's instance may be None).
    return sorted(out, key=lambda f: (f.service, f.instance or ""))


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


# --- the svc* commands' read side ----------------------------------------------------------
# svcs and svcprop name entities by plain strings (service, instance or None) instead of
# Fmri objects, so that nothing on their import path loads attrs.


def node_of(doc: Doc, service: str, instance: str | None) -> Doc | None:
    """The service or instance node, or None."""
    svc: Doc | None = doc["services"].get(service)
    if svc is None or instance is None:
        return svc
    inst: Doc | None = svc["instances"].get(instance)
    return inst


def compose_levels(instance_pgs: Pgs, service_pgs: Pgs) -> Pgs:
    """compose() in the order a composed view is iterated: the instance's groups and
    properties first, then what only the service level has. Shares the input dicts."""
    out: Pgs = {}
    for name, pg in instance_pgs.items():
        below = service_pgs.get(name)
        props = dict(pg["props"])
        if below is not None and below["type"] == pg["type"]:
            for pname, prop in below["props"].items():
                props.setdefault(pname, prop)
        out[name] = {**pg, "props": props}
    for name, pg in service_pgs.items():
        out.setdefault(name, pg)
    return out


def current_view_of(doc: Doc, service: str, instance: str | None) -> Pgs:
    """The composed current properties (svcprop -c; also what libscf composes when an
    instance has no running snapshot). A service's view is its own groups."""
    svc = doc["services"][service]
    if instance is None:
        pgs: Pgs = svc["pgs"]
        return pgs
    return compose_levels(svc["instances"][instance]["pgs"], svc["pgs"])


def snapshot_view_of(doc: Doc, service: str, instance: str, snapshot: str) -> Pgs | None:
    """The composed view of a named snapshot, or None when the instance has none."""
    snap = doc["services"][service]["instances"][instance]["snapshots"].get(snapshot)
    if snap is None:
        return None
    return compose_levels(snap["instance"], snap["service"])


# --- FMRI operands, as libscf's scf_walk_fmri() resolves them -------------------------------

_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_IDENT_REST = _LETTERS | frozenset("0123456789-_")


def _is_ident(text: str, allow_dot: bool) -> bool:
    if not text or text[0] not in _LETTERS:
        return False
    rest = _IDENT_REST | {"."} if allow_dot else _IDENT_REST
    return all(c in rest for c in text[1:])


def valid_name(name: str, *, path: bool = False, domain: bool = True) -> bool:
    """libuutil's uu_check_name(): identifiers start with a letter; a DOMAIN name may
    carry a `vendor,` prefix (dots allowed there); a PATH name is /-separated."""
    for component in name.split("/") if path else [name]:
        if domain and "," in component:
            vendor, _, component = component.partition(",")
            if not _is_ident(vendor, allow_dot=True):
                return False
        if not _is_ident(component, allow_dot=False):
            return False
    return True


class ParsedFmri(NamedTuple):
    scope: str
    service: str | None
    instance: str | None
    pg: str | None
    prop: str | None


PG_PREFIX = "/:properties/"


def parse_svc_fmri(text: str) -> ParsedFmri | None:
    """scf_parse_svc_fmri(): `[svc:][//scope/][/]service[:instance][/:properties/pg[/prop]]`;
    None when a component is not a valid name."""
    s = text.removeprefix("svc:")
    scope = "localhost"
    if s.startswith("//"):
        s = s[2:]
        cut = s.find("/")
        scope, s = (s, "") if cut < 0 else (s[:cut], s[cut + 1 :])
        scope = scope.removesuffix("@localhost") or "localhost"
        if not valid_name(scope, domain=False):
            return None
    service = instance = pg = prop = None
    if s:
        s = s.removeprefix("/")
        service = s
    pg_at = s.find(PG_PREFIX)
    colon = s.find(":")
    rest: str | None = None
    if colon >= 0 and (pg_at < 0 or colon < pg_at):
        if service is not None:
            service = s[:colon]
        s = s[colon + 1 :]
        instance = s
        pg_at = s.find(PG_PREFIX)
    if pg_at >= 0:
        if instance is not None:
            instance = s[:pg_at]
        elif service is not None:
            service = s[:pg_at]
        rest = s[pg_at + len(PG_PREFIX) :]
        pg, slash, after = rest.partition("/")
        prop = after if slash else None
    if service is not None and not valid_name(service, path=True):
        return None
    for name in (instance, pg, prop):
        if name is not None and not valid_name(name):
            return None
    return ParsedFmri(scope, service, instance, pg, prop)


def canonical_fmri(parsed: ParsedFmri) -> str:
    out = f"svc:/{parsed.service}"
    if parsed.instance is not None:
        out += f":{parsed.instance}"
    if parsed.pg is not None:
        out += f"{PG_PREFIX}{parsed.pg}"
    if parsed.prop is not None:
        out += f"/{parsed.prop}"
    return out


class Walked(NamedTuple):
    """One entity an operand selected: a service, an instance, or (with properties=True)
    a property group or property named by a full FMRI."""

    fmri: str
    service: str
    instance: str | None
    pg: str | None = None
    prop: str | None = None


class Walk(NamedTuple):
    matches: list[Walked]
    errors: list[str]  # libscf's messages, without the command-name prefix
    matched: int  # distinct entities matched (svcprop switches to full FMRIs when > 1)


class _Pattern:
    def __init__(self, arg: str) -> None:
        self.arg = arg
        self.kind = "exact"  # or "glob", "partial"
        self.matches: list[str] = []  # newest first, as libscf prepends them


def _exact_keys(
    doc: Doc, arg: str, *, services: bool, noinstance: bool, properties: bool
) -> list[str] | None:
    """What a complete FMRI operand names, or None when it is not one (libscf then treats
    it as a glob or an abbreviation)."""
    parsed = parse_svc_fmri(arg)
    if parsed is None or parsed.service is None or parsed.scope != "localhost":
        return None
    svc = doc["services"].get(parsed.service)
    if svc is None:
        return None
    if parsed.pg is not None or parsed.prop is not None:
        if not properties or parsed.pg is None:
            return None
        owner = svc if parsed.instance is None else svc["instances"].get(parsed.instance)
        group = None if owner is None else owner["pgs"].get(parsed.pg)
        if group is None or (parsed.prop is not None and parsed.prop not in group["props"]):
            return None
        return [canonical_fmri(parsed)]
    if parsed.instance is not None:
        if noinstance or parsed.instance not in svc["instances"]:
            return None
        return [f"svc:/{parsed.service}:{parsed.instance}"]
    if services:
        return [f"svc:/{parsed.service}"]
    if noinstance:
        return None
    return [f"svc:/{parsed.service}:{name}" for name in svc["instances"]]


def _pattern_matches(pattern: _Pattern, fmri: str) -> bool:
    if pattern.kind == "glob":
        import fnmatch

        return fnmatch.fnmatchcase(fmri, pattern.arg)
    if pattern.kind != "partial":
        return False
    # An abbreviation must start on a component boundary and end at the end of the
    # service or instance name; libscf looks only at its first occurrence.
    at = fmri.find(pattern.arg)
    if at < 0:
        return False
    if at > 0 and fmri[at - 1] not in "/:" and fmri[at] != ":":
        return False
    end = at + len(pattern.arg)
    if end != len(fmri) and fmri[end] != ":" and fmri[end - 1] != ":":
        return False
    return end > 4  # a bare `svc:` or `lrc:` matches nothing


def _names_an_instance(pattern: _Pattern) -> bool:
    """A full instance FMRI (`svc:/service:instance`, no glob), not an abbreviation."""
    if pattern.kind != "partial" or not pattern.arg.startswith("svc:"):
        return False
    parsed = parse_svc_fmri(pattern.arg)
    return (
        parsed is not None
        and parsed.service is not None
        and parsed.instance is not None
        and parsed.pg is None
    )


def _add_match(pattern: _Pattern, fmri: str, explicit: bool) -> None:
    if explicit:
        # An instance displaces its own service (svcprop wants the instances).
        pattern.matches = [m for m in pattern.matches if not fmri.startswith(m + ":")]
    elif any(fmri.startswith(m + ":") for m in pattern.matches):
        return  # the service already matched; its instances add nothing
    pattern.matches.insert(0, fmri)


def walk(
    doc: Doc,
    operands: Iterable[str],
    *,
    multiple: bool = True,
    services: bool = False,
    noinstance: bool = False,
    explicit: bool = False,
    properties: bool = False,
    legacy: bool = False,
    missing_instance: bool = False,
) -> Walk:
    """scf_walk_fmri(): resolve operands (full FMRIs, globs, abbreviations) to entities in
    the order libscf calls back, with its error messages. No operands: every instance (and
    every service, with services=True). missing_instance (svcs): a full instance FMRI
    that names nothing is reported as `Instance "FMRI" does not exist.` (illumos.md
    section 3) rather than as a pattern that matched nothing."""
    operands = list(operands)
    patterns = [_Pattern(arg) for arg in operands]
    searching = not operands
    for pattern in patterns:
        keys = _exact_keys(
            doc, pattern.arg, services=services, noinstance=noinstance, properties=properties
        )
        if keys is not None:
            for key in keys:
                _add_match(pattern, key, explicit)
            continue
        searching = True
        if any(c in pattern.arg for c in "*?["):
            pattern.kind = "glob"
            if not (pattern.arg.startswith("*") or pattern.arg[3:4] == ":"):
                pattern.arg = "svc:/" + pattern.arg
        else:
            pattern.kind = "partial"

    found: list[Walked] = []
    if searching:
        for sname, svc in doc["services"].items():
            sfmri = f"svc:/{sname}"
            if services:
                if not operands:
                    found.append(Walked(sfmri, sname, None))
                    continue
                for pattern in patterns:
                    if _pattern_matches(pattern, sfmri):
                        _add_match(pattern, sfmri, explicit)
            if noinstance:
                continue
            for iname in svc["instances"]:
                ifmri = f"{sfmri}:{iname}"
                if not operands:
                    found.append(Walked(ifmri, sname, iname))
                    continue
                for pattern in patterns:
                    if _pattern_matches(pattern, ifmri):
                        _add_match(pattern, ifmri, explicit)
    if not operands:
        return Walk(found, [], 0)

    errors: list[str] = []
    usable: list[_Pattern] = []
    for pattern in patterns:
        if not pattern.matches:
            if not legacy and pattern.arg.startswith("lrc:/"):
                what = "Operation not supported for legacy service '{}'"
            elif missing_instance and _names_an_instance(pattern):
                what = 'Instance "{}" does not exist.'
            elif properties:
                what = "Pattern '{}' doesn't match any entities"
            elif noinstance:
                what = "Pattern '{}' doesn't match any services"
            elif services:
                what = "Pattern '{}' doesn't match any instances or services"
            else:
                what = "Pattern '{}' doesn't match any instances"
            errors.append(what.format(pattern.arg))
        elif not multiple and len(pattern.matches) > 1:
            listed = "".join(f"\n\t{m}" for m in pattern.matches)
            errors.append(f"Pattern '{pattern.arg}' matches multiple instances:{listed}")
        else:
            usable.append(pattern)

    seen: set[str] = set()
    for pattern in usable:
        for key in pattern.matches:
            if key in seen:
                continue
            seen.add(key)
            parsed = parse_svc_fmri(key)
            assert parsed is not None and parsed.service is not None
            found.append(Walked(key, parsed.service, parsed.instance, parsed.pg, parsed.prop))
    return Walk(found, errors, len(seen))
