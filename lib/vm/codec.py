"""vm.json: read strictly, check, write back, edit by key, describe as JSON Schema.

Reading collects every problem with its JSON path (`disks[1].size: must be a
size like 20G, got "big"`) instead of stopping at the first, so `vmbundle
validate` can list them all. Rules that need the host or the bundle's files
live in vmbundle.vm.bundle; the rules here need only the file itself.
"""

from __future__ import annotations

import difflib
import json
import re
from collections import Counter
from typing import Any

import attrs

from vmbundle.errors import SMF_EXIT_ERR_CONFIG, ConfigError, VmbundleError
from vmbundle.units import format_size
from vmbundle.vm.fields import Invalid, ListOf, Obj, is_required, kind_of
from vmbundle.vm.model import SCHEMA_VERSION, Cdrom, Disk, Nic, VmConfig

MAX_FILE_BYTES = 1 << 20


@attrs.frozen
class Problem:
    path: str
    message: str

    def line(self, guest: str) -> str:
        return f"{guest}: {self.path}: {self.message}" if self.path else f"{guest}: {self.message}"


class ConfigProblems(VmbundleError):
    """Problems of the file alone, each with its JSON path; callers that know the
    guest turn them into a ConfigError of lines."""

    exit_code = SMF_EXIT_ERR_CONFIG

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(p.line("vm.json") for p in self.problems)

    def of_guest(self, guest: str) -> ConfigError:
        """The same problems as a ConfigError whose lines name the guest."""
        return ConfigError([p.line(guest) for p in self.problems])


def reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"key {json.dumps(key)} appears twice")
        seen[key] = value
    return seen


def parse_json(data: bytes) -> Any:
    """The JSON document in data; ConfigProblems when it is not a sound JSON object."""
    if len(data) > MAX_FILE_BYTES:
        raise ConfigProblems([Problem("", f"vm.json is larger than {MAX_FILE_BYTES} bytes")])
    try:
        text = data.decode("utf-8")
        doc = json.loads(text, object_pairs_hook=reject_duplicate_keys)
    except UnicodeDecodeError:
        raise ConfigProblems([Problem("", "vm.json is not UTF-8 text")]) from None
    except ValueError as exc:
        raise ConfigProblems([Problem("", f"vm.json is not valid JSON: {exc}")]) from None
    if not isinstance(doc, dict):
        raise ConfigProblems([Problem("", "vm.json must hold a JSON object")])
    return doc


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _structure(cls: type, doc: Any, path: str, problems: list[Problem]) -> Any:
    if not isinstance(doc, dict):
        problems.append(Problem(path, "must be a JSON object"))
        return None
    fields = {f.name: f for f in attrs.fields(cls)}
    for key in doc:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.6)
            hint = (
                f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(fields)}"
            )
            problems.append(Problem(_join(path, key), f"unknown key{hint}"))
    values: dict[str, Any] = {}
    ok = True
    for name, field in fields.items():
        here = _join(path, name)
        if name not in doc:
            if is_required(field):
                problems.append(Problem(here, "is missing; add it"))
                ok = False
            continue
        kind = kind_of(field)
        value = doc[name]
        if isinstance(kind, Obj):
            values[name] = _structure(kind.cls, value, here, problems)
            ok = ok and values[name] is not None
        elif isinstance(kind, ListOf):
            if not isinstance(value, list):
                problems.append(Problem(here, "must be a JSON array"))
                ok = False
                continue
            if len(value) > kind.max_items:
                problems.append(
                    Problem(here, f"may hold at most {kind.max_items} entries, has {len(value)}")
                )
                ok = False
            items = [_structure(kind.cls, v, f"{here}[{i}]", problems) for i, v in enumerate(value)]
            ok = ok and all(i is not None for i in items)
            values[name] = tuple(items)
        else:
            try:
                values[name] = kind.parse(value)
            except Invalid as exc:
                problems.append(Problem(here, str(exc)))
                ok = False
    return cls(**values) if ok else None


