"""Service bundle manifests: validate, read, import into the repository, export.

Mirrors illumos svccfg: svccfg_xml.c turns the XML into property groups (what goes
where, names, types, value checks and messages), svccfg_libscf.c imports them (new
entities, the upgrade of existing ones against their last-import snapshot, dependents,
snapshots, refresh) and exports a service back. Stability elements and templates other
than common_name/description are read and dropped.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import attrs

from devhost.smf import repository as repo
from devhost.smf.fmri import file_path
from devhost.smf.repository import Doc, Pgs

DTD_SYSTEM_ID = "/usr/share/lib/xml/dtd/service_bundle.dtd.1"
MHASH_SERVICE = "smf/manifest"
MAX_NAME = 119  # scf_limit(SCF_LIMIT_MAX_NAME_LENGTH)

VALUE_TYPES = repo.PROPERTY_TYPES
_U64 = 1 << 64


class ManifestError(Exception):
    """A failed import, validation or export; `message` is what svccfg prints after its
    prefix, `details` lines (e.g. from the XML validator) come before it, unprefixed."""

    def __init__(self, message: str, details: list[str] | None = None, fatal: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.fatal = fatal  # svccfg_xml.c's uu_die(): no file/line prefix, ends the run


def _die(message: str) -> ManifestError:
    return ManifestError(message, fatal=True)


# --- the bundle, as svccfg's internal representation ---------------------------------


@attrs.define
class Prop:
    type: str
    values: list[str]

    def stored(self) -> dict[str, Any]:
        return {"type": self.type, "values": list(self.values)}


@attrs.define
class Pg:
    name: str
    type: str
    props: dict[str, Prop] = attrs.field(factory=dict)
    delete: bool = False
    target: str | None = None  # for a dependent: the entity the dependency goes in

    def add(self, name: str, prop: Prop) -> None:
        if name in self.props:
            raise ManifestError(
                f"Multiple definitions for property {name} in property group {self.name}."
            )
        self.props[name] = prop

    def stored(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "nonpersistent": False,
            "props": {n: p.stored() for n, p in self.props.items()},
        }


@attrs.define
class Entity:
    name: str
    fmri: str
    pgs: dict[str, Pg] = attrs.field(factory=dict)
    dependents: list[Pg] = attrs.field(factory=list)
    enabled: bool | None = None  # instances

    def pg(self, name: str, pg_type: str) -> Pg:
        """internal_pgroup_find_or_create()."""
        if name not in self.pgs:
            self.pgs[name] = Pg(name, pg_type)
        return self.pgs[name]


@attrs.define
class Service(Entity):
    type: str = "service"
    version: int = 0
    instances: dict[str, Entity] = attrs.field(factory=dict)


@attrs.define
class Bundle:
    name: str
    type: str
    services: list[Service] = attrs.field(factory=list)


# --- values ----------------------------------------------------------------------------


def _c_strtoull(text: str) -> int | None:
    """strtoull(text, &end, 10) with the whole string consumed; a leading minus wraps."""
    s = text.lstrip(" \t\n\r\f\v")
    sign = 1
    if s[:1] in "+-" and s:
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if not s.isdigit() or not s.isascii():
        return None
    value = int(s)
    if value >= _U64:
        return None
    return (sign * value) % _U64


def check_value(ptype: str, text: str) -> str | None:
    """scf_value_set_from_string(): the canonical text of a value, None if it is not a
    value of that type."""
    if ptype == "count":
        if not text.isascii() or not text.isdigit():
            return None
        value = int(text)
        return str(value) if value < _U64 else None
    if ptype == "integer":
        body = text[1:] if text[:1] in "+-" else text
        if not body.isascii() or not body.isdigit():
            return None
        value = int(text)
        return str(value) if -(1 << 63) <= value < (1 << 63) else None
    if ptype == "boolean":
        if text in ("true", "1"):
            return "true"
        if text in ("false", "0"):
            return "false"
        return None
    if ptype == "time":
        sec, dot, frac = text.partition(".")
        body = sec[1:] if sec[:1] == "-" else sec
        if not body.isdigit() or (dot and (not frac.isdigit() or len(frac) > 9)):
            return None
        return text
    if ptype == "opaque":
        try:
            bytes.fromhex(text)
        except ValueError:
            return None
        return text.lower()
    if ptype == "fmri":
        return text if _valid_fmri_value(text) else None
    if ptype in ("host", "hostname", "net_address", "net_address_v4", "net_address_v6"):
        return text if _valid_host_value(ptype, text) else None
    if ptype == "uri":
        return text if text and " " not in text else None
    if ptype in ("astring", "ustring"):
        return text if "\0" not in text else None
    return None


def _valid_fmri_value(text: str) -> bool:
    if text.startswith("file:"):
        path = file_path(text)
        return path is not None and len(path) > 1
    parsed = repo.parse_svc_fmri(text)
    return parsed is not None and parsed.service is not None


def _valid_host_value(ptype: str, text: str) -> bool:
    import ipaddress

    def is_v4() -> bool:
        try:
            ipaddress.IPv4Network(text, strict=False)
        except ValueError:
            return False
        return True

    def is_v6() -> bool:
        try:
            ipaddress.IPv6Network(text, strict=False)
        except ValueError:
            return False
        return True

    def is_hostname() -> bool:
        labels = text.rstrip(".").split(".")
        return bool(text) and all(
            0 < len(label) < 64 and label.replace("-", "").isalnum() and label.isascii()
            for label in labels
        )

    if ptype == "net_address_v4":
        return is_v4()
    if ptype == "net_address_v6":
        return is_v6()
    if ptype == "net_address":
        return is_v4() or is_v6()
    if ptype == "hostname":
        return is_hostname()
    return is_v4() or is_v6() or is_hostname()


# --- validation ---------------------------------------------------------------------------


def dtd_path() -> Path:
    """The service bundle DTD: SVCCFG_DTD (as svccfg honours it), else the shared copy
    next to the checkout, else DEVHOST_DTD."""
    override = os.environ.get("SVCCFG_DTD")
    if override:
        return Path(override)
    shared = Path(__file__).resolve().parents[3] / "shared" / "illumos" / "service_bundle.dtd.1"
    if shared.exists():
        return shared
    env = os.environ.get("DEVHOST_DTD")
    if env:
        return Path(env)
    raise ManifestError(f'Could not parse DTD "{DTD_SYSTEM_ID}".')


@contextmanager
def _catalog(dtd: Path) -> Iterator[str]:
    """An XML catalog that maps the illumos DTD path to the local copy, so the
    validator neither warns nor fails over the missing /usr/share path."""
    with tempfile.NamedTemporaryFile("w", suffix=".xml", prefix="svccfg-catalog-") as f:
        f.write(
            '<?xml version="1.0"?>\n'
            '<catalog xmlns="urn:oasis:names:tc:entity:xmlns:xml:catalog">\n'
            f'  <system systemId="{DTD_SYSTEM_ID}" uri="{dtd.resolve().as_uri()}"/>\n'
            "</catalog>\n"
        )
        f.flush()
        yield f.name


def _xmllint(path: str, dtd: Path | None) -> tuple[int, list[str]]:
    args = ["xmllint", "--noout"]
    if dtd is not None:
        args += ["--dtdvalid", str(dtd)]
    with _catalog(dtd or dtd_path()) as catalog:
        env = {**os.environ, "XML_CATALOG_FILES": catalog}
        try:
            done = subprocess.run([*args, path], capture_output=True, text=True, env=env)
        except FileNotFoundError as e:
            raise ManifestError("Could not run xmllint to validate the document.") from e
    lines = [
        line
        for line in done.stderr.splitlines()
        if not (line.startswith("Document ") and " does not validate against " in line)
    ]
    return done.returncode, lines


def read_bundle(path: str, expect: str = "manifest") -> Bundle:
    """lxml_get_bundle_file(): parse and validate a service bundle file."""
    if not os.access(path, os.R_OK):
        raise ManifestError(f"unable to open file: {os.strerror(_errno_of(path))}")
    validate = os.environ.get("SVCCFG_NOVALIDATE") is None
    dtd = dtd_path() if validate else None
    code, messages = _xmllint(path, dtd)
    if code == 1 or code not in (0, 3, 4):
        raise ManifestError("couldn't parse document", messages)
    with open(path, "rb") as f:
        text = f.read()
    system_id = _doctype_system_id(text)
    if system_id is None:
        raise ManifestError("document has no DTD")
    if system_id != DTD_SYSTEM_ID:
        raise ManifestError("document DTD unknown; not service bundle?")
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as e:
        raise ManifestError("couldn't parse document") from e
    if root.tag != "service_bundle":
        raise ManifestError("document is not a service bundle")
    if code != 0:
        raise ManifestError("Document is not valid.", messages)
    bundle = Bundle(root.get("name", ""), root.get("type", ""))
    _read_bundle_element(bundle, root, expect, top=True)
    return bundle


def _errno_of(path: str) -> int:
    try:
        with open(path, "rb"):
            return 0
    except OSError as e:
        return e.errno or 0


def _doctype_system_id(text: bytes) -> str | None:
    import re

    head = text.split(b"<service_bundle", 1)[0]
    m = re.search(rb"<!DOCTYPE\s+\S+\s+SYSTEM\s+([\"'])(.*?)\1", head)
    return None if m is None else m.group(2).decode()


# --- reading (svccfg_xml.c) ----------------------------------------------------------------

_XI_INCLUDE = "{http://www.w3.org/2001/XInclude}include"


def _read_bundle_element(bundle: Bundle, node: ElementTree.Element, expect: str, top: bool) -> None:
    kind = node.get("type", "")
    if not top and kind != bundle.type:
        raise ManifestError("included bundle of different type.")
    if kind != expect:
        raise ManifestError(f"document is not a {expect}.")
    if not node.get("name"):
        raise ManifestError("service bundle lacks name attribute")
    for child in node:
        if child.tag == "service_bundle":
            _read_bundle_element(bundle, child, expect, top=False)
        elif child.tag == "service":
            bundle.services.append(_read_service(child))


def _read_service(node: ElementTree.Element) -> Service:
    name = node.get("name", "")
    parsed = repo.parse_svc_fmri("svc:/" + name)
    if parsed is None or parsed.instance is not None or parsed.pg is not None:
        raise ManifestError(f'invalid value "{name}": should be a bare service name')
    svc = Service(name, f"svc:/{name}", type=node.get("type", "service"))
    try:
        svc.version = int(node.get("version", "0").strip() or 0)
    except ValueError:
        svc.version = 0
    for child in node:
        tag = child.tag
        if tag == "instance":
            inst = _read_instance(svc, child)
            svc.instances[inst.name] = inst
        elif tag == "create_default_instance":
            inst = Entity("default", f"{svc.fmri}:default")
            general = inst.pg("general", "framework")
            general.add("enabled", Prop("boolean", [_bool(child.get("enabled", "false"))]))
            package = os.environ.get("PKGINST")
            if package is not None:
                general.add("package", Prop("astring", [package]))
            svc.instances["default"] = inst
        elif tag == "single_instance":
            svc.pg("general", "framework").add("single_instance", Prop("boolean", ["true"]))
        elif tag == "template":
            _read_template(svc, child)
        elif tag in ("stability", "notification_parameters"):
            continue  # not kept by devhost
        else:
            _read_entity_child(svc, child, "service")
    return svc


def _read_instance(svc: Service, node: ElementTree.Element) -> Entity:
    name = node.get("name", "")
    inst = Entity(name, f"{svc.fmri}:{name}")
    enabled = node.get("enabled")
    if enabled is None:
        raise ManifestError(f'Instance "{name}" missing attribute "enabled".')
    if enabled not in ("true", "false"):
        raise ManifestError("Invalid enabled value")
    inst.enabled = enabled == "true"
    inst.pg("general", "framework").add("enabled", Prop("boolean", [enabled]))
    for child in node:
        if child.tag == "template":
            _read_template(inst, child)
        elif child.tag == "notification_parameters":
            continue
        else:
            _read_entity_child(inst, child, "instance")
    return inst


def _read_entity_child(entity: Entity, node: ElementTree.Element, kind: str) -> None:
    tag = node.tag
    if tag == "restarter":
        fmri = next((c.get("value", "") for c in node if c.tag == "service_fmri"), "")
        entity.pg("general", "framework").add("restarter", Prop("fmri", [fmri]))
    elif tag == "dependency":
        _read_dependency(entity, node)
    elif tag == "dependent":
        _read_dependent(entity, node)
    elif tag == "method_context":
        _read_method_context(entity.pg("method_context", "framework"), node)
    elif tag == "exec_method":
        _read_exec_method(entity, node)
    elif tag == "property_group":
        _read_pgroup(entity, node)
    else:
        raise ManifestError(f'illegal element "{tag}" on {kind} "{entity.name}"')


def _bool(text: str) -> str:
    if text in ("true", "false"):
        return text
    raise _die(f'illegal boolean value "{text}"')


def _make_value(ptype: str, text: str) -> str:
    """lxml_store_value(): counts and integers as strtoull/strtoll read them."""
    if ptype == "boolean":
        return _bool(text)
    if ptype == "count":
        value = _c_strtoull(text)
        if value is None:
            raise _die(f'illegal value "{text}" for count (Illegal character)')
        return str(value)
    if ptype == "integer":
        try:
            number = int(text.strip())
        except ValueError:
            raise _die(f'illegal value "{text}" for integer (Illegal character)') from None
        if not -(1 << 63) <= number < (1 << 63):
            raise _die(f'illegal value "{text}" for integer (Result too large)')
        return str(number)
    checked = check_value(ptype, text)
    if checked is None:
        raise _die(f'illegal value "{text}" for {ptype} (Invalid argument)')
    return checked


def _read_propval(pg: Pg, node: ElementTree.Element) -> None:
    name = node.get("name") or ""
    if not name:
        raise _die(f"property name missing in group '{pg.name}'")
    ptype = node.get("type") or ""
    if not ptype:
        raise _die(f"property type missing for property '{pg.name}/{name}'")
    if ptype not in VALUE_TYPES:
        raise _die(f"property type invalid for property '{pg.name}/{name}'")
    value = node.get("value")
    if value is None:
        raise _die(f"property value missing for property '{pg.name}/{name}'")
    pg.add(name, Prop(ptype, [_make_value(ptype, value)]))


def _read_property(pg: Pg, node: ElementTree.Element) -> None:
    name = node.get("name") or ""
    if not name:
        raise _die(f"property name missing in group '{pg.name}'")
    ptype = node.get("type") or ""
    if not ptype:
        raise _die(f"property type missing for property '{pg.name}/{name}'")
    if ptype not in VALUE_TYPES:
        raise _die(f"property type invalid for property '{pg.name}/{name}'")
    values: list[str] = []
    for child in node:
        if not child.tag.endswith("_list") or child.tag[: -len("_list")] not in VALUE_TYPES:
            raise _die(f"unknown value list type: {child.tag}")
        if child.tag != f"{ptype}_list":
            raise _die(f"property '{name}' type-to-list mismatch")
        for value_node in child:
            if value_node.tag != "value_node":
                raise _die(f"value list contains illegal element '{value_node.tag}'")
            value = value_node.get("value")
            if value is None:
                raise _die("no value on value node?")
            values.append(_make_value(ptype, value))
    pg.add(name, Prop(ptype, values))


def _read_pg_body(pg: Pg, node: ElementTree.Element, what: str) -> None:
    for child in node:
        _read_pg_child(pg, child, what)


def _read_pg_child(pg: Pg, child: ElementTree.Element, what: str) -> None:
    """A propval, property or stability inside anything stored as a property group."""
    if child.tag == "propval":
        _read_propval(pg, child)
    elif child.tag == "property":
        _read_property(pg, child)
    elif child.tag != "stability":  # stability is not kept by devhost
        raise ManifestError(f'illegal element "{child.tag}" on {what} "{pg.name}"')


def _read_pgroup(entity: Entity, node: ElementTree.Element) -> None:
    pg = entity.pg(node.get("name", ""), node.get("type", ""))
    _read_pg_body(pg, node, "property group")
    pg.delete = node.get("delete") == "true"


def _read_exec_method(entity: Entity, node: ElementTree.Element) -> None:
    pg = entity.pg(node.get("name", ""), "method")
    pg.add("type", Prop("astring", [node.get("type", "")]))
    pg.add("exec", Prop("astring", [node.get("exec", "")]))
    timeout = node.get("timeout_seconds")
    if timeout is not None:
        value = _c_strtoull(timeout)
        if value is None:
            raise _die(f'illegal value "{timeout}" for timeout_seconds (Illegal character)')
        pg.add("timeout_seconds", Prop("count", [str(value)]))
    for child in node:
        if child.tag == "method_context":
            _read_method_context(pg, child)
        else:
            _read_pg_child(pg, child, "execution method")
    pg.delete = node.get("delete") == "true"


def _read_method_context(pg: Pg, node: ElementTree.Element) -> None:
    for attr in ("working_directory", "project", "resource_pool", "security_flags"):
        value = node.get(attr)
        if value is not None:
            pg.add(attr, Prop("astring", [value]))
    for child in node:
        if child.tag == "method_credential":
            pg.add("use_profile", Prop("boolean", ["false"]))
            for attr in ("user", "group", "supp_groups", "privileges", "limit_privileges"):
                value = child.get(attr)
                if value is not None:
                    pg.add(attr, Prop("astring", [value]))
        elif child.tag == "method_profile":
            pg.add("use_profile", Prop("boolean", ["true"]))
            pg.add("profile", Prop("astring", [child.get("name", "")]))
        elif child.tag == "method_environment":
            env: list[str] = []
            for var in child:
                if var.tag != "envvar":
                    raise _die(f'illegal element "{var.tag}" on method environment for "{pg.name}"')
                name, value = var.get("name", ""), var.get("value", "")
                if not name or "=" in name:
                    raise _die(f'Invalid environment variable "{name}".')
                if name.startswith("SMF_"):
                    raise _die(f'Invalid environment variable "{name}"; "SMF_" prefix is reserved.')
                env.append(f"{name}={value}")
            pg.add("environment", Prop("astring", env))
        else:
            raise ManifestError(f"illegal element '{child.tag}' in method context")


def _read_dependency(entity: Entity, node: ElementTree.Element) -> None:
    pg = entity.pg(node.get("name", ""), "dependency")
    pg.add("type", Prop("astring", [node.get("type", "")]))
    pg.add("restart_on", Prop("astring", [node.get("restart_on", "")]))
    pg.add("grouping", Prop("astring", [node.get("grouping", "")]))
    entities = Prop("fmri", [])
    pg.add("entities", entities)
    for child in node:
        if child.tag == "service_fmri":
            value = child.get("value", "")
            if check_value("fmri", value) is None:
                raise _die(f'illegal value "{value}" for fmri (Invalid argument)')
            entities.values.append(value)
        else:
            _read_pg_child(pg, child, "dependency group")
    pg.delete = node.get("delete") == "true"


def _read_dependent(entity: Entity, node: ElementTree.Element) -> None:
    """A dependent is a dependency group the import puts in the other entity, plus a
    `dependents` property here naming it."""
    name = node.get("name", "")
    if name in entity.pgs:
        raise ManifestError(
            f'Property group and dependent of entity {entity.name} have same name "{name}".'
        )
    target = next((c.get("value", "") for c in node if c.tag == "service_fmri"), "")
    pg = Pg(name, "dependency", target=target)
    pg.add("restart_on", Prop("astring", [node.get("restart_on", "")]))
    pg.add("grouping", Prop("astring", [node.get("grouping", "")]))
    pg.add("entities", Prop("fmri", [entity.fmri]))
    pg.add("external", Prop("boolean", ["true"]))  # the do-not-export flag
    for child in node:
        if child.tag == "service_fmri" or child.tag == "stability":
            continue
        if child.tag == "propval":
            _read_propval(pg, child)
        elif child.tag == "property":
            _read_property(pg, child)
        else:
            raise ManifestError(f"unexpected element {child.tag}.")
    if "type" not in pg.props:
        pg.add("type", Prop("astring", ["service"]))
    pg.delete = node.get("delete") == "true"
    entity.dependents.append(pg)
    entity.pg("dependents", "framework").add(name, Prop("fmri", [target]))


def _read_template(entity: Entity, node: ElementTree.Element) -> None:
    """Keep the common name and description (svcs shows the name); drop the rest."""
    for child in node:
        if child.tag in ("common_name", "description"):
            pg = entity.pg(f"tm_{child.tag}", "template")
            for loctext in child:
                lang = loctext.get("{http://www.w3.org/XML/1998/namespace}lang", "")
                text = " ".join((loctext.text or "").split())
                pg.props[lang] = Prop("ustring", [text])


# --- import (svccfg_libscf.c lscf_bundle_import) -----------------------------------------


@attrs.define
class ImportResult:
    refresh: list[tuple[str, str]]  # instances to refresh, (service, instance)
    messages: list[str]  # -v and warnings, for svccfg to print


def manifest_propname(path: str) -> str:
    """mhash_filename_to_propname(): the property name for a manifest's real path."""
    out = os.path.realpath(path).lstrip("/")
    if len(out) > MAX_NAME:
        piece = (MAX_NAME - 3) // 2
        out = out[:piece] + "__" + out[len(out) - piece :]
    chars = list(out)
    if chars and not chars[0].isalpha():
        chars[0] = "A"
    return (
        "".join([chars[0]] + [c if c.isalnum() or c in "_-" else "_" for c in chars[1:]])
        if chars
        else "A"
    )


