"""kstat(8) as devhost emulates it, run through the installed script, checked
against illumos kstat.c: formats, selection, sorting, exit statuses, messages."""

from __future__ import annotations

import json
import re
from pathlib import Path

from dh_support import GIB, KernelHost, boot_kernel

from devhost import tools

USAGE_HEAD = "Usage:\nkstat [ -Cjlpq ] [ -T d|u ] [ -c class ]\n"


def _lines(out: str) -> list[str]:
    return out.splitlines()


def test_kstat_p_prints_module_instance_name_statistic_tab_value(kernel_host: KernelHost) -> None:
    out = kernel_host.run("kstat", "-p", "zfs:0:arcstats:c_max")
    assert out.returncode == 0
    assert out.stdout == f"zfs:0:arcstats:c_max\t{13 * GIB}\n"
    assert out.stderr == ""


def test_kstat_C_separates_the_value_with_a_colon(kernel_host: KernelHost) -> None:
    out = kernel_host.run("kstat", "-C", "zfs:0:arcstats:c_max")
    assert out.stdout == f"zfs:0:arcstats:c_max:{13 * GIB}\n"


def test_kstat_l_lists_names_without_values(kernel_host: KernelHost) -> None:
    out = kernel_host.run("kstat", "-l", "zfs:0:arcstats:c_m*")
    assert _lines(out.stdout) == ["zfs:0:arcstats:c_max", "zfs:0:arcstats:c_min"]


def test_kstat_statistics_are_sorted_case_insensitively_within_a_kstat(
    kernel_host: KernelHost,
) -> None:
    out = kernel_host.run("kstat", "-p", "zfs:0:arcstats:c*")
    names = [line.split("\t")[0].split(":")[3] for line in _lines(out.stdout)]
    # strcasecmp order: "_" sorts before letters.
    assert names == ["c", "c_max", "c_min", "class", "compressed_size", "crtime"]
    everything = kernel_host.run("kstat", "-p", "zfs:0:arcstats")
    all_names = [line.split("\t")[0].split(":")[3] for line in _lines(everything.stdout)]
    assert all_names == sorted(all_names, key=str.lower)


def test_kstat_kstats_are_sorted_by_module_instance_name(kernel_host: KernelHost) -> None:
    out = kernel_host.run("kstat", "-p", ":::crtime")
    assert [line.split("\t")[0] for line in _lines(out.stdout)] == [
        "unix:0:system_pages:crtime",
        "zfs:0:arcstats:crtime",
    ]


def test_kstat_p_adds_class_crtime_snaptime_pseudo_statistics(kernel_host: KernelHost) -> None:
    out = kernel_host.run("kstat", "-p", "zfs:0:arcstats:/^(class|crtime|snaptime)$/")
    stats = dict(line.split("\t") for line in _lines(out.stdout))
    assert stats["zfs:0:arcstats:class"] == "misc"
    assert re.fullmatch(r"\d+\.\d{9}", stats["zfs:0:arcstats:crtime"])
    assert re.fullmatch(r"\d+\.\d{9}", stats["zfs:0:arcstats:snaptime"])
    pages = kernel_host.run("kstat", "-p", "unix:0:system_pages:class")
    assert pages.stdout == "unix:0:system_pages:class\tpages\n"


def test_kstat_without_p_shows_the_class_in_the_header_only(kernel_host: KernelHost) -> None:
    out = kernel_host.run("kstat", "zfs:0:arcstats:c_max")
    assert out.stdout == (
        "module: zfs                             instance: 0     \n"
        "name:   arcstats                        class:    misc\n"
        f"\tc_max                           {13 * GIB}\n"
        "\n"
    )
    no_class = kernel_host.run("kstat", "zfs:0:arcstats:class")
    assert (no_class.returncode, no_class.stdout) == (1, "")


