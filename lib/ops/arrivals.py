"""Bundles that arrive in a bundle root, and whether each can be imported.

A bundle arrives by `zfs recv` into a ZFS root, or by a copy into a plain
directory root. The controller asks survey() on every pass and at each file
system event, and imports the importable ones; `vmbundle list --problems` prints
the others. survey() does the I/O (the roots, one `zfs list` for all datasets
under them, a stat of each bundle not yet imported); classify() decides each
verdict from those facts alone.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from vmbundle.adapters import smf, zfs
from vmbundle.errors import ConfigError, ToolError, VmbundleError
from vmbundle.settings import HostSettings
from vmbundle.vm import bundle, storage
from vmbundle.vm.model import NAME_PATTERN

VERDICTS = ("imported", "importable", "taken", "invalid", "receiving", "misnamed", "settling")
PROBLEMS = frozenset({"taken", "invalid", "receiving", "misnamed", "settling"})

# A copy into a plain directory writes file after file; two quiet seconds are
# taken to mean it has finished (cp and rsync touch a file at least that often).
SETTLE_SECONDS = 2.0
ROOT_SECONDS = 60.0


@attrs.frozen
class Arrival:
    name: str  # the directory's name in the root
    path: Path
    verdict: str  # one of VERDICTS
    lines: tuple[str, ...]  # one line per problem, naming the bundle and the fix
    fmri: str | None  # the instance whose config/bundle is this path, if any

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "path": str(self.path),
            "verdict": self.verdict,
            "lines": list(self.lines),
            "fmri": self.fmri,
        }


@attrs.frozen
class RootSeen:
    spec: str  # as in settings.bundle_roots
    path: Path | None  # the mountpoint or directory; None when it cannot be resolved
    available: bool  # a ZFS root's dataset is mounted; a directory root is a directory
    dataset: str | None


@attrs.frozen
class Survey:
    roots: tuple[RootSeen, ...]
    arrivals: tuple[Arrival, ...]

    def root_of(self, path: Path) -> RootSeen | None:
        """The root a bundle path lies directly in."""
        parent = Path(os.path.normpath(path)).parent
        return next((r for r in self.roots if r.path == parent), None)


# --- the facts, and the verdict they make ---------------------------------------------


@attrs.frozen
class Receive:
    """A ZFS bundle's dataset as `zfs list` shows it."""

    dataset: str
    mounted: bool
    unfinished: bool  # a resume token, the inconsistent flag or a %recv child


@attrs.frozen
class Checked:
    """What the validator said of a bundle: its lines, and the name vm.json gives."""

    problems: tuple[str, ...]
    config_name: str | None


@attrs.frozen
class Facts:
    name: str
    path: Path
    real: str  # os.path.realpath(path)
    zfs: Receive | None  # None: a plain directory (in either kind of root)
    has_config: bool
    changed: float | None  # newest mtime of the directory, vm.json and its files


@attrs.frozen
class Instances:
    """The SMF instances by the real path of their bundle and by their name."""

    by_real: Mapping[str, str]  # realpath -> FMRI
    by_name: Mapping[str, tuple[str, str]]  # instance name -> (FMRI, bundle path)

    @classmethod
    def of(cls, instances: Mapping[str, str]) -> Instances:
        by_real = {os.path.realpath(p): fmri for fmri, p in instances.items()}
        by_name = {smf.instance_name(fmri): (fmri, p) for fmri, p in instances.items()}
        return cls(by_real, by_name)