def manifest_hash(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


def is_unchanged(doc: Doc, path: str) -> bool:
    """Whether this manifest was imported before and has not changed since (svccfg then
    skips it, as find_manifests(CHECKHASH) does)."""
    svc = doc["services"].get(MHASH_SERVICE)
    if svc is None:
        return False
    values = repo.get_values(svc["pgs"], manifest_propname(path), "md5sum")
    return values is not None and values == [manifest_hash(path)]


def store_hash(doc: Doc, path: str) -> None:
    svc = doc["services"].setdefault(MHASH_SERVICE, {"pgs": {}, "instances": {}})
    name = manifest_propname(path)
    pg = svc["pgs"].setdefault(name, repo.new_pg("framework"))
    pg["props"]["md5sum"] = {"type": "opaque", "values": [manifest_hash(path)]}
    pg["props"]["manifestfile"] = {"type": "astring", "values": [os.path.realpath(path)]}


def delete_hash(doc: Doc, path: str) -> bool:
    svc = doc["services"].get(MHASH_SERVICE)
    if svc is None:
        return False
    return svc["pgs"].pop(manifest_propname(path), None) is not None


def import_bundle(doc: Doc, bundle: Bundle, path: str, *, verbose: bool) -> ImportResult:
    """Apply a manifest to the repository document: create what is new, upgrade what
    exists (keeping administrator changes made since the last import), place
    dependents, and take the previous/initial/last-import snapshots."""
    result = ImportResult([], [])
    say = result.messages.append
    for svc in bundle.services:
        existing = doc["services"].get(svc.name)
        fresh = existing is None
        node = doc["services"].setdefault(svc.name, {"pgs": {}, "instances": {}})
        if not fresh:
            for iname in node["instances"]:
                if verbose:
                    say(f'Taking "previous" snapshot for svc:/{svc.name}:{iname}.')
                _snapshot(doc, svc.name, iname, "previous")
        if fresh or "manifestfiles" in node["pgs"]:
            svc.pgs.setdefault("manifestfiles", Pg("manifestfiles", "framework"))
            mf = svc.pgs["manifestfiles"]
            mf.props[manifest_propname(path)] = Prop("astring", [os.path.realpath(path)])
        if fresh:
            _create_pgs(node["pgs"], svc.pgs, general_last=False)
        else:
            last = _any_last_import_service_level(node)
            if last is None and _any_general_enabled(node):
                pass  # an older repository: only take last-import snapshots below
            else:
                _upgrade_pgs(node["pgs"], last, svc.pgs, keep=())
        for dependent in svc.dependents:
            _place_dependent(doc, dependent, result)
        for inst in svc.instances.values():
            inode = node["instances"].get(inst.name)
            if inode is None:
                inode = node["instances"].setdefault(inst.name, {"pgs": {}, "snapshots": {}})
                if not fresh:
                    _snapshot(doc, svc.name, inst.name, "previous")
                _create_pgs(inode["pgs"], inst.pgs, general_last=True)
                if verbose:
                    say(f'Taking "initial" snapshot for {inst.fmri}.')
                _snapshot(doc, svc.name, inst.name, "initial")
            else:
                last_snap = inode["snapshots"].get("last-import")
                last = None if last_snap is None else last_snap["instance"]
                # The administrator owns general/enabled and general/restarter.
                _upgrade_pgs(
                    inode["pgs"],
                    last,
                    inst.pgs,
                    keep=(("general", "enabled"), ("general", "restarter")),
                )
            for dependent in inst.dependents:
                _place_dependent(doc, dependent, result)
            if verbose:
                say(f'Taking "last-import" snapshot for {inst.fmri}.')
            _snapshot(doc, svc.name, inst.name, "last-import")
            result.refresh.append((svc.name, inst.name))
    return result


def _snapshot(doc: Doc, service: str, instance: str, name: str) -> None:
    from devhost.smf.fmri import Fmri

    repo.take_snapshot(doc, Fmri(service, instance), name)


def _create_pgs(target: Pgs, pgs: dict[str, Pg], *, general_last: bool) -> None:
    """Create groups in manifest order; an instance's general group goes last, so that
    enabling it is the final change (SCI_GENERALLAST)."""
    ordered = list(pgs.values())
    if general_last:
        ordered.sort(key=lambda pg: pg.name == "general")
    for pg in ordered:
        if pg.delete:
            target.pop(pg.name, None)
            continue
        target[pg.name] = pg.stored()


def _any_last_import_service_level(node: Doc) -> Pgs | None:
    for inode in node["instances"].values():
        snap = inode["snapshots"].get("last-import")
        if snap is not None:
            pgs: Pgs = snap["service"]
            return pgs
    return None


def _any_general_enabled(node: Doc) -> bool:
    return any(
        repo.get_values(inode["pgs"], "general", "enabled") is not None
        for inode in node["instances"].values()
    )


def _upgrade_pgs(
    current: Pgs, last: Pgs | None, new: dict[str, Pg], keep: tuple[tuple[str, str], ...]
) -> None:
    """Bring an existing entity up to a new manifest. With a last-import snapshot this
    is a three-way merge: a property the administrator has not touched since the last
    import takes the new value; one they changed or deleted stays as they left it.
    Without one, the manifest's properties overwrite (svccfg's SCI_FORCE)."""
    for name, pg in new.items():
        if pg.delete:
            current.pop(name, None)
            continue
        cur = current.get(name)
        old = None if last is None else last.get(name)
        if cur is None:
            if old is None:
                current[name] = pg.stored()
            continue  # deleted by the administrator since the last import
        if cur["type"] != pg.type:
            cur["type"] = pg.type
        for pname, prop in pg.props.items():
            if (name, pname) in keep and pname in cur["props"]:
                continue
            have = cur["props"].get(pname)
            was = None if old is None else old["props"].get(pname)
            if last is None or (have is None and was is None) or have == was:
                cur["props"][pname] = prop.stored()
        if old is not None:
            for pname in list(old["props"]):
                if pname not in pg.props and cur["props"].get(pname) == old["props"][pname]:
                    del cur["props"][pname]
    if last is not None:
        for name, old in last.items():
            if name not in new and current.get(name) == old:
                del current[name]


def _place_dependent(doc: Doc, dependent: Pg, result: ImportResult) -> None:
    """lscf_dependent_import(): put the dependency group in the entity it names,
    creating that entity when it does not exist yet."""
    target = dependent.target or ""
    parsed = repo.parse_svc_fmri(target)
    if parsed is None or parsed.service is None or parsed.pg is not None:
        result.messages.append(f'Invalid FMRI "{target}" in dependent "{dependent.name}".')
        return
    svc = doc["services"].setdefault(parsed.service, {"pgs": {}, "instances": {}})
    node = svc
    if parsed.instance is not None:
        node = svc["instances"].setdefault(parsed.instance, {"pgs": {}, "snapshots": {}})
        result.refresh.append((parsed.service, parsed.instance))
    if dependent.delete:
        node["pgs"].pop(dependent.name, None)
    else:
        node["pgs"][dependent.name] = dependent.stored()


# --- export (svccfg_libscf.c export_service) ---------------------------------------------


class Node:
    """Just enough of an XML element to write what libxml writes."""

    def __init__(self, tag: str, attrs: dict[str, str] | None = None, text: str | None = None):
        self.tag = tag
        self.attrs = dict(attrs or {})
        self.text = text
        self.children: list[Node] = []

    def add(self, child: Node | None) -> Node | None:
        if child is not None:
            self.children.append(child)
        return child

    def render(self, depth: int, out: list[str]) -> None:
        pad = "  " * depth
        attrs = "".join(f' {k}="{_escape_attr(v)}"' for k, v in self.attrs.items())
        if self.text is not None:
            out.append(f"{pad}<{self.tag}{attrs}>{_escape_text(self.text)}</{self.tag}>\n")
        elif not self.children:
            out.append(f"{pad}<{self.tag}{attrs}/>\n")
        else:
            out.append(f"{pad}<{self.tag}{attrs}>\n")
            for child in self.children:
                child.render(depth + 1, out)
            out.append(f"{pad}</{self.tag}>\n")


def _escape_attr(value: str) -> str:
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
        .replace("\t", "&#9;")
    )


