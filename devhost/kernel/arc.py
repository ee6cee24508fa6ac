"""The simulated kernel of one devhost: physical memory and the ZFS ARC.

One JSON document, `<state>/kernel.json`, replaced atomically (readers need no
lock); read-modify-writes hold `<state>/kernel.lock`. `boot()` writes it afresh,
as illumos's arc_init() would at boot: whatever mdb poked before is gone.

The ARC on illumos evicts towards its target `c` in the background. Here no
thread runs: the document keeps the size at the moment of the last write, and
the size at any later moment is computed from the shrink speed. The size only
ever goes down by itself: with no I/O simulated, nothing would fill the cache,
so after `c` is raised again the size stays where it is.

kstat_named_t is 48 bytes on amd64 (a 31-byte name, a type byte, a 16-byte value
union), so `arc_stats.arcstat_X.value.ui64` is at `arc_stats + 48*i + 32`, i the
statistic's position in arc_stats_t (illumos arc.c order). The base address is
made up, in the kernel's data range, and stable for a state directory.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, NamedTuple

# Paths are str here: kstat and mdb import this module on every run, and
# pathlib (with fnmatch and urllib.parse) would cost each 8 ms.
if TYPE_CHECKING:
    from _typeshed import StrPath

# No attrs, and hashlib and tempfile only where they are used: kstat and mdb,
# which the product's controller runs many times a second, import this module.

PAGESIZE = 4096
KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30

DEFAULT_SHRINK_SPEED = 2 * GIB  # bytes per second
WARM_FRACTION = 0.9  # a booted devhost's ARC is this full of c_max: a warm cache

KERNEL_FILE = "kernel.json"
LOCK_FILE = "kernel.lock"

# arc_stats_t in illumos arc.c, in declaration order (omnios r151xxx lineage).
ARCSTAT_NAMES: tuple[str, ...] = (
    "hits", "misses", "demand_data_hits", "demand_data_misses",
    "demand_metadata_hits", "demand_metadata_misses", "prefetch_data_hits",
    "prefetch_data_misses", "prefetch_metadata_hits", "prefetch_metadata_misses",
    "mru_hits", "mru_ghost_hits", "mfu_hits", "mfu_ghost_hits", "deleted",
    "mutex_miss", "access_skip", "evict_skip", "evict_not_enough", "evict_l2_cached",
    "evict_l2_eligible", "evict_l2_eligible_mfu", "evict_l2_eligible_mru",
    "evict_l2_ineligible", "evict_l2_skip", "hash_elements", "hash_elements_max",
    "hash_collisions", "hash_chains", "hash_chain_max", "p", "c", "c_min", "c_max",
    "size", "compressed_size", "uncompressed_size", "overhead_size", "hdr_size",
    "data_size", "metadata_size", "other_size", "anon_size", "anon_evictable_data",
    "anon_evictable_metadata", "mru_size", "mru_evictable_data",
    "mru_evictable_metadata", "mru_ghost_size", "mru_ghost_evictable_data",
    "mru_ghost_evictable_metadata", "mfu_size", "mfu_evictable_data",
    "mfu_evictable_metadata", "mfu_ghost_size", "mfu_ghost_evictable_data",
    "mfu_ghost_evictable_metadata", "l2_hits", "l2_misses", "l2_prefetch_asize",
    "l2_mru_asize", "l2_mfu_asize", "l2_bufc_data_asize", "l2_bufc_metadata_asize",
    "l2_feeds", "l2_rw_clash", "l2_read_bytes", "l2_write_bytes", "l2_writes_sent",
    "l2_writes_done", "l2_writes_error", "l2_writes_lock_retry",
    "l2_evict_lock_retry", "l2_evict_reading", "l2_evict_l1cached",
    "l2_free_on_write", "l2_abort_lowmem", "l2_cksum_bad", "l2_io_error", "l2_size",
    "l2_asize", "l2_hdr_size", "l2_log_blk_writes", "l2_log_blk_avg_asize",
    "l2_log_blk_asize", "l2_log_blk_count", "l2_data_to_meta_ratio",
    "l2_rebuild_success", "l2_rebuild_unsupported", "l2_rebuild_io_errors",
    "l2_rebuild_dh_errors", "l2_rebuild_cksum_lb_errors", "l2_rebuild_lowmem",
    "l2_rebuild_size", "l2_rebuild_asize", "l2_rebuild_bufs",
    "l2_rebuild_bufs_precached", "l2_rebuild_log_blks", "memory_throttle_count",
    "arc_meta_used", "arc_meta_limit", "arc_meta_max", "arc_meta_min",
    "async_upgrade_sync", "demand_hit_predictive_prefetch",
    "demand_hit_prescient_prefetch",
)  # fmt: skip

# The ARC variables that are the kstat storage itself (`#define arc_c
# ARCSTAT(arcstat_c)`): a poke through mdb changes the kernel's behaviour.
# Every other statistic is recomputed by arc_kstat_update, so a poke is lost.
LIVE_FIELDS = ("p", "c", "c_min", "c_max")

KSTAT_NAMED_SIZE = 48
VALUE_OFFSET = 32  # of the value union within a kstat_named_t
ARC_STATS_SIZE = KSTAT_NAMED_SIZE * len(ARCSTAT_NAMES)
_KERNEL_DATA_BASE = 0xFFFFFFFFFBC00000


class KernelMissing(Exception):
    """No kernel.json: the devhost was never brought up."""


class Arc(NamedTuple):
    p: int
    c: int
    c_min: int
    c_max: int
    size: int  # at `at`
    at: float  # wall-clock seconds of the last write
    shrink_speed: int  # bytes per second; 0: the ARC never shrinks

    def size_now(self, now: float) -> int:
        if self.size <= self.c or self.shrink_speed == 0:
            return self.size
        evicted = int(self.shrink_speed * max(0.0, now - self.at))
        return max(self.c, self.size - evicted)


class Kernel(NamedTuple):
    physmem: int  # bytes, a whole number of pages
    boot_time: float  # wall-clock seconds
    arc_stats_addr: int
    arc: Arc

    @property
    def physmem_pages(self) -> int:
        return self.physmem // PAGESIZE

    def uptime(self, now: float) -> float:
        return max(0.0, now - self.boot_time)


def swapfs_minfree(physmem_pages: int) -> int:
    """swapfs_minfree in pages, as swapinit() leaves it with no /etc/system tunable:
    MAX(btopr(2 MiB), physmem / 8) (illumos uts/common/fs/swapfs/swap_subr.c,
    swapfs_recalc())."""
    return max(-(-2 * MIB // PAGESIZE), physmem_pages >> 3)


def arc_allmem(physmem: int) -> int:
    """arc_init()'s allmem: ptob(physmem - swapfs_minfree) (illumos.md section 5)."""
    pages = physmem // PAGESIZE
    return (pages - swapfs_minfree(pages)) * PAGESIZE