def classify(
    facts: Facts, instances: Instances, now: float, checked: Checked | None
) -> Arrival | None:
    """The verdict of one bundle. checked is the validator's answer, or None when it
    has not run; then None comes back where only validation can tell."""

    def verdict(kind: str, *lines: str, fmri: str | None = None) -> Arrival:
        return Arrival(facts.name, facts.path, kind, tuple(lines), fmri)

    name, path = facts.name, facts.path
    fmri = instances.by_real.get(facts.real)
    if fmri is not None:
        return verdict("imported", fmri=fmri)
    if facts.zfs is not None and (facts.zfs.unfinished or not facts.zfs.mounted):
        why = "its receive has not finished" if facts.zfs.unfinished else "it is not mounted"
        return verdict(
            "receiving",
            f"{name}: dataset {facts.zfs.dataset}: {why}; wait for `zfs receive` to end, "
            f"resume it (zfs send -t TOKEN) or abort it (zfs receive -A {facts.zfs.dataset}); "
            f"if no receive runs, mount it: zfs mount {facts.zfs.dataset}",
        )
    if facts.zfs is None and facts.changed is not None and now - facts.changed < SETTLE_SECONDS:
        return verdict(
            "settling",
            f"{name}: {path} changed {max(now - facts.changed, 0.0):.1f}s ago (a copy may be "
            f"under way); it is looked at again once quiet for {SETTLE_SECONDS:g}s",
        )
    if not facts.has_config:
        return None if checked is None else verdict("invalid", f"{name}: no vm.json in {path}")
    owner = instances.by_name.get(name)
    if owner is not None:
        return verdict(
            "taken",
            f"{name}: the name is taken by {owner[0]} ({owner[1]}); forget that guest "
            f"(vmbundle forget {name}), or give this bundle another name: rename the "
            f"{'dataset' if facts.zfs else 'directory'} and vmbundle set {path} name=NEW",
        )
    if re.fullmatch(NAME_PATTERN, name) is None:
        return verdict(
            "invalid",
            f"{name}: {path}: not a guest name (letters, digits, _ and -, first a letter); "
            f"rename the {'dataset' if facts.zfs else 'directory'}",
        )
    if checked is None:
        return None
    if not checked.problems:
        return verdict("importable")
    named = checked.config_name
    if named is None or named == name:
        return verdict("invalid", *checked.problems)
    # The validator names the guest as vm.json does; here the directory's name is
    # what the operator sees, so each line is told by that.
    label = f"{named[:63]}: "
    lines = [
        f"{name}: {line.removeprefix(label)}" if line.startswith(label) else line
        for line in checked.problems
    ]
    if all(line.startswith(f"{name}: name: ") for line in lines):
        # The name is the one problem, and `set` cures it.
        return verdict(
            "misnamed",
            f"{name}: vm.json names the guest {named!r}, not {name!r} as its directory; "
            f"vmbundle set {path} name={name}",
        )
    return verdict("invalid", *lines)


# --- the I/O --------------------------------------------------------------------------

Signature = tuple[tuple[str, int, int, int], ...]


def _scan(path: Path) -> tuple[Signature, float | None, bool]:
    """(the stat of the directory and each entry directly in it, the newest mtime,
    whether vm.json is there). Entries are not followed: a link is its own stat."""
    stats: list[tuple[str, int, int, int]] = []
    try:
        top = os.stat(path)
        stats.append(("", top.st_mtime_ns, top.st_size, top.st_ino))
        with os.scandir(path) as entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # removed while listed
                    continue
                stats.append((entry.name, st.st_mtime_ns, st.st_size, st.st_ino))
    except OSError:
        return (), None, False
    stats.sort()
    newest = max(s[1] for s in stats) / 1e9
    return tuple(stats), newest, any(s[0] == bundle.CONFIG_FILE for s in stats)


def check(path: Path, settings: HostSettings) -> Checked:
    """The full check `vmbundle import` makes (vm.json, the host's means, disks
    and their backing chains through qemu-img), as lines."""
    config_name: str | None = None
    try:
        doc = json.loads((path / bundle.CONFIG_FILE).read_bytes())
        if isinstance(doc, dict) and isinstance(doc.get("name"), str):
            config_name = doc["name"]
    except (OSError, ValueError):
        pass  # the validator says what is wrong with the file
    try:
        bundle.load(path, settings)
    except ConfigError as exc:
        return Checked(exc.problems, config_name)
    except VmbundleError as exc:
        return Checked(tuple(str(exc).splitlines()), config_name)
    return Checked((), config_name)


class ValidationCache:
    """The validator's answer for each bundle not yet imported, kept while nothing
    in the bundle changes: a check runs qemu-img once per disk and image.

    The key is the bundle's path and the stat (mtime, size, inode) of the bundle
    directory and each entry directly in it, vm.json among them. A change further
    down (a backing file in a subdirectory) or outside (an ISO in an ISO
    directory) is not seen until something directly in the bundle changes too.
    """

    def __init__(self) -> None:
        self._known: dict[Path, tuple[Signature, Checked]] = {}
        # A directory root's dataset, which costs two zfs calls to find, is looked
        # up again only now and then (a pool imported later, a dataset made).
        self._roots: dict[str, tuple[float, storage.BundleRoot]] = {}

    def root(self, spec: str) -> storage.BundleRoot:
        now = time.monotonic()
        known = self._roots.get(spec)
        if known is not None and now - known[0] < ROOT_SECONDS:
            return known[1]
        root = storage.resolve_root(spec)
        self._roots[spec] = (now, root)
        return root

    def checked(self, path: Path, signature: Signature, settings: HostSettings) -> Checked:
        known = self._known.get(path)
        if known is not None and known[0] == signature:
            return known[1]
        result = check(path, settings)
        self._known[path] = (signature, result)
        return result

    def keep_only(self, paths: set[Path]) -> None:
        """Forget bundles no longer seen (imported, gone)."""
        for path in set(self._known) - paths:
            del self._known[path]