def _escape_text(value: str) -> str:
    return (
        value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    )


def write_bundle(root: Node) -> str:
    """libxml's formatted dump, then svccfg's swap of every " for ' (and ' for &apos;)."""
    out = [
        '<?xml version="1.0"?>\n',
        f'<!DOCTYPE service_bundle SYSTEM "{DTD_SYSTEM_ID}">\n',
    ]
    root.render(0, out)
    return "".join(out).replace("'", "&apos;").replace('"', "'")


@attrs.define
class _Elts:
    """The children of a service or instance element, kept apart to come out in DTD order."""

    create_default_instance: Node | None = None
    single_instance: Node | None = None
    restarter: Node | None = None
    dependencies: list[Node] = attrs.field(factory=list)
    dependents: list[Node] = attrs.field(factory=list)
    method_context: Node | None = None
    exec_methods: list[Node] = attrs.field(factory=list)
    property_groups: list[Node] = attrs.field(factory=list)
    instances: list[Node] = attrs.field(factory=list)
    stability: Node | None = None
    common_name: Node | None = None
    description: Node | None = None

    def template(self) -> Node | None:
        if self.common_name is None:
            return None
        node = Node("template")
        node.add(self.common_name)
        node.add(self.description)
        return node


def _single(pg: Any, name: str) -> str | None:
    prop = pg["props"].get(name)
    if prop is None or len(prop["values"]) != 1:
        return None
    value: str = prop["values"][0]
    return value


