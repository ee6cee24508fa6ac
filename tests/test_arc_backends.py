"""The ARC backends (vmbundle.memory.arc) and their adapters (kstat, mdb,
zfscache): the parsers against output in the exact formats illumos.md section 5
documents (kstat.c, mdb_print.c / mdb_cmds.c, zfscache.c, OpenZFS spl-kstat.c),
IllumosArc end to end against the devhost's simulated kernel, and LinuxArc
against files in the real procfs/sysfs formats."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from dh_support import KernelHost, boot_kernel

from vmbundle.adapters import kstat, mdb, zfscache
from vmbundle.errors import ConfigError, ToolError
from vmbundle.memory import arc

MIB, GIB = 1 << 20, 1 << 30

# --- kstat -p -----------------------------------------------------------------------

# `kstat -p zfs:0:arcstats:/^(c|c_max|c_min|class|crtime|p|size|snaptime)$/
# unix:0:system_pages:physmem`: TAB-separated; named kstats carry the class,
# crtime and snaptime pseudo-statistics; statistics sorted case-insensitively.
KSTAT_P = (
    "zfs:0:arcstats:c\t13958643712\n"
    "zfs:0:arcstats:c_max\t13958643712\n"
    "zfs:0:arcstats:c_min\t234881024\n"
    "zfs:0:arcstats:class\tmisc\n"
    "zfs:0:arcstats:crtime\t41.208337150\n"
    "zfs:0:arcstats:p\t6979321856\n"
    "zfs:0:arcstats:size\t12562779340\n"
    "zfs:0:arcstats:snaptime\t3725.118203442\n"
    "unix:0:system_pages:physmem\t4194304\n"
)


def test_kstat_parse_p_keys_every_line_by_its_full_name() -> None:
    assert kstat.parse_p(KSTAT_P) == {
        "zfs:0:arcstats:c": "13958643712",
        "zfs:0:arcstats:c_max": "13958643712",
        "zfs:0:arcstats:c_min": "234881024",
        "zfs:0:arcstats:class": "misc",
        "zfs:0:arcstats:crtime": "41.208337150",
        "zfs:0:arcstats:p": "6979321856",
        "zfs:0:arcstats:size": "12562779340",
        "zfs:0:arcstats:snaptime": "3725.118203442",
        "unix:0:system_pages:physmem": "4194304",
    }


def test_kstat_parse_p_keeps_a_value_with_spaces_whole() -> None:
    text = "cpu_info:0:cpu_info0:brand\tIntel(r) Xeon(r) CPU E5-2630 v4 @ 2.20GHz\n"
    assert kstat.parse_p(text) == {
        "cpu_info:0:cpu_info0:brand": "Intel(r) Xeon(r) CPU E5-2630 v4 @ 2.20GHz"
    }


@pytest.mark.parametrize(
    "text",
    [
        "zfs:0:arcstats:c 13958643712\n",  # the human format has no TAB
        "zfs:0:arcstats:c:13958643712\n",  # -C, not -p
        "module: zfs    instance: 0\n",
    ],
)
def test_kstat_parse_p_refuses_other_formats(text: str) -> None:
    with pytest.raises(ValueError):
        kstat.parse_p(text)


# --- mdb ----------------------------------------------------------------------------

# `arc_stats::print -a arcstat_c.value.ui64 arcstat_c_max.value.ui64
# arcstat_hits.value.ui64`: elt_print() "%llx " address, member, " = ", %#llx value.
MDB_PRINT_A = (
    "fffffffffbc37f38 arcstat_c.value.ui64 = 0x340000000\n"
    "fffffffffbc37f98 arcstat_c_max.value.ui64 = 0x340000000\n"
    "fffffffffbc37000 arcstat_hits.value.ui64 = 0\n"
)


def test_mdb_parse_print_a_gives_address_and_value_per_member() -> None:
    assert mdb.parse_print_a(MDB_PRINT_A) == {
        "arcstat_c.value.ui64": mdb.Printed(0xFFFFFFFFFBC37F38, 13 * GIB),
        "arcstat_c_max.value.ui64": mdb.Printed(0xFFFFFFFFFBC37F98, 13 * GIB),
        "arcstat_hits.value.ui64": mdb.Printed(0xFFFFFFFFFBC37000, 0),
    }


@pytest.mark.parametrize(
    "text",
    [
        "arcstat_c_max.value.ui64 = 0x340000000\n",  # without -a
        "fffffffffbc37f98 arcstat_c_max.value.ui64 = 0t13958643712\n",  # -d
        "fffffffffbc37f98 uint64_t arcstat_c_max.value.ui64 = 0x340000000\n",  # -t
    ],
)
def test_mdb_parse_print_a_refuses_other_formats(text: str) -> None:
    with pytest.raises(ValueError):
        mdb.parse_print_a(text)


# write_uint64(): "%-#*lla%16T%-#24llx=%8T0x%llx\n".
@pytest.mark.parametrize(
    ("echo", "old", "new"),
    [
        ("arc_stats+0x650:0x340000000             =       0x200000000\n", 13 * GIB, 8 * GIB),
        ("arc_stats+0x658:0                       =       0x0\n", 0, 0),
        ("arc_stats+0x20: 0x1                     =       0x2\n", 1, 2),
    ],
)
def test_mdb_parse_write_echo_gives_old_and_new_value(echo: str, old: int, new: int) -> None:
    assert mdb.parse_write_echo(echo) == (old, new)


@pytest.mark.parametrize(
    "text",
    ["", "arc_stats+0x650:0x340000000\n", "a: 0x1 = 0x2\nb: 0x3 = 0x4\n"],
)
def test_mdb_parse_write_echo_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError):
        mdb.parse_write_echo(text)


def test_mdb_member_is_the_arc_stats_t_path() -> None:
    assert mdb.member("c_max") == "arcstat_c_max.value.ui64"
    with pytest.raises(ValueError):
        mdb.member("c_max; ::quit")


# --- zfscache -----------------------------------------------------------------------

# zfscache.c do_ioctl() as first published ("arc_c_min: %lu\n" ...).
ZFSCACHE_V1 = (
    "arc_c_min: 1073741824\n"
    "arc_c_max: 267570331648\n"
    "system default arc_c_min: 1073741824\n"
    "system default arc_c_max: 267570331648\n"
    "/etc/system zfs_arc_min: 0\n"
    "/etc/system zfs_arc_max: 0\n"
)

# The later version: blank lines and the arc_init()-time allmem.
ZFSCACHE_V2 = (
    "arc_c_min: 1073741824\n"
    "arc_c_max: 34359738368\n"
    "\n"
    "system default arc_c_min: 1073741824\n"
    "system default arc_c_max: 267570331648\n"
    "system arc_init()-time of maximum available memory (allmem): 268644073472\n"
    "\n"
    "/etc/system zfs_arc_min: 0\n"
    "/etc/system zfs_arc_max: 0\n"
)


def test_zfscache_parse_both_versions() -> None:
    v1 = zfscache.parse(ZFSCACHE_V1)
    assert (v1["arc_c_min"], v1["arc_c_max"]) == (GIB, 267570331648)
    assert v1["/etc/system zfs_arc_max"] == 0
    v2 = zfscache.parse(ZFSCACHE_V2)
    assert (v2["arc_c_min"], v2["arc_c_max"]) == (GIB, 32 * GIB)
    assert v2["system arc_init()-time of maximum available memory (allmem)"] == 268644073472
    assert v2["system default arc_c_max"] == 267570331648


def test_zfscache_parse_refuses_other_lines() -> None:
    with pytest.raises(ValueError):
        zfscache.parse("Usage:\nzfscache                   (prints ZFS ARC parameters)\n")


# --- the mdb write plan -------------------------------------------------------------


def test_lowering_writes_p_then_c_max_then_c() -> None:
    assert arc.mdb_writes(4 * GIB, c=13 * GIB, p=6 * GIB, old_c_max=13 * GIB) == [
        ("p", 2 * GIB),
        ("c_max", 4 * GIB),
        ("c", 4 * GIB),
    ]


def test_lowering_leaves_p_alone_when_it_is_below_the_new_c() -> None:
    assert arc.mdb_writes(8 * GIB, c=13 * GIB, p=1 * GIB, old_c_max=13 * GIB) == [
        ("c_max", 8 * GIB),
        ("c", 8 * GIB),
    ]


def test_lowering_leaves_c_alone_when_it_is_already_below() -> None:
    assert arc.mdb_writes(8 * GIB, c=5 * GIB, p=1 * GIB, old_c_max=13 * GIB) == [("c_max", 8 * GIB)]


def test_raising_writes_c_max_only() -> None:
    assert arc.mdb_writes(12 * GIB, c=4 * GIB, p=2 * GIB, old_c_max=4 * GIB) == [
        ("c_max", 12 * GIB)
    ]


def test_a_retry_after_a_partial_write_finishes_it() -> None:
    # c_max was written, then mdb failed before c.
    assert arc.mdb_writes(4 * GIB, c=13 * GIB, p=2 * GIB, old_c_max=4 * GIB) == [("c", 4 * GIB)]
    assert arc.mdb_writes(4 * GIB, c=4 * GIB, p=2 * GIB, old_c_max=4 * GIB) == []


# --- IllumosArc against the devhost kernel ------------------------------------------


def _host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, speed: int = 0) -> KernelHost:
    """A booted 16 GiB simulated kernel whose kstat, mdb and pagesize come first on
    PATH. speed 0: the ARC never shrinks by itself."""
    host = boot_kernel(tmp_path / "host", 16 * GIB, speed=speed)
    monkeypatch.setenv("PATH", f"{host.bin}{os.pathsep}{os.environ['PATH']}")
    return host


def test_illumos_read_is_what_kstat_shows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = _host(tmp_path, monkeypatch)
    state = arc.IllumosArc().read()
    pages = host.run("kstat", "-p", "unix:0:system_pages:physmem").stdout.split("\t")[1]
    assert state == arc.ArcState(
        physmem=int(pages) * int(host.run("pagesize").stdout),
        c=host.stat("c"),
        c_min=host.stat("c_min"),
        c_max=host.stat("c_max"),
        size=host.stat("size"),
    )
    assert state.physmem == 16 * GIB
    assert state.c == state.c_max == 13 * GIB  # arc_init(): arc_c = arc_c_max
    assert state.size < state.c


def test_illumos_lowering_sets_c_max_c_and_p_and_the_arc_shrinks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = _host(tmp_path, monkeypatch, speed=4 * GIB)
    backend = arc.IllumosArc(use_zfscache=False)
    before = backend.read()
    backend.set_max(4 * GIB)
    first = backend.read()
    assert (first.c_max, first.c, first.c_min) == (4 * GIB, 4 * GIB, before.c_min)
    assert host.stat("p") == 2 * GIB  # was 6.5 GiB, above the new c
    # The size follows c down over time, not at once (about 2 s at 4 GiB/s).
    assert first.size > first.c
    sizes = [first.size]
    started = time.monotonic()
    while sizes[-1] > 4 * GIB:
        assert time.monotonic() - started < 15, sizes
        time.sleep(0.2)
        sizes.append(backend.read().size)
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[-1] == 4 * GIB


def test_illumos_raising_sets_c_max_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = _host(tmp_path, monkeypatch)
    backend = arc.IllumosArc(use_zfscache=False)
    backend.set_max(4 * GIB)
    p = host.stat("p")
    backend.set_max(8 * GIB)
    state = backend.read()
    assert (state.c_max, state.c) == (8 * GIB, 4 * GIB)  # c grows back by itself
    assert host.stat("p") == p


def test_illumos_refuses_a_maximum_below_the_minimum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = _host(tmp_path, monkeypatch)
    backend = arc.IllumosArc(use_zfscache=False)
    c_min = backend.read().c_min
    with pytest.raises(arc.ArcError, match="minimum"):
        backend.set_max(c_min - 1)
    with pytest.raises(arc.ArcError, match="physical memory"):
        backend.set_max(16 * GIB)
    assert host.stat("c_max") == 13 * GIB
    backend.set_max(c_min)  # equal is allowed: c_min <= c_max
    assert host.stat("c_max") == host.stat("c") == c_min


def test_mdb_errors_are_tool_errors_with_mdbs_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _host(tmp_path, monkeypatch)
    with pytest.raises(ToolError) as unknown_symbol:
        mdb.print_addresses("no_such_symbol", ["arcstat_c.value.ui64"])
    assert str(unknown_symbol.value) == "mdb: failed to dereference symbol: unknown symbol name"
    assert unknown_symbol.value.returncode == 1
    with pytest.raises(ToolError) as unknown_member:
        mdb.address_of("bogus")
    assert str(unknown_member.value) == (
        "mdb: failed to find member arcstat_bogus of arc_stats_t: "
        "no such member of structure or union"
    )
    with pytest.raises(ToolError) as unmapped:
        mdb.write_u64(0x1234, 1)
    assert str(unmapped.value) == (
        "mdb: failed to write 1 at address 0x1234: no mapping for address"
    )


def test_mdb_address_and_write_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = _host(tmp_path, monkeypatch)
    addresses = mdb.addresses_of(["c_min", "c_max"])
    assert f"{addresses['c_max']:x}" == host.address("c_max")
    # arc_stats_t declares c_max right after c_min; a kstat_named_t is 48 bytes.
    assert addresses["c_max"] - addresses["c_min"] == 48
    assert mdb.write_u64(addresses["c_max"], 8 * GIB) == 13 * GIB
    assert host.stat("c_max") == 8 * GIB


def test_a_failing_mdb_write_fails_set_max_with_mdbs_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = _host(tmp_path, monkeypatch)
    # An mdb that drops -w: every write is refused, as without write access.
    wrapper = tmp_path / "readonly-bin"
    wrapper.mkdir()
    (wrapper / "mdb").write_text(
        "#!/bin/sh\n"
        "n=$#\n"
        'while [ "$n" -gt 0 ]; do a=$1; shift; [ "$a" = -kw ] && a=-k; set -- "$@" "$a"; '
        "n=$((n - 1)); done\n"
        f'exec {host.bin / "mdb"} "$@"\n'
    )
    (wrapper / "mdb").chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(ToolError, match="target is not open for writing"):
        arc.IllumosArc(use_zfscache=False).set_max(4 * GIB)
    assert host.stat("c_max") == host.stat("c") == 13 * GIB


def test_kstat_read_of_nothing_is_empty_and_a_missing_statistic_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _host(tmp_path, monkeypatch)
    assert kstat.read(["zfs:0:nosuch"]) == {}
    with pytest.raises(ToolError, match="no such statistic: zfs:0:arcstats:bogus"):
        kstat.read_integers(["zfs:0:arcstats:c", "zfs:0:arcstats:bogus"])
    with pytest.raises(ToolError, match="not an integer"):
        kstat.read_integers(["zfs:0:arcstats:class"])


def _fake_zfscache(directory: Path, log: Path, exit_status: int = 0) -> None:
    """A zfscache that records its arguments and prints what the kernel would
    leave (the first version's format), or fails as errx(3C) does."""
    directory.mkdir(exist_ok=True)
    script = directory / "zfscache"
    if exit_status:
        body = (
            'echo "zfscache: Requested maximum $4 is too large." >&2\n'
            "echo >&2\n"
            f"exit {exit_status}\n"
        )
    else:
        body = (
            'printf \'arc_c_min: %s\\narc_c_max: %s\\n\' "$2" "$4"\n'
            "printf 'system default arc_c_min: 234881024\\n"
            "system default arc_c_max: 13958643712\\n"
            "/etc/system zfs_arc_min: 0\\n/etc/system zfs_arc_max: 0\\n'\n"
        )
    script.write_text(f'#!/bin/sh\necho "$@" >> {log}\n{body}')
    script.chmod(0o755)


def test_illumos_uses_zfscache_where_the_host_has_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = _host(tmp_path, monkeypatch)
    log = tmp_path / "zfscache.log"
    _fake_zfscache(tmp_path / "smartos-bin", log)
    monkeypatch.setenv("PATH", f"{tmp_path / 'smartos-bin'}{os.pathsep}{os.environ['PATH']}")
    c_min = host.stat("c_min")
    arc.IllumosArc().set_max(4 * GIB)
    assert log.read_text() == f"-l {c_min} -u {4 * GIB}\n"
    assert host.stat("c_max") == 13 * GIB  # the fake leaves the kernel alone: no mdb ran


def test_zfscache_errors_are_tool_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _host(tmp_path, monkeypatch)
    _fake_zfscache(tmp_path / "smartos-bin", tmp_path / "log", exit_status=1)
    monkeypatch.setenv("PATH", f"{tmp_path / 'smartos-bin'}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(ToolError) as failed:
        arc.IllumosArc().set_max(4 * GIB)
    assert str(failed.value) == f"zfscache: Requested maximum {4 * GIB} is too large."


# --- LinuxArc -----------------------------------------------------------------------

# /proc/spl/kstat/zfs/arcstats (OpenZFS spl-kstat.c): "%d %d 0x%02x %d %d %lld %lld",
# "%-31s %-4s %s" for the column names, then "%-31s %-4d " and the value.
LINUX_ARCSTATS = (
    "9 1 0x01 147 39984 2738216459 6519817361806\n"
    "name                            type data\n"
    "hits                            4    5968846374\n"
    "misses                          4    1659178751\n"
    "c                               4    8589934592\n"
    "c_min                           4    536870912\n"
    "c_max                           4    12884901888\n"
    "size                            4    6442450944\n"
    "memory_all_bytes                4    17179869184\n"
    "memory_available_bytes          3    -1048576\n"
)

MEMINFO = (
    "MemTotal:       16777216 kB\n"
    "MemFree:         5505516 kB\n"
    "MemAvailable:    9116244 kB\n"
    "HugePages_Total:       0\n"
)


def test_parse_linux_arcstats_skips_the_two_header_lines() -> None:
    stats = arc.parse_linux_arcstats(LINUX_ARCSTATS)
    assert stats["c"] == 8 * GIB
    assert stats["c_max"] == 12 * GIB
    assert stats["memory_available_bytes"] == -(1 << 20)
    assert "name" not in stats and len(stats) == 8


def test_parse_linux_arcstats_refuses_a_file_without_the_header() -> None:
    with pytest.raises(ValueError):
        arc.parse_linux_arcstats("c 4 8589934592\n")


def test_parse_meminfo_total() -> None:
    assert arc.parse_meminfo_total(MEMINFO) == 16 * GIB
    with pytest.raises(ValueError):
        arc.parse_meminfo_total("MemFree: 1 kB\n")


@pytest.fixture
def linux(tmp_path: Path) -> arc.LinuxArc:
    (tmp_path / "arcstats").write_text(LINUX_ARCSTATS)
    (tmp_path / "zfs_arc_max").write_text("0\n")  # 0: the module's default
    (tmp_path / "meminfo").write_text(MEMINFO)
    return arc.LinuxArc(
        arcstats=tmp_path / "arcstats",
        arc_max=tmp_path / "zfs_arc_max",
        meminfo=tmp_path / "meminfo",
    )


def test_linux_read(linux: arc.LinuxArc) -> None:
    assert linux.read() == arc.ArcState(
        physmem=16 * GIB, c=8 * GIB, c_min=512 * MIB, c_max=12 * GIB, size=6 * GIB
    )


def test_linux_set_max_writes_the_module_parameter(linux: arc.LinuxArc) -> None:
    linux.set_max(4 * GIB)
    assert linux.arc_max.read_text() == f"{4 * GIB}\n"
    linux.set_max(14 * GIB)
    assert linux.arc_max.read_text() == f"{14 * GIB}\n"


def test_linux_refuses_what_openzfs_would_ignore(linux: arc.LinuxArc) -> None:
    for value, why in [
        (512 * MIB, "minimum"),  # arc_tuning_update() wants zfs_arc_max > arc_c_min
        (16 * GIB, "physical memory"),  # ... and < allmem
    ]:
        with pytest.raises(arc.ArcError, match=why):
            linux.set_max(value)
    linux.arcstats.write_text(LINUX_ARCSTATS.replace("536870912", str(32 * MIB)))
    with pytest.raises(arc.ArcError, match="64 MiB"):
        linux.set_max(48 * MIB)
    assert linux.arc_max.read_text() == "0\n"


def test_linux_errors_name_the_file(linux: arc.LinuxArc, tmp_path: Path) -> None:
    linux.arc_max.unlink()  # the zfs module is not loaded
    with pytest.raises(arc.ArcError, match="zfs_arc_max: No such file"):
        linux.set_max(4 * GIB)
    assert not linux.arc_max.exists()
    missing = arc.LinuxArc(arcstats=tmp_path / "nothing", meminfo=tmp_path / "meminfo")
    with pytest.raises(arc.ArcError, match="nothing: No such file"):
        missing.read()


def test_linux_physmem_without_meminfo_comes_from_sysconf(linux: arc.LinuxArc) -> None:
    linux.meminfo.unlink()
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert linux.read().physmem == pages


# --- choose -------------------------------------------------------------------------


def test_choose_auto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    arcstats = tmp_path / "arcstats"
    assert arc.choose("auto", platform="linux", linux_arcstats=arcstats) is None
    assert isinstance(
        arc.choose("auto", platform="sunos5", linux_arcstats=arcstats), arc.IllumosArc
    )
    arcstats.write_text(LINUX_ARCSTATS)
    linux = arc.choose("auto", platform="linux", linux_arcstats=arcstats)
    assert isinstance(linux, arc.LinuxArc) and linux.arcstats == arcstats
    # A devhost's emulated kstat and mdb on PATH: illumos, even on Linux.
    host = boot_kernel(tmp_path / "host")
    monkeypatch.setenv("PATH", str(host.bin))
    assert isinstance(arc.choose("auto", platform="linux", linux_arcstats=arcstats), arc.IllumosArc)


def test_choose_forced_and_none(tmp_path: Path) -> None:
    assert arc.choose("none", platform="sunos5") is None
    assert isinstance(arc.choose("illumos", platform="linux"), arc.IllumosArc)
    assert isinstance(arc.choose("linux", platform="sunos5"), arc.LinuxArc)
    assert arc.IllumosArc.name == "illumos" and arc.LinuxArc.name == "linux"
    with pytest.raises(ConfigError, match="auto, illumos, linux, none"):
        arc.choose("zfs")