def _cross_check(cfg: VmConfig) -> list[Problem]:
    """Rules between fields of one file."""
    problems: list[Problem] = []
    groups: tuple[tuple[str, tuple[Disk | Cdrom | Nic, ...]], ...] = (
        ("disks", cfg.disks),
        ("cdroms", cfg.cdroms),
        ("nics", cfg.nics),
    )
    ids = Counter(cfg.device_ids())
    for group, items in groups:
        for i, item in enumerate(items):
            if ids[item.id] > 1:
                problems.append(
                    Problem(
                        f"{group}[{i}].id",
                        f"{item.id!r} is used by another device; give each its own id",
                    )
                )
    files = Counter(d.file for d in cfg.disks)
    for i, d in enumerate(cfg.disks):
        if files[d.file] > 1:
            problems.append(Problem(f"disks[{i}].file", f"{d.file!r} is used by two disks"))
    macs = Counter(n.mac for n in cfg.nics if n.mac)
    for i, n in enumerate(cfg.nics):
        if n.mac and macs[n.mac] > 1:
            problems.append(Problem(f"nics[{i}].mac", f"{n.mac} is used by another NIC"))
        if n.mac and int(n.mac[:2], 16) & 1:
            problems.append(
                Problem(
                    f"nics[{i}].mac",
                    f"{n.mac} is a multicast address; use a unicast one like 52:54:00:12:34:56",
                )
            )
        b = n.backend
        if b.type == "user" and b.name is not None:
            problems.append(Problem(f"nics[{i}].backend.name", "must be null for a user backend"))
        if b.type != "user" and b.name is None:
            problems.append(
                Problem(f"nics[{i}].backend.name", f"names the {b.type} to use; set it")
            )
        if b.type in ("tap", "bridge") and b.name is not None and len(b.name) > 15:
            problems.append(
                Problem(
                    f"nics[{i}].backend.name", "a Linux interface name has at most 15 characters"
                )
            )
        if (
            b.type == "vnic"
            and b.name is not None
            and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*[0-9]", b.name)
        ):
            problems.append(
                Problem(
                    f"nics[{i}].backend.name",
                    "an illumos link name has letters, digits and _, and ends in a digit",
                )
            )
    indices = Counter(
        x.boot_index for _, items in groups for x in items if x.boot_index is not None
    )
    for group, items in groups:
        for i, x in enumerate(items):
            if x.boot_index is not None and indices[x.boot_index] > 1:
                problems.append(
                    Problem(
                        f"{group}[{i}].boot_index",
                        f"{x.boot_index} is used by another device; give each its own",
                    )
                )
    if cfg.boot_once is not None and cfg.boot_once not in ids:
        problems.append(
            Problem(
                "boot_once",
                f"{cfg.boot_once!r} is not a device of this guest; use one of {', '.join(ids) or 'none'}",
            )
        )
    if cfg.max_vcpus is not None and cfg.max_vcpus < cfg.vcpus:
        problems.append(
            Problem(
                "max_vcpus",
                f"{cfg.max_vcpus} is below vcpus ({cfg.vcpus}); raise it, or set it to null",
            )
        )
    if cfg.max_ram is not None and cfg.max_ram < cfg.ram:
        problems.append(
            Problem(
                "max_ram",
                f"{format_size(cfg.max_ram)} is below ram ({format_size(cfg.ram)}); "
                "raise it, or set it to null",
            )
        )
    return problems


def structure(doc: dict[str, Any]) -> VmConfig:
    """A VmConfig from a parsed vm.json document; ConfigProblems lists every problem."""
    problems: list[Problem] = []
    version = doc.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise ConfigProblems(
            [
                Problem(
                    "schema_version",
                    f"this vmbundle reads version {SCHEMA_VERSION}, the file is version {version}; upgrade vmbundle",
                )
            ]
        )
    cfg = _structure(VmConfig, doc, "", problems)
    if cfg is not None:
        problems.extend(_cross_check(cfg))
    if problems:
        raise ConfigProblems(problems)
    assert isinstance(cfg, VmConfig)
    return cfg