def arc_init_defaults(physmem: int) -> tuple[int, int]:
    """(c_min, c_max) as arc_init() sets them with no /etc/system tunables."""
    allmem = arc_allmem(physmem)
    c_min = min(max(allmem // 64, 64 * MIB), 1 * GIB)
    c_max = max(allmem * 3 // 4, allmem - 1 * GIB)
    return c_min, c_max


def arc_stats_address(state_dir: StrPath) -> int:
    import hashlib  # only at boot

    digest = hashlib.sha256(os.path.abspath(state_dir).encode()).digest()
    return _KERNEL_DATA_BASE + (int.from_bytes(digest[:2], "big") << 6)


def value_address(kernel: Kernel, stat: str) -> int:
    """The address of arc_stats.arcstat_<stat>.value."""
    return kernel.arc_stats_addr + KSTAT_NAMED_SIZE * ARCSTAT_NAMES.index(stat) + VALUE_OFFSET


def stat_at(kernel: Kernel, addr: int) -> str | None:
    """The statistic whose value.ui64 is exactly at addr, if any."""
    off = addr - kernel.arc_stats_addr - VALUE_OFFSET
    if off < 0 or off % KSTAT_NAMED_SIZE or off // KSTAT_NAMED_SIZE >= len(ARCSTAT_NAMES):
        return None
    return ARCSTAT_NAMES[off // KSTAT_NAMED_SIZE]


# --- the document -------------------------------------------------------------------


def kernel_path(state_dir: StrPath) -> str:
    return os.path.join(state_dir, KERNEL_FILE)


def boot(
    state_dir: StrPath,
    physmem: int,
    shrink_speed: int = DEFAULT_SHRINK_SPEED,
    now: float | None = None,
) -> Kernel:
    """Write a freshly booted kernel: ARC tunables as arc_init() leaves them."""
    now = time.time() if now is None else now
    physmem -= physmem % PAGESIZE
    c_min, c_max = arc_init_defaults(physmem)
    arc = Arc(
        p=c_max // 2,
        c=c_max,
        c_min=c_min,
        c_max=c_max,
        size=int(c_max * WARM_FRACTION),
        at=now,
        shrink_speed=shrink_speed,
    )
    kernel = Kernel(physmem, now, arc_stats_address(state_dir), arc)
    with _locked(state_dir):
        _write(state_dir, kernel)
    return kernel


def read(state_dir: StrPath) -> Kernel:
    try:
        with open(kernel_path(state_dir)) as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise KernelMissing(str(kernel_path(state_dir))) from None
    return _from_doc(doc)


def poke(state_dir: StrPath, stat: str, value: int, now: float | None = None) -> Kernel:
    """mdb wrote value into arcstat_<stat>: the kernel variable changes at once."""
    if stat not in LIVE_FIELDS:
        raise ValueError(f"{stat} is not a live ARC variable")
    now = time.time() if now is None else now
    with _locked(state_dir):
        kernel = read(state_dir)
        arc = kernel.arc
        # The eviction so far happened under the old target; go on from there.
        arc = arc._replace(size=arc.size_now(now), at=now, **{stat: value})
        kernel = kernel._replace(arc=arc)
        _write(state_dir, kernel)
    return kernel


def set_shrink_speed(state_dir: StrPath, speed: int, now: float | None = None) -> Kernel:
    now = time.time() if now is None else now
    with _locked(state_dir):
        kernel = read(state_dir)
        arc = kernel.arc._replace(size=kernel.arc.size_now(now), at=now, shrink_speed=speed)
        kernel = kernel._replace(arc=arc)
        _write(state_dir, kernel)
    return kernel


def fill(state_dir: StrPath, now: float | None = None) -> Kernel:
    """The workload has read enough to warm the ARC up to its maximum again (the
    simulation only shrinks by itself; tests grow it with this)."""
    now = time.time() if now is None else now
    with _locked(state_dir):
        kernel = read(state_dir)
        top = kernel.arc.c_max
        arc = kernel.arc._replace(c=top, p=min(kernel.arc.p, top // 2), size=top, at=now)
        kernel = kernel._replace(arc=arc)
        _write(state_dir, kernel)
    return kernel


@contextmanager
def _locked(state_dir: StrPath) -> Iterator[None]:
    os.makedirs(state_dir, exist_ok=True)
    fd = os.open(os.path.join(state_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write(state_dir: StrPath, kernel: Kernel) -> None:
    import tempfile  # only for a write, not for every kstat

    fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=".kernel.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(_to_doc(kernel), f, indent=1)
        os.chmod(tmp, 0o644)  # kstat is for everyone; writes go through mdb -kw
        os.replace(tmp, kernel_path(state_dir))
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _to_doc(kernel: Kernel) -> dict[str, Any]:
    return {
        "physmem": kernel.physmem,
        "pagesize": PAGESIZE,
        "boot_time": kernel.boot_time,
        "arc_stats_addr": f"{kernel.arc_stats_addr:#x}",
        "arc": kernel.arc._asdict(),
    }


def _from_doc(doc: dict[str, Any]) -> Kernel:
    return Kernel(
        physmem=int(doc["physmem"]),
        boot_time=float(doc["boot_time"]),
        arc_stats_addr=int(doc["arc_stats_addr"], 16),
        arc=Arc(**doc["arc"]),
    )


# --- what kstat shows ---------------------------------------------------------------


def arcstats(kernel: Kernel, now: float) -> dict[str, int]:
    """Every zfs:0:arcstats statistic at `now` (bytes and counters)."""
    arc = kernel.arc
    size = arc.size_now(now)
    up = int(kernel.uptime(now))
    stats = dict.fromkeys(ARCSTAT_NAMES, 0)
    # A made-up but self-consistent mix: data dominates, as on a file server.
    hdr, other, metadata = size // 50, size // 12, size // 5
    data = size - hdr - other - metadata
    hits, misses = 9000 * up, 120 * up
    stats.update(
        hits=hits,
        misses=misses,
        demand_data_hits=hits * 6 // 10,
        demand_metadata_hits=hits * 3 // 10,
        prefetch_data_hits=hits - hits * 6 // 10 - hits * 3 // 10,
        demand_data_misses=misses * 7 // 10,
        demand_metadata_misses=misses - misses * 7 // 10,
        mru_hits=hits // 3,
        mfu_hits=hits - hits // 3,
        hash_elements=size // (64 * KIB),
        hash_elements_max=arc.c_max // (64 * KIB),
        p=arc.p,
        c=arc.c,
        c_min=arc.c_min,
        c_max=arc.c_max,
        size=size,
        compressed_size=(data + metadata) * 2 // 3,
        uncompressed_size=data + metadata,
        hdr_size=hdr,
        data_size=data,
        metadata_size=metadata,
        other_size=other,
        mru_size=(data + metadata) // 3,
        mfu_size=(data + metadata) - (data + metadata) // 3,
        arc_meta_used=hdr + other + metadata,
        arc_meta_limit=arc.c_max // 4,
        arc_meta_max=hdr + other + metadata,
        arc_meta_min=arc.c_min // 2,
    )
    return stats


# Where amd64 illumos puts the kernel (kernelbase) and the end of its text (econtig).
KERNELBASE = 0xFFFFFD8000000000
ECONTIG = 0xFFFFFFFFFBF00000


def system_pages(kernel: Kernel, now: float) -> dict[str, int]:
    """unix:0:system_pages at `now`, in pages. The ARC is kernel memory: as it
    shrinks, freemem grows. Guests' memory is not counted."""
    physmem = kernel.physmem_pages
    kernel_other = max(physmem // 32, (256 * MIB) // PAGESIZE)
    arc_pages = kernel.arc.size_now(now) // PAGESIZE
    pp_kernel = min(physmem, kernel_other + arc_pages)
    freemem = physmem - pp_kernel
    lotsfree = max(physmem // 64, (512 * KIB) // PAGESIZE)
    desfree = lotsfree // 2
    up = int(kernel.uptime(now))
    return {
        "physmem": physmem,
        "nalloc": 4000 * up,
        "nfree": 3900 * up,
        "nalloc_calls": 1500 * up,
        "nfree_calls": 1450 * up,
        "kernelbase": KERNELBASE,
        "econtig": ECONTIG,
        "freemem": freemem,
        "availrmem": freemem,
        "lotsfree": lotsfree,
        "desfree": desfree,
        "minfree": desfree // 2,
        "fastscan": min(physmem // 2, (64 * MIB) // PAGESIZE),
        "slowscan": 100,
        "nscan": 0,
        "desscan": 25,
        "pp_kernel": pp_kernel,
        "pagesfree": freemem,
        "pageslocked": pp_kernel,
        "pagestotal": physmem,
    }