def _export_property(name: str, prop: Any, propvals: list[Node], properties: list[Node]) -> None:
    if len(prop["values"]) == 1:
        propvals.append(
            Node("propval", {"name": name, "type": prop["type"], "value": prop["values"][0]})
        )
        return
    node = Node("property", {"name": name, "type": prop["type"]})
    if prop["values"]:
        values = node.add(Node(f"{prop['type']}_list"))
        assert values is not None
        for value in prop["values"]:
            values.add(Node("value_node", {"value": value}))
    properties.append(node)


def _pg_node(tag: str, attrs: dict[str, str], pg: Any, skip: Callable[[str], bool]) -> Node:
    node = Node(tag, attrs)
    stability: Node | None = None
    propvals: list[Node] = []
    properties: list[Node] = []
    for name, prop in pg["props"].items():
        if skip(name):
            continue
        if name == "stability" and len(prop["values"]) == 1:
            stability = Node("stability", {"value": prop["values"][0]})
            continue
        _export_property(name, prop, propvals, properties)
    node.add(stability)
    node.children += propvals + properties
    return node


def _export_pg(name: str, pg: Any, elts: _Elts) -> None:
    elts.property_groups.append(
        _pg_node("property_group", {"name": name, "type": pg["type"]}, pg, lambda n: False)
    )


