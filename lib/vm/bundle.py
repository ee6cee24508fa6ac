"""A bundle on disk: finding it, loading it (checked by vmbundle.vm.checks), and
changing its vm.json under the bundle's lock.

Loading only reads: a bad bundle is reported, never touched.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import attrs

from vmbundle import locks
from vmbundle.atomic import write_atomic
from vmbundle.errors import ConfigError, NoSuchGuest, VmbundleError, faults_of
from vmbundle.settings import HostSettings
from vmbundle.vm import codec, storage
from vmbundle.vm.checks import HostMeans, check_document
from vmbundle.vm.codec import ConfigProblems
from vmbundle.vm.model import NAME_PATTERN, VmConfig

CONFIG_FILE = "vm.json"


@attrs.frozen
class Bundle:
    path: Path
    config: VmConfig

    @property
    def name(self) -> str:
        return self.config.name

    def disk_path(self, file: str) -> Path:
        return self.path / file


def locate(settings: HostSettings, name_or_path: str) -> Path:
    """The bundle directory a guest is known by: a path, or a name in the bundle roots."""
    if "/" in name_or_path or name_or_path in (".", ".."):
        path = Path(os.path.abspath(name_or_path))
        if not (path / CONFIG_FILE).is_file():
            raise NoSuchGuest(f"{name_or_path}: no {CONFIG_FILE} there; give a bundle directory")
        return path
    if re.fullmatch(NAME_PATTERN, name_or_path) is None:
        raise VmbundleError(
            f"{name_or_path!r}: not a guest name (letters, digits, _ and -, first a letter)"
        )
    found = []
    for spec in settings.bundle_roots:
        candidate = storage.resolve_root(spec).path / name_or_path
        if (candidate / CONFIG_FILE).is_file():
            found.append(candidate)
    if not found:
        roots = ", ".join(settings.bundle_roots) or "none configured"
        raise NoSuchGuest(
            f"{name_or_path}: no such guest in the bundle roots ({roots}); give its path instead"
        )
    if len(found) > 1:
        raise VmbundleError(
            f"{name_or_path}: found in several bundle roots ({', '.join(map(str, found))}); give its path"
        )
    return found[0]


def read_document(path: Path) -> dict[str, object]:
    """vm.json's JSON object, or ConfigError naming the guest."""
    cfg_path = path / CONFIG_FILE
    try:
        data = cfg_path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path.name}: cannot read {cfg_path}: {exc.strerror}"]) from None
    try:
        doc: dict[str, object] = codec.parse_json(data)
    except ConfigProblems as exc:
        raise exc.of_guest(path.name) from None
    return doc


def load(path: Path, settings: HostSettings, means: HostMeans | None = None) -> Bundle:
    """The bundle at path, checked; ConfigError lists every problem, one line each."""
    return Bundle(path=path, config=check_document(read_document(path), path, settings, means))


def save(path: Path, cfg: VmConfig) -> None:
    """Write vm.json atomically; the caller has checked cfg and holds the bundle's lock."""
    write_atomic(path / CONFIG_FILE, codec.dumps(cfg))


Document = dict[str, object]


def update(
    path: Path,
    settings: HostSettings,
    change: Callable[[Document], Document],
    *,
    whole: bool = True,
) -> Bundle:
    """Read vm.json, change it and write it back, all under the bundle's lock, so
    edits made at once each see the one before. The result is checked as
    `validate` checks it (whole=False: as a file only, for the small changes a
    start makes to a bundle it has just checked); a ConfigError or a fault of
    the file system leaves vm.json as it was."""
    name = path.name
    with locks.bundle(settings.run_dir, name), faults_of(name):
        doc = change(read_document(path))
        cfg = check_document(doc, path, settings) if whole else structure(doc, name)
        save(path, cfg)
    return Bundle(path, cfg)


def structure(doc: Document, guest: str) -> VmConfig:
    """The config in doc, checked as a file only; ConfigError naming the guest."""
    try:
        return codec.structure(doc)
    except ConfigProblems as exc:
        raise exc.of_guest(guest) from None


def update_config(
    path: Path, settings: HostSettings, change: Callable[[VmConfig], VmConfig]
) -> Bundle:
    """update() for a change of a config that must be valid as a file to begin with."""
    return update(path, settings, lambda doc: codec.unstructure(change(structure(doc, path.name))))