def _roots(
    settings: HostSettings, cache: ValidationCache
) -> tuple[list[RootSeen], list[zfs.Filesystem]]:
    """Each configured root, and every filesystem under the ZFS ones (one zfs call)."""
    pending: list[tuple[str, Path | None, str | None]] = []
    for spec in settings.bundle_roots:
        if spec.startswith("/"):
            # A directory; a dataset when it is the mountpoint of one.
            try:
                root = cache.root(spec)
            except VmbundleError:
                pending.append((spec, Path(os.path.normpath(spec)), None))
                continue
            pending.append((spec, root.path, root.dataset))
        else:
            pending.append((spec, None, spec.rstrip("/")))
    datasets = sorted({d for _, _, d in pending if d is not None})
    listed = _filesystems(datasets)
    by_name = {f.name: f for f in listed}
    seen = []
    for spec, path, dataset in pending:
        if dataset is None:
            assert path is not None
            seen.append(RootSeen(spec, path, path.is_dir(), None))
            continue
        fs = by_name.get(dataset)
        if fs is None:
            seen.append(RootSeen(spec, path, False, dataset))
            continue
        where = path or fs.mountpoint
        available = fs.mounted and where is not None and os.path.isdir(where)
        seen.append(RootSeen(spec, where, available, dataset))
    return seen, listed


def _filesystems(datasets: list[str]) -> list[zfs.Filesystem]:
    if not datasets:
        return []
    try:
        return zfs.filesystems_under(datasets)
    except ToolError:
        pass
    # One of them is missing (or zfs does not answer): each on its own, so that
    # the others are still seen.
    found: list[zfs.Filesystem] = []
    for dataset in datasets:
        try:
            found += zfs.filesystems_under([dataset])
        except (ToolError, VmbundleError):
            continue
    return found


def _candidates(root: RootSeen, listed: Sequence[zfs.Filesystem]) -> dict[str, Receive | None]:
    """Each bundle directory in an available root, and each dataset whose mountpoint
    is directly in it even when it is not mounted (a receive under way has no
    directory yet)."""
    assert root.path is not None
    found: dict[str, Receive | None] = {
        fs.mountpoint.name: Receive(fs.name, fs.mounted, fs.receive_unfinished)
        for fs in listed
        if fs.mountpoint is not None and fs.mountpoint.parent == root.path
    }
    try:
        with os.scandir(root.path) as entries:
            for entry in entries:
                if entry.name not in found and entry.is_dir():
                    found[entry.name] = None
    except OSError:
        pass
    # Hidden names are no guest's (NAME_PATTERN): a copy tool's temporary, say.
    return {name: r for name, r in found.items() if not name.startswith(".")}


def survey(
    settings: HostSettings,
    instances: Mapping[str, str],
    cache: ValidationCache | None = None,
    now: float | None = None,
) -> Survey:
    """Every bundle in the bundle roots and its verdict. instances: FMRI -> bundle
    path (smf.bundle_paths()). A bundle an instance points at is never looked
    into; the others are stat'ed, and validated when their files changed."""
    cache = cache if cache is not None else ValidationCache()
    when = time.time() if now is None else now
    known = Instances.of(instances)
    roots, listed = _roots(settings, cache)
    arrivals: list[Arrival] = []
    checked_paths: set[Path] = set()
    for root in roots:
        if not root.available or root.path is None:
            continue
        for name, receive in sorted(_candidates(root, listed).items()):
            path = root.path / name
            real = os.path.realpath(path)
            if real in known.by_real:
                arrivals.append(Arrival(name, path, "imported", (), known.by_real[real]))
                continue
            signature, changed, has_config = _scan(path)
            facts = Facts(name, path, real, receive, has_config, changed)
            found = classify(facts, known, when, None)
            if found is None and has_config:
                checked_paths.add(path)
                found = classify(facts, known, when, cache.checked(path, signature, settings))
            if found is not None:
                arrivals.append(found)
    cache.keep_only(checked_paths)
    return Survey(tuple(roots), tuple(arrivals))