def _export_dependency(name: str, pg: Any, elts: _Elts) -> None:
    if _single(pg, "external") == "true" and pg["props"]["external"]["type"] == "boolean":
        return  # put here by another entity's dependent
    attrs: dict[str, str] = {"name": name}
    for prop, attr in (("grouping", "grouping"), ("restart_on", "restart_on"), ("type", "type")):
        value = _single(pg, prop)
        if value is None:
            _export_pg(name, pg, elts)
            return
        attrs[attr] = value
    entities = pg["props"].get("entities")
    if entities is None or entities["type"] != "fmri":
        _export_pg(name, pg, elts)
        return
    special = ("grouping", "restart_on", "type", "entities")
    node = _pg_node("dependency", attrs, pg, lambda n: n in special)
    node.children[:0] = [Node("service_fmri", {"value": v}) for v in entities["values"]]
    elts.dependencies.append(node)


_CONTEXT_ATTRS = ("working_directory", "project", "resource_pool", "security_flags")
_CREDENTIAL_ATTRS = ("user", "group", "supp_groups", "privileges", "limit_privileges")


def _environment(pg: Any) -> Node | None:
    prop = pg["props"].get("environment")
    if prop is None:
        return None
    env = Node("method_environment")
    for value in prop["values"]:
        name, eq, rest = value.partition("=")
        if not eq or not name or name.startswith("SMF_"):
            continue
        env.add(Node("envvar", {"name": name, "value": rest}))
    return env if env.children else None