def test_kstat_empty_fields_and_globs_match_everything(kernel_host: KernelHost) -> None:
    expected = f"zfs:0:arcstats:c_max\t{13 * GIB}\n"
    for selector in ("::arcstats:c_max", "zfs:*:arc*:c_max", ":::c_max", "zfs:0::c_max"):
        out = kernel_host.run("kstat", "-p", selector)
        assert out.stdout == expected, selector


def test_kstat_regex_fields_are_bracketed_by_slashes(kernel_host: KernelHost) -> None:
    out = kernel_host.run("kstat", "-p", "zfs:0:arcstats:/^c_m(ax|in)$/")
    assert [line.split("\t")[0] for line in _lines(out.stdout)] == [
        "zfs:0:arcstats:c_max",
        "zfs:0:arcstats:c_min",
    ]


def test_kstat_named_options_select_like_an_operand(kernel_host: KernelHost) -> None:
    options = kernel_host.run(
        "kstat", "-p", "-m", "zfs", "-i", "0", "-n", "arcstats", "-s", "c_max"
    )
    assert options.stdout == kernel_host.run("kstat", "-p", "zfs:0:arcstats:c_max").stdout


def test_kstat_each_operand_selects_separately_in_order(kernel_host: KernelHost) -> None:
    out = kernel_host.run("kstat", "-p", "zfs:0:arcstats:c_max", "unix:0:system_pages:physmem")
    assert [line.split("\t")[0] for line in _lines(out.stdout)] == [
        "zfs:0:arcstats:c_max",
        "unix:0:system_pages:physmem",
    ]


def test_kstat_c_option_selects_by_class(kernel_host: KernelHost) -> None:
    out = kernel_host.run("kstat", "-p", "-c", "pages", ":::physmem")
    assert out.stdout == f"unix:0:system_pages:physmem\t{16 * GIB // 4096}\n"


def test_kstat_exits_1_when_nothing_matches(kernel_host: KernelHost) -> None:
    for selector in (
        "zfs:0:arcstats:no_such_stat",
        "zfs:0:vdev_cache_stats",
        "cpu_info:::",
        "zfs:1",
    ):
        out = kernel_host.run("kstat", "-p", selector)
        assert (out.returncode, out.stdout, out.stderr) == (1, "", ""), selector


def test_kstat_q_prints_nothing_and_reports_by_status(kernel_host: KernelHost) -> None:
    assert kernel_host.run("kstat", "-q", "zfs:0:arcstats:c").returncode == 0
    assert kernel_host.run("kstat", "-q", "zfs:0:arcstats:nope").returncode == 1
    assert kernel_host.run("kstat", "-q", "zfs:0:arcstats:c").stdout == ""


def test_kstat_exits_2_on_usage_errors_with_kstats_messages(kernel_host: KernelHost) -> None:
    cases = {
        ("a:b:c:d:e",): "",
        ("-q", "-p", "zfs:::"): "-q and -lpj are mutually exclusive\n",
        ("-m", "zfs", "zfs:::"): (
            "[module[:instance[:name[:statistic]]]] and -m -i -n -s are mutually exclusive"
        ),
        ("-T", "x"): "",
        ("-p", "zfs:::", "0"): "Interval must be an integer >= 1",
        ("-p", "zfs:::", "1", "0"): "Count must be an integer >= 1",
        ("-p", "zfs:::", "1", "1", "1"): "",
    }
    for args, message in cases.items():
        out = kernel_host.run("kstat", *args)
        assert out.returncode == 2, args
        assert out.stderr == message + USAGE_HEAD + out.stderr[len(message + USAGE_HEAD) :], args
        assert out.stdout == "", args


def test_kstat_illegal_option_prints_usage_and_exits_0(kernel_host: KernelHost) -> None:
    # kstat.c handles getopt's '?' like -h: usage, exit(0).
    out = kernel_host.run("kstat", "-z")
    assert out.returncode == 0
    assert out.stderr.startswith("kstat: illegal option -- z\n" + USAGE_HEAD)