def loads(data: bytes) -> VmConfig:
    return structure(parse_json(data))


def unstructure(obj: Any) -> Any:
    """The JSON document for a model object, every field written out."""
    out: dict[str, Any] = {}
    for field in attrs.fields(type(obj)):
        kind = kind_of(field)
        value = getattr(obj, field.name)
        if isinstance(kind, Obj):
            out[field.name] = unstructure(value)
        elif isinstance(kind, ListOf):
            out[field.name] = [unstructure(v) for v in value]
        else:
            out[field.name] = kind.dump(value)
    return out


def dumps(cfg: VmConfig) -> bytes:
    return (json.dumps(unstructure(cfg), indent=2, ensure_ascii=False) + "\n").encode()


_STEP_RE = re.compile(r"([a-z_]+)(?:\[(\d+)\])?")


def set_key(doc: dict[str, Any], key: str, text: str) -> dict[str, Any]:
    """A copy of doc with key (like `ram`, `vnc.password`, `disks[0].cache` or
    `disks.disk0.cache`) set from its text form; the caller re-checks the whole."""
    doc = json.loads(json.dumps(doc))
    cls: type = VmConfig
    node: Any = doc
    steps = key.split(".")
    i = 0
    while True:
        step = steps[i]
        m = _STEP_RE.fullmatch(step)
        fields = {f.name: f for f in attrs.fields(cls)}
        if m is None or m.group(1) not in fields:
            close = difflib.get_close_matches(step, list(fields), n=1, cutoff=0.6)
            hint = (
                f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(fields)}"
            )
            raise Invalid(f"{key}: unknown key{hint}")
        name, index = m.group(1), m.group(2)
        field = fields[name]
        kind = kind_of(field)
        last = i == len(steps) - 1
        if isinstance(kind, ListOf):
            if last:
                raise Invalid(
                    f"{key}: is a list; use the disk, iso or nic commands, or name one entry by its id"
                )
            entries = node.setdefault(name, [])
            if index is not None:
                pos = int(index)
            else:
                i += 1
                ids = [e.get("id") for e in entries if isinstance(e, dict)]
                if steps[i] not in ids:
                    raise Invalid(
                        f"{key}: no entry with id {steps[i]!r} in {name}; ids: {', '.join(map(str, ids)) or 'none'}"
                    )
                pos = ids.index(steps[i])
            if not 0 <= pos < len(entries):
                raise Invalid(f"{key}: {name} has {len(entries)} entries")
            node, cls = entries[pos], kind.cls
        elif isinstance(kind, Obj):
            if last or index is not None:
                raise Invalid(f"{key}: is a group of settings; set one of its keys instead")
            node, cls = node.setdefault(name, {}), kind.cls
        elif last and index is None:
            try:
                node[name] = kind.dump(kind.from_text(text))
            except Invalid as exc:
                raise Invalid(f"{key}: {exc}") from None
            return doc
        else:
            raise Invalid(f"{key}: {name} cannot be indexed like that")
        i += 1
        if i >= len(steps):
            raise Invalid(f"{key}: is a group of settings; set one of its keys instead")


def json_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of vm.json, for outside tools."""

    def describe(cls: type) -> dict[str, Any]:
        props: dict[str, Any] = {}
        required: list[str] = []
        for field in attrs.fields(cls):
            kind = kind_of(field)
            if isinstance(kind, Obj):
                s = describe(kind.cls)
            elif isinstance(kind, ListOf):
                s = {"type": "array", "maxItems": kind.max_items, "items": describe(kind.cls)}
            else:
                s = kind.schema()
            s["description"] = field.metadata["doc"]
            props[field.name] = s
            if is_required(field):
                required.append(field.name)
        out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
        if required:
            out["required"] = required
        return out

    schema = describe(VmConfig)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "vmbundle guest configuration (vm.json), schema version 1",
        **schema,
    }