def _export_method(name: str, pg: Any, elts: _Elts) -> None:
    attrs = {"name": name}
    for prop in ("type", "exec"):
        value = _single(pg, prop)
        if value is None:
            _export_pg(name, pg, elts)
            return
        attrs[prop] = value
    timeout = pg["props"].get("timeout_seconds")
    if timeout is None or timeout["type"] != "count" or len(timeout["values"]) != 1:
        _export_pg(name, pg, elts)
        return
    attrs["timeout_seconds"] = timeout["values"][0]
    node = Node("exec_method", attrs)
    props = pg["props"]
    context: Node | None = None
    ok = True
    use_profile: bool | None = None
    has_context = any(p in props for p in (*_CONTEXT_ATTRS, "use_profile"))
    if has_context:
        context = Node("method_context")
        for attr in _CONTEXT_ATTRS:
            if attr in props:
                value = _single(pg, attr)
                if value is None:
                    ok = False
                elif value != ":default":
                    context.attrs[attr] = value
        flag = _single(pg, "use_profile")
        if flag is not None and props["use_profile"]["type"] == "boolean":
            use_profile = flag == "true"
            if use_profile:
                profile = _single(pg, "profile")
                if profile is None:
                    ok = False
                context.add(Node("method_profile", {"name": profile or ""}))
            else:
                cred = Node("method_credential")
                user = _single(pg, "user")
                if user is None:
                    ok = False
                for attr in _CREDENTIAL_ATTRS:
                    value = _single(pg, attr)
                    if value is not None and (attr == "user" or value != ":default"):
                        cred.attrs[attr] = value
                    elif attr in props and value is None:
                        ok = False
                context.add(cred)
    env = _environment(pg)
    if env is not None:
        context = context or Node("method_context")
        context.add(env)
    if env is not None or (has_context and ok):
        node.add(context)
    context_kept = has_context and ok

    def skip(prop: str) -> bool:
        if prop in ("type", "exec", "timeout_seconds"):
            return True
        if prop in (*_CONTEXT_ATTRS, "use_profile"):
            return context_kept
        if prop in _CREDENTIAL_ATTRS:
            return context_kept and use_profile is False
        if prop == "profile":
            return context_kept and use_profile is True
        if prop == "environment":
            return env is not None
        return False

    body = _pg_node("exec_method", {}, pg, skip)
    node.children += body.children
    elts.exec_methods.append(node)