def test_kstat_exits_3_when_the_kernel_cannot_be_opened(tmp_path: Path) -> None:
    tools.install(tmp_path)
    host = KernelHost(tmp_path)
    out = host.run("kstat", "-p", "zfs:0:arcstats:c")
    assert (out.returncode, out.stdout) == (3, "")
    assert out.stderr == "kstat_open: No such file or directory\n"


def test_kstat_j_prints_json_with_the_pseudo_statistics(kernel_host: KernelHost) -> None:
    out = kernel_host.run("kstat", "-j", "zfs:0:arcstats:/^(c|crtime)$/")
    doc = json.loads(out.stdout)
    assert doc[0]["module"] == "zfs" and doc[0]["class"] == "misc" and doc[0]["type"] == 1
    assert doc[0]["data"]["c"] == 13 * GIB
    assert "class" not in doc[0]["data"]


def test_kstat_interval_and_count_repeat_the_report(kernel_host: KernelHost) -> None:
    out = kernel_host.run("kstat", "-p", "zfs:0:arcstats:c", "1", "2")
    assert out.stdout == f"zfs:0:arcstats:c\t{13 * GIB}\n\nzfs:0:arcstats:c\t{13 * GIB}\n"


def test_system_pages_counts_pages_of_4096_bytes(kernel_host: KernelHost) -> None:
    out = kernel_host.run("kstat", "-p", "unix:0:system_pages")
    stats = {line.split("\t")[0].split(":")[3]: line.split("\t")[1] for line in _lines(out.stdout)}
    assert int(stats["physmem"]) * 4096 == 16 * GIB
    assert int(stats["pagestotal"]) == int(stats["physmem"])
    assert 0 < int(stats["freemem"]) < int(stats["physmem"])
    assert "pagesize" not in stats  # illumos has none: ask pagesize(1)


def test_a_backend_can_parse_kstat_p_into_numbers(kernel_host: KernelHost) -> None:
    # What an illumos ARC backend does: one call, split each line at its tab.
    out = kernel_host.run("kstat", "-p", "zfs:0:arcstats")
    stats = {}
    for line in out.stdout.splitlines():
        key, value = line.split("\t", 1)
        stats[key.rsplit(":", 1)[1]] = value
    for name in ("c", "c_min", "c_max", "p", "size", "hits", "misses", "data_size"):
        assert stats[name].isdigit(), name
    assert int(stats["c_min"]) <= int(stats["size"]) <= int(stats["c_max"])


def test_pagesize_prints_4096(kernel_host: KernelHost) -> None:
    assert kernel_host.run("pagesize").stdout == "4096\n"
    assert kernel_host.run("pagesize", "-a").stdout == "4096\n2097152\n"
    bad = kernel_host.run("pagesize", "-x")
    assert bad.returncode == 1
    assert bad.stderr == "pagesize: illegal option -- x\nusage: pagesize [-a]\n"


def test_hostid_is_eight_hex_digits_of_its_own_per_state_dir(
    kernel_host: KernelHost, tmp_path: Path
) -> None:
    first = kernel_host.run("hostid")
    assert first.returncode == 0 and re.fullmatch(r"[0-9a-f]{8}\n", first.stdout)
    assert kernel_host.run("hostid").stdout == first.stdout  # the same every time
    other = boot_kernel(tmp_path / "other", speed=1 << 30)
    assert other.run("hostid").stdout != first.stdout
    assert kernel_host.run("hostid", "-x").stdout == first.stdout  # operands ignored


def test_kstat_values_are_live(tmp_path: Path) -> None:
    host = boot_kernel(tmp_path / "h", speed=1 << 40)  # evicts at once
    before = host.stat("size")
    host.mdb(f"{host.address('c')}/Z 0x40000000\n", write=True)
    assert host.stat("size") == 1 * GIB < before
