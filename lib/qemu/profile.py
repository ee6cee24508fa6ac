"""Which of the two QEMUs vmbundle drives a binary is: asked once, then remembered.

`modern` is QEMU 7.0 or later; `illumos-kvm` is the illumos KVM fork
(TritonDataCenter/illumos-kvm-cmd, QEMU 0.14.1). The versions between speak
neither command line as vmbundle writes it, so they are refused by name here
instead of being started and left to fail on some option.

Asking means running `BINARY -version`, which a start and many CLI commands
need, so the answer is cached per binary in a small JSON file, keyed on the
binary's resolved path, size and mtime: replacing or upgrading the binary
changes the key and the next probe asks again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Literal

import attrs

from vmbundle.adapters import qemu as qemu_adapter
from vmbundle.atomic import write_atomic
from vmbundle.errors import VmbundleError

ProfileName = Literal["modern", "illumos-kvm"]

CACHE_FILE = "qemu-profiles.json"
# Several binaries may share one cache (tests, a host trying a new QEMU); a few
# entries are plenty, and the bound keeps a long-lived run directory small.
MAX_CACHE_ENTRIES = 16

SUPPORTED = "QEMU 7.0 or later, or the illumos KVM fork (QEMU 0.14.1)"

# "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)"
# "QEMU PC emulator version 0.14.1 (qemu-kvm-devel), Copyright (c) 2003-2008 Fabrice Bellard"
_VERSION_RE = re.compile(r"\bQEMU\b[^\n]*?\bversion (\d+)\.(\d+)(?:\.(\d+))?")


@attrs.frozen
class Profile:
    """The command-line dialect of one QEMU binary."""

    name: ProfileName
    version: tuple[int, int, int]

    @property
    def pvpanic(self) -> bool:
        """Whether this QEMU has the ISA pvpanic device, through which a guest's kernel
        reports its panic (GUEST_PANICKED) instead of hanging unseen: QEMU 1.5 and later,
        so not the 0.14 fork."""
        return self.version >= (1, 5, 0)

    @property
    def version_text(self) -> str:
        return ".".join(str(n) for n in self.version)

    def describe(self) -> str:
        """How an error message names this QEMU: "7.2.22" or "the illumos KVM fork 0.14.1"."""
        if self.name == "illumos-kvm":
            return f"the illumos KVM fork {self.version_text}"
        return self.version_text


def parse_version_output(text: str, binary: str = "qemu") -> Profile:
    """The profile of the QEMU whose `-version` printed text; VmbundleError if unsupported."""
    m = _VERSION_RE.search(text)
    if m is None:
        lines = text.strip().splitlines()
        shown = repr(lines[0][:80]) if lines else "no output"
        raise VmbundleError(
            f"{binary}: cannot tell which QEMU this is from its -version ({shown}); "
            f"vmbundle runs {SUPPORTED}"
        )
    version = (int(m[1]), int(m[2]), int(m[3] or 0))
    if version >= (7, 0, 0):
        return Profile("modern", version)
    if version[:2] == (0, 14):
        return Profile("illumos-kvm", version)
    shown_version = ".".join(str(n) for n in version)
    raise VmbundleError(
        f"{binary}: QEMU {shown_version} is not supported; vmbundle runs {SUPPORTED}"
    )


def _stat_key(path: str) -> dict[str, int]:
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _cached_profile(entry: Any, key: dict[str, int]) -> Profile | None:
    if not isinstance(entry, dict) or entry.get("stat") != key:
        return None
    name, version = entry.get("name"), entry.get("version")
    if name not in ("modern", "illumos-kvm"):
        return None
    if not (
        isinstance(version, list)
        and len(version) == 3
        and all(isinstance(n, int) and not isinstance(n, bool) for n in version)
    ):
        return None
    return Profile(name, (version[0], version[1], version[2]))


def _write_cache(path: Path, entries: dict[str, Any]) -> None:
    kept = dict(list(entries.items())[-MAX_CACHE_ENTRIES:])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(
            path, (json.dumps(kept, indent=1, sort_keys=True) + "\n").encode(), durable=False
        )
    except OSError:
        # The cache only saves a few milliseconds; a read-only or full run
        # directory must not keep a guest from starting.
        pass


def probe(binary: str, cache_dir: Path) -> Profile:
    """The profile of binary (a name on PATH or a path), from the cache when it is current."""
    resolved = shutil.which(binary)
    if resolved is None:
        raise VmbundleError(
            f"{binary}: no such QEMU (not on PATH, or not executable); "
            "install QEMU or set qemu.binary in vmbundle.toml"
        )
    real = os.path.realpath(resolved)
    key = _stat_key(real)
    cache = cache_dir / CACHE_FILE
    entries = _read_cache(cache)
    hit = _cached_profile(entries.get(real), key)
    if hit is not None:
        return hit
    profile = parse_version_output(qemu_adapter.version_output(resolved), binary)
    # A binary replaced while it answered might have answered for the old one:
    # remember the answer only when the file is still the one that was asked.
    if _stat_key(real) == key:
        entries.pop(real, None)
        entries[real] = {"stat": key, "name": profile.name, "version": list(profile.version)}
        _write_cache(cache, entries)
    return profile