def _export_method_context(pg: Any, elts: _Elts) -> None:
    node = Node("method_context")
    env = _environment(pg)
    props = pg["props"]
    flag = _single(pg, "use_profile")
    use_profile = None if flag is None else flag == "true"
    holder: Node | None = None
    if use_profile is not None:
        holder = node.add(Node("method_profile" if use_profile else "method_credential"))
    node.add(env)
    ok = True
    for name in props:
        value = _single(pg, name)
        if name in _CONTEXT_ATTRS[:3]:
            if value is None:
                ok = False
            else:
                node.attrs[name] = value
        elif name == "use_profile" or name == "environment":
            continue
        elif name in _CREDENTIAL_ATTRS:
            if use_profile is not False or value is None or holder is None:
                ok = False
            else:
                holder.attrs[name] = value
        elif name == "profile":
            if not use_profile or value is None or holder is None:
                ok = False
            else:
                holder.attrs["name"] = value
        else:
            ok = False  # no generic properties in a method_context
    if not ok and env is None:
        _export_pg("method_context", pg, elts)
        return
    elts.method_context = node


def _export_general(pg: Any, elts: _Elts, service: bool, inode: Node | None) -> None:
    if inode is not None:
        enabled = _single(pg, "enabled")
        inode.attrs["enabled"] = "true" if enabled == "true" else "false"
    rest: dict[str, Any] = {}
    for name, prop in pg["props"].items():
        value = _single(pg, name)
        if inode is not None and name == "enabled":
            continue
        if service and name == "single_instance" and prop["type"] == "boolean" and value:
            if value == "true":
                elts.single_instance = Node("single_instance")
            continue
        if name == "restarter" and value is not None:
            restarter = Node("restarter")
            restarter.add(Node("service_fmri", {"value": value}))
            elts.restarter = restarter
            continue
        if service and name == "entity_stability" and value is not None:
            elts.stability = Node("stability", {"value": value})
            continue
        rest[name] = prop
    if rest:
        elts.property_groups.append(
            _pg_node(
                "property_group",
                {"name": "general", "type": "framework"},
                {"props": rest},
                lambda n: False,
            )
        )


