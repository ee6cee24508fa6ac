"""The ZFS ARC backends: read the ARC's size and bounds, and move its maximum.

design.md "Memory": the ARC is the balloon that makes room for guests. A backend
reads the ARC (`read`) and sets its maximum (`set_max`); lowering the maximum
also lowers the target `c`, so the ARC really shrinks, and raising it lets the
ARC grow back by itself. The caller decides the numbers (clamped between the
kernel's minimum and the saved baseline) and waits for `size` to follow.

* illumos (`IllumosArc`): `kstat -p` reads; `mdb -kw` writes the kstat words that
  are the kernel's variables (illumos.md section 5), or `zfscache` does it where
  the host has it (SmartOS). devhost answers the same commands.
* Linux OpenZFS (`LinuxArc`): /proc/spl/kstat/zfs/arcstats and the zfs_arc_max
  module parameter.
* `choose(setting)` picks one from the `[memory] backend` setting.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Protocol

import attrs

from vmbundle.adapters import kstat, mdb, zfscache
from vmbundle.errors import ConfigError, VmbundleError

MIB = 1 << 20

BACKENDS = ("auto", "illumos", "linux", "none")


@attrs.frozen
class ArcState:
    """The ARC at one moment, all in bytes."""

    physmem: int  # physical memory the kernel manages
    c: int  # the target size: eviction works toward it
    c_min: int
    c_max: int
    size: int  # what the ARC holds now


class ArcError(VmbundleError):
    """The ARC cannot be set as asked (the kernel would refuse or ignore it)."""


class ArcBackend(Protocol):
    name: str

    def read(self) -> ArcState: ...

    def set_max(self, c_max: int) -> None: ...


# --- illumos ------------------------------------------------------------------------

ARCSTATS_KSTAT = "zfs:0:arcstats"
PHYSMEM_KSTAT = "unix:0:system_pages:physmem"  # in pages
# sysconf(_SC_PAGESIZE) is what pagesize(1) prints (illumos.md section 5), without
# a process for it: a start reads the ARC at least once.
PAGESIZE = os.sysconf("SC_PAGESIZE")
_ILLUMOS_STATS = ("p", "c", "c_min", "c_max", "size")


@attrs.frozen
class _IllumosSnapshot:
    state: ArcState
    p: int  # the MRU target; kept <= c


def mdb_writes(c_max: int, *, c: int, p: int, old_c_max: int) -> list[tuple[str, int]]:
    """The (statistic, value) writes that set the maximum to c_max, in order.

    Lowering c_max alone does not shrink the ARC: arc_adapt() returns early when
    arc_c >= arc_c_max, and only growth paths clamp arc_c (illumos.md section 5).
    So c becomes min(c, c_max), and p, when above the new c, becomes c/2 as
    arc_shrink() leaves it (`if (arc_p > arc_c) arc_p = (arc_c >> 1)`).

    The order keeps the kernel safe between writes: p first (the new p is below
    the new c, hence below the old c), then c_max, then c. Between the last two,
    c > c_max, which makes arc_adapt() leave c alone; writing c first would leave
    a moment in which arc_adapt() could grow it back toward the old maximum.

    Raising: c_max only. On illumos the ARC grows c by itself (arc_adapt() adds
    to arc_c while the cache is full, up to arc_c_max) as data comes in.

    Writes that would change nothing are left out, so a retry after a partial
    failure finishes the job."""
    new_c = min(c, c_max)
    writes: list[tuple[str, int]] = []
    if p > new_c:
        writes.append(("p", new_c >> 1))
    if c_max != old_c_max:
        writes.append(("c_max", c_max))
    if c > c_max:
        writes.append(("c", c_max))
    return writes


class IllumosArc:
    """kstat reads; mdb -kw (or zfscache where it exists) writes.

    use_zfscache: None to use zfscache when it is on PATH, else forced."""

    name = "illumos"

    def __init__(self, *, use_zfscache: bool | None = None) -> None:
        self._use_zfscache = use_zfscache
        # Where each statistic's word is, looked up once by this process (one
        # `mdb -k` fewer at each setting in the long-lived controller): arc_stats
        # is a static of the zfs module, which modunload refuses while a pool is
        # imported, and vmbundle runs from one.
        self._addresses: dict[str, int] = {}

    def read(self) -> ArcState:
        return self._snapshot().state

    def set_max(self, c_max: int) -> None:
        snap = self._snapshot()
        _check_bounds(c_max, snap.state, strict_min=False)
        use_zfscache = self._use_zfscache
        if use_zfscache is None:
            use_zfscache = zfscache.available()
        if use_zfscache:
            self._set_with_zfscache(c_max, snap.state)
        else:
            self._set_with_mdb(c_max, snap)

    def _snapshot(self) -> _IllumosSnapshot:
        keys = [f"{ARCSTATS_KSTAT}:{s}" for s in _ILLUMOS_STATS]
        values = kstat.read_integers([*keys, PHYSMEM_KSTAT])
        stat = {s: values[k] for s, k in zip(_ILLUMOS_STATS, keys, strict=True)}
        state = ArcState(
            physmem=values[PHYSMEM_KSTAT] * PAGESIZE,
            c=stat["c"],
            c_min=stat["c_min"],
            c_max=stat["c_max"],
            size=stat["size"],
        )
        return _IllumosSnapshot(state, stat["p"])

    def _set_with_mdb(self, c_max: int, snap: _IllumosSnapshot) -> None:
        # The kernel may move c between the read and the writes (arc_shrink under
        # memory pressure); mdb has no compare-and-swap, and a c written a little
        # high is only a target the ARC was allowed to reach anyway.
        writes = mdb_writes(c_max, c=snap.state.c, p=snap.p, old_c_max=snap.state.c_max)
        if not writes:
            return
        unknown = [stat for stat, _ in writes if stat not in self._addresses]
        if unknown:
            self._addresses.update(mdb.addresses_of(unknown))
        for stat, value in writes:
            mdb.write_u64(self._addresses[stat], value)

    def _set_with_zfscache(self, c_max: int, state: ArcState) -> None:
        # The ioctl sets both bounds; the minimum stays where it is. The kernel
        # lowers c itself (arc_c = MIN(arc_c, arc_c_max)) and wakes the adjust thread.
        left = zfscache.set_limits(state.c_min, c_max)
        if left[zfscache.C_MAX] != c_max:
            raise ArcError(f"zfscache left arc_c_max at {left[zfscache.C_MAX]}, not {c_max}")


def _check_bounds(c_max: int, state: ArcState, *, strict_min: bool) -> None:
    """Refuse a maximum the kernel would refuse, ignore, or be hurt by."""
    below_min = c_max <= state.c_min if strict_min else c_max < state.c_min
    if below_min:
        relation = "above" if strict_min else "at least"
        raise ArcError(f"ARC maximum {c_max} must be {relation} the ARC minimum {state.c_min}")
    if c_max >= state.physmem:
        raise ArcError(f"ARC maximum {c_max} must be below physical memory {state.physmem}")


# --- Linux OpenZFS ------------------------------------------------------------------

LINUX_ARCSTATS = Path("/proc/spl/kstat/zfs/arcstats")
LINUX_ARC_MAX = Path("/sys/module/zfs/parameters/zfs_arc_max")
MEMINFO = Path("/proc/meminfo")

# OpenZFS arc.c MIN_ARC_MAX: arc_tuning_update() ignores a smaller zfs_arc_max.
MIN_ARC_MAX = 64 * MIB

# sys/kstat.h data types that are integers (INT32, UINT32, INT64, UINT64, LONG, ULONG).
_INTEGER_TYPES = {"1", "2", "3", "4", "7", "8"}


def parse_linux_arcstats(text: str) -> dict[str, int]:
    """name -> value from /proc/spl/kstat/zfs/arcstats (spl-kstat.c): a header
    line "%d %d 0x%02x %d %d %lld %lld", the line "name type data", then one
    "%-31s %-4d <value>" line per statistic. Integer statistics only."""
    lines = text.splitlines()
    if len(lines) < 2 or lines[1].split() != ["name", "type", "data"]:
        raise ValueError("not a named kstat: no 'name type data' header")
    out: dict[str, int] = {}
    for line in lines[2:]:
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise ValueError(f"unexpected arcstats line: {line!r}")
        name, kind, data = fields
        if kind in _INTEGER_TYPES:
            out[name] = int(data)
    return out


def parse_meminfo_total(text: str) -> int:
    """MemTotal from /proc/meminfo, in bytes ("MemTotal:  16318480 kB")."""
    for line in text.splitlines():
        label, _, rest = line.partition(":")
        if label == "MemTotal":
            number, unit = rest.split()
            if unit != "kB":
                raise ValueError(f"unexpected MemTotal unit: {line!r}")
            return int(number) * 1024
    raise ValueError("no MemTotal in /proc/meminfo")


class LinuxArc:
    """OpenZFS on Linux: arcstats from procfs, zfs_arc_max through sysfs. The
    paths are parameters so tests can use files in the real formats."""

    name = "linux"

    def __init__(
        self,
        *,
        arcstats: Path = LINUX_ARCSTATS,
        arc_max: Path = LINUX_ARC_MAX,
        meminfo: Path = MEMINFO,
    ) -> None:
        self.arcstats = arcstats
        self.arc_max = arc_max
        self.meminfo = meminfo

    def read(self) -> ArcState:
        try:
            stats = parse_linux_arcstats(self.arcstats.read_text())
        except OSError as exc:
            raise ArcError(f"{self.arcstats}: {exc.strerror}") from None
        except ValueError as exc:
            raise ArcError(f"{self.arcstats}: {exc}") from None
        missing = [s for s in ("c", "c_min", "c_max", "size") if s not in stats]
        if missing:
            raise ArcError(f"{self.arcstats}: no {', '.join(missing)}")
        return ArcState(
            physmem=self._physmem(),
            c=stats["c"],
            c_min=stats["c_min"],
            c_max=stats["c_max"],
            size=stats["size"],
        )

    def set_max(self, c_max: int) -> None:
        """Write zfs_arc_max. param_set_arc_max() runs arc_tuning_update() at once,
        which takes the value only when 64 MiB <= it < all memory and it > arc_c_min
        (otherwise it is ignored with a console warning, so check first), and then
        does arc_c = MIN(arc_c, arc_c_max) itself: lowering shrinks the ARC, raising
        lets it grow back by itself."""
        state = self.read()
        _check_bounds(c_max, state, strict_min=True)
        if c_max < MIN_ARC_MAX:
            raise ArcError(f"ARC maximum {c_max} must be at least {MIN_ARC_MAX} (64 MiB)")
        try:
            # One write(2), as `echo N > zfs_arc_max` does; no O_CREAT: a missing
            # parameter means the zfs module is not loaded.
            fd = os.open(self.arc_max, os.O_WRONLY | os.O_TRUNC)
            try:
                os.write(fd, f"{c_max}\n".encode())
            finally:
                os.close(fd)
        except OSError as exc:
            raise ArcError(f"{self.arc_max}: {exc.strerror}") from None

    def _physmem(self) -> int:
        # OpenZFS's allmem is arc_all_memory() = ptob(totalram_pages): MemTotal.
        try:
            return parse_meminfo_total(self.meminfo.read_text())
        except (OSError, ValueError):
            return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


# --- choosing -----------------------------------------------------------------------


def choose(
    setting: str,
    *,
    platform: str | None = None,
    linux_arcstats: Path = LINUX_ARCSTATS,
) -> ArcBackend | None:
    """The backend for a `[memory] backend` setting; None: no ARC to manage.

    "auto": illumos on SunOS, or wherever both kstat and mdb are on PATH (a
    devhost puts its emulated ones there); else Linux when OpenZFS's arcstats
    exists; else None. "illumos" and "linux" force one; "none" is None."""
    platform = sys.platform if platform is None else platform
    if setting == "none":
        return None
    if setting == "illumos":
        return IllumosArc()
    if setting == "linux":
        return LinuxArc(arcstats=linux_arcstats)
    if setting != "auto":
        raise ConfigError(
            [f"[memory] backend: must be one of {', '.join(BACKENDS)}; got {setting!r}"]
        )
    if platform.startswith("sunos") or (
        shutil.which(kstat.DEFAULT_BINARY) is not None
        and shutil.which(mdb.DEFAULT_BINARY) is not None
    ):
        return IllumosArc()
    if linux_arcstats.exists():
        return LinuxArc(arcstats=linux_arcstats)
    return None