def _export_dependents(doc: Doc, pg: Any, elts: _Elts, verbose: Callable[[str], None]) -> None:
    leftover: dict[str, Any] = {}
    for name, prop in pg["props"].items():
        value = _single(pg, name)
        if value is None or prop["type"] not in ("astring", "fmri"):
            leftover[name] = prop
            continue
        parsed = repo.parse_svc_fmri(value)
        if parsed is None or parsed.service is None or parsed.pg is not None:
            leftover[name] = prop
            continue
        target = repo.node_of(doc, parsed.service, parsed.instance)
        dep = None if target is None else target["pgs"].get(name)
        if dep is None or dep["type"] != "dependency":
            if dep is None and target is not None:
                verbose(f"Entity {value} is missing dependency property group {name}.")
            leftover[name] = prop
            continue
        node = _export_dependent(name, value, dep)
        if node is None:
            leftover[name] = prop
        else:
            elts.dependents.append(node)
    if leftover:
        elts.property_groups.append(
            _pg_node(
                "property_group",
                {"name": "dependents", "type": "framework"},
                {"props": leftover},
                lambda n: False,
            )
        )


def _export_dependent(name: str, target: str, dep: Any) -> Node | None:
    if _single(dep, "external") != "true":
        return None
    attrs = {"name": name}
    for prop in ("restart_on", "grouping"):
        value = _single(dep, prop)
        if value is None:
            return None
        attrs[prop] = value
    entities = dep["props"].get("entities")
    if entities is None or entities["type"] != "fmri" or len(entities["values"]) != 1:
        return None

    def skip(prop: str) -> bool:
        if prop in ("external", "restart_on", "grouping", "entities"):
            return True
        return prop == "type" and _single(dep, "type") == "service"

    node = _pg_node("dependent", attrs, dep, skip)
    node.children.insert(0, Node("service_fmri", {"value": target}))
    return node


def _export_template(name: str, pg: Any, elts: _Elts) -> None:
    if name in ("tm_common_name", "tm_description"):
        tag = name[3:]
        node = Node(tag)
        for lang, prop in pg["props"].items():
            if prop["type"] == "ustring" and len(prop["values"]) == 1:
                node.add(Node("loctext", {"xml:lang": lang}, text=prop["values"][0]))
        if node.children:
            setattr(elts, tag, node)
            return
    _export_pg(name, pg, elts)


def _export_entity_pgs(
    doc: Doc,
    pgs: Pgs,
    elts: _Elts,
    *,
    service: bool,
    inode: Node | None,
    verbose: Callable[[str], None],
) -> None:
    for name, pg in pgs.items():
        if pg.get("nonpersistent"):
            continue
        ptype = pg["type"]
        if ptype == "dependency":
            _export_dependency(name, pg, elts)
        elif ptype == "method":
            _export_method(name, pg, elts)
        elif ptype == "framework" and name == "general":
            _export_general(pg, elts, service, inode)
        elif ptype == "framework" and name == "method_context":
            _export_method_context(pg, elts)
        elif ptype == "framework" and name == "dependents":
            _export_dependents(doc, pg, elts, verbose)
        elif ptype == "framework" and name == "manifestfiles" and service:
            continue
        elif ptype == "template":
            _export_template(name, pg, elts)
        else:
            _export_pg(name, pg, elts)


def _export_instance(
    doc: Doc, name: str, inode: Any, selts: _Elts, verbose: Callable[[str], None]
) -> None:
    node = Node("instance", {"name": name})
    general = inode["pgs"].get("general")
    if general is None or general["type"] != "framework":
        node.attrs["enabled"] = "false"
    elts = _Elts()
    _export_entity_pgs(doc, inode["pgs"], elts, service=False, inode=node, verbose=verbose)
    template = elts.template()
    if name == "default" and not (
        elts.restarter
        or elts.dependencies
        or elts.method_context
        or elts.exec_methods
        or elts.property_groups
        or template
    ):
        selts.create_default_instance = Node(
            "create_default_instance", {"enabled": node.attrs.get("enabled", "false")}
        )
        return
    node.add(elts.restarter)
    node.children += elts.dependencies + elts.dependents
    node.add(elts.method_context)
    node.children += elts.exec_methods + elts.property_groups
    node.add(template)
    selts.instances.append(node)


def export_service(doc: Doc, service: str, verbose: Callable[[str], None]) -> str:
    """The `svccfg export` document for one service."""
    svc = doc["services"][service]
    bundle = Node("service_bundle", {"type": "manifest", "name": "export"})
    snode = Node("service", {"name": service, "type": "service", "version": "0"})
    bundle.add(snode)
    elts = _Elts()
    _export_entity_pgs(doc, svc["pgs"], elts, service=True, inode=None, verbose=verbose)
    for iname, inode in svc["instances"].items():
        _export_instance(doc, iname, inode, elts, verbose)
    for child in (elts.create_default_instance, elts.single_instance, elts.restarter):
        snode.add(child)
    snode.children += elts.dependencies + elts.dependents
    snode.add(elts.method_context)
    snode.children += elts.exec_methods + elts.property_groups + elts.instances
    snode.add(elts.stability)
    snode.add(elts.template())
    return write_bundle(bundle)


def now_ns() -> int:
    return time.time_ns()
