"""mdb -k / -kw as devhost emulates it, run through the installed script, checked
against illumos mdb (mdb_print.c, mdb_cmds.c, mdb_io.c, mdb_err.c, mdb_main.c)."""

from __future__ import annotations

import re
import time
from pathlib import Path

from dh_support import GIB, KernelHost, boot_kernel

from devhost import tools
from devhost.kernel import arc

PRINT_A = re.compile(r"([0-9a-f]+) (arcstat_\w+\.value\.ui64) = (0x[0-9a-f]+|0)")


def test_mdb_print_a_prints_address_member_and_hex_value(kernel_host: KernelHost) -> None:
    out = kernel_host.mdb("arc_stats::print -a arcstat_c_max.value.ui64\n")
    assert (out.returncode, out.stderr) == (0, "")
    m = PRINT_A.fullmatch(out.stdout.rstrip("\n"))
    assert m is not None, out.stdout
    kernel = arc.read(kernel_host.state)
    assert int(m.group(1), 16) == arc.value_address(kernel, "c_max")
    assert m.group(2) == "arcstat_c_max.value.ui64"
    assert int(m.group(3), 16) == kernel_host.stat("c_max") == 13 * GIB
    assert out.stdout.endswith("\n") and out.stdout.count("\n") == 1


def test_mdb_print_prints_every_member_asked_for(kernel_host: KernelHost) -> None:
    out = kernel_host.mdb(
        "arc_stats::print -a arcstat_c.value.ui64 arcstat_c_min.value.ui64 arcstat_p.value.ui64\n"
        "arc_stats::print -a arcstat_size.value.ui64\n"
    )
    matches = [PRINT_A.fullmatch(line) for line in out.stdout.splitlines()]
    members = [m.group(2) for m in matches if m is not None]
    assert members == [f"arcstat_{s}.value.ui64" for s in ("c", "c_min", "p", "size")]


def test_mdb_print_without_a_omits_the_address_and_d_prints_0t_decimal(
    kernel_host: KernelHost,
) -> None:
    plain = kernel_host.mdb("arc_stats::print arcstat_c_max.value.ui64\n")
    assert plain.stdout == f"arcstat_c_max.value.ui64 = {13 * GIB:#x}\n"
    dec = kernel_host.mdb("arc_stats::print -d arcstat_c_max.value.ui64\n")
    assert dec.stdout == f"arcstat_c_max.value.ui64 = 0t{13 * GIB}\n"
    typed = kernel_host.mdb("arc_stats::print -t arcstat_c_max.value.ui64\n")
    assert typed.stdout == f"uint64_t arcstat_c_max.value.ui64 = {13 * GIB:#x}\n"


def test_mdb_addresses_are_stable_per_state_dir_and_differ_between_devhosts(
    tmp_path: Path,
) -> None:
    a, b = boot_kernel(tmp_path / "a"), boot_kernel(tmp_path / "b")
    assert a.address("c") == a.address("c")
    assert boot_kernel(tmp_path / "a").address("c") == a.address("c")  # rebooted
    assert a.address("c") != b.address("c")


def test_mdb_without_w_refuses_writes(kernel_host: KernelHost) -> None:
    addr = kernel_host.address("c_max")
    out = kernel_host.mdb(f"{addr}/Z 0x200000000\n", write=False)
    # mdb_main.c: commands from standard input fail but the exit status stays 0.
    assert (out.returncode, out.stdout) == (0, "")
    assert out.stderr == (
        f"mdb: failed to write 200000000 at address 0x{addr}: target is not open for writing\n"
    )
    assert kernel_host.stat("c_max") == 13 * GIB


def test_mdb_w_write_echoes_address_old_and_new_value(kernel_host: KernelHost) -> None:
    addr = kernel_host.address("c_max")
    out = kernel_host.mdb(f"{addr}/Z 0x200000000\n", write=True)
    assert (out.returncode, out.stderr) == (0, "")
    # write_uint64(): "%-#*lla%16T%-#24llx=%8T0x%llx\n"
    kernel = arc.read(kernel_host.state)
    offset = int(addr, 16) - kernel.arc_stats_addr
    label = f"arc_stats+{offset:#x}:"
    label += " " * (-len(label) % 16)
    old = f"{13 * GIB:#x}".ljust(24) + "="
    line = label + old
    line += " " * (-len(line) % 8)
    assert out.stdout == line + "0x200000000\n"
    assert kernel_host.stat("c_max") == 8 * GIB


def test_mdb_write_values_are_in_radix_16_unless_prefixed(kernel_host: KernelHost) -> None:
    addr = kernel_host.address("c_max")
    kernel_host.mdb(f"{addr}/Z 200000000\n", write=True)
    assert kernel_host.stat("c_max") == 8 * GIB
    kernel_host.mdb(f"{addr}/Z 0t4294967296\n", write=True)
    assert kernel_host.stat("c_max") == 4 * GIB
    kernel = arc.read(kernel_host.state)
    offset = arc.value_address(kernel, "c_max") - kernel.arc_stats_addr
    kernel_host.mdb(f"arc_stats+{offset:x}/Z 0x40000000\n", write=True)  # an expression
    assert kernel_host.stat("c_max") == 1 * GIB


def test_writing_c_max_alone_does_not_shrink_the_arc(tmp_path: Path) -> None:
    host = boot_kernel(tmp_path / "h", speed=1 << 40)
    size = host.stat("size")
    host.mdb(f"{host.address('c_max')}/Z 0x40000000\n", write=True)
    # No thread evicts: the size at a moment is computed from the time since the
    # write. A second later, at 1 TiB/s, any eviction towards a lower c would show.
    later = arc.arcstats(arc.read(host.state), time.time() + 1)
    assert (later["c_max"], later["c"], later["size"]) == (1 * GIB, 13 * GIB, size)
    assert host.stat("c_max") == 1 * GIB
    assert host.stat("c") == 13 * GIB
    assert host.stat("size") == size


def test_writing_c_makes_the_arc_evict_towards_it_at_the_configured_speed(
    tmp_path: Path,
) -> None:
    host = boot_kernel(tmp_path / "h", speed=16 * GIB)
    size = host.stat("size")
    started = time.time()
    host.mdb(f"{host.address('c')}/Z 0x80000000\n", write=True)  # 2 GiB
    while host.stat("size") > 2 * GIB:
        assert time.time() - started < 10
        time.sleep(0.1)
    elapsed = time.time() - started
    assert elapsed >= (size - 2 * GIB) / (16 * GIB) - 0.05
    assert host.stat("size") == 2 * GIB


def test_the_procedure_of_illumos_md_lowers_the_arc(tmp_path: Path) -> None:
    # illumos.md section 5: find the addresses, write c_max and c, keep p <= c and
    # c_min <= c_max, read back with kstat, wait for size.
    host = boot_kernel(tmp_path / "h", speed=1 << 40)
    target = 6 * GIB
    script = "".join(
        f"{host.address(stat)}/Z {target if stat != 'p' else target // 2:#x}\n"
        for stat in ("c_max", "c", "p")
    )
    out = host.mdb(script, write=True)
    assert (out.returncode, out.stderr, out.stdout.count("\n")) == (0, "", 3)
    assert host.stat("c_max") == host.stat("c") == target
    assert host.stat("p") == target // 2
    assert host.stat("c_min") <= host.stat("c_max")
    assert host.stat("size") <= target


def test_mdb_unknown_things_fail_with_mdbs_messages_and_exit_0(kernel_host: KernelHost) -> None:
    cases = {
        "::arc\n": "mdb: invalid command '::arc': unknown dcmd name\n",
        "no_such_symbol::print -a arcstat_c.value.ui64\n": (
            "mdb: failed to dereference symbol: unknown symbol name\n"
        ),
        "arc_stats::print -a arcstat_bogus.value.ui64\n": (
            "mdb: failed to find member arcstat_bogus of arc_stats_t: "
            "no such member of structure or union\n"
        ),
        "arc_stats::print -a arcstat_c.bogus\n": (
            "mdb: failed to find member bogus of kstat_named_t: "
            "no such member of structure or union\n"
        ),
        "1234/Z 1\n": "mdb: failed to write 1 at address 0x1234: no mapping for address\n",
        "arc_stats/Z\n": "mdb: expected value to write following Z\n",
    }
    for commands, message in cases.items():
        out = kernel_host.mdb(commands, write=True)
        assert (out.returncode, out.stdout, out.stderr) == (0, "", message), commands


def test_mdb_goes_on_after_a_failing_command(kernel_host: KernelHost) -> None:
    out = kernel_host.mdb("::bogus\narc_stats::print arcstat_c.value.ui64\n")
    assert out.stdout == f"arcstat_c.value.ui64 = {13 * GIB:#x}\n"
    assert out.stderr.startswith("mdb: invalid command")


def test_mdb_e_exits_1_when_the_command_fails(kernel_host: KernelHost) -> None:
    ok = kernel_host.run("mdb", "-k", "-e", "arc_stats::print arcstat_c.value.ui64")
    assert (ok.returncode, ok.stdout) == (0, f"arcstat_c.value.ui64 = {13 * GIB:#x}\n")
    addr = kernel_host.address("c")
    refused = kernel_host.run("mdb", "-k", "-e", f"{addr}/Z 1")
    assert refused.returncode == 1
    assert "target is not open for writing" in refused.stderr


def test_mdb_quit_stops_reading_commands(kernel_host: KernelHost) -> None:
    out = kernel_host.mdb("::quit\narc_stats::print arcstat_c.value.ui64\n")
    assert (out.returncode, out.stdout) == (0, "")


def test_mdb_needs_the_kernel_target(kernel_host: KernelHost) -> None:
    out = kernel_host.run("mdb", stdin="arc_stats::print arcstat_c.value.ui64\n")
    assert out.returncode == 1
    assert out.stderr.startswith("mdb: ")
    bad = kernel_host.run("mdb", "-Q")
    assert bad.returncode == 2
    assert bad.stderr.startswith("mdb: illegal option -- Q\nUsage: mdb [-fkmuwyAFKMSUW]")


def test_mdb_without_a_booted_kernel_fails(tmp_path: Path) -> None:
    tools.install(tmp_path)
    out = KernelHost(tmp_path).mdb("arc_stats::print arcstat_c.value.ui64\n")
    assert out.returncode == 1
    assert out.stderr.startswith("mdb: ")


def test_pokes_to_other_statistics_read_back_but_do_not_last(kernel_host: KernelHost) -> None:
    # arc_kstat_update() recomputes them: only p, c, c_min and c_max are the
    # kernel's variables themselves.
    addr = kernel_host.address("hits")
    out = kernel_host.mdb(f"{addr}/Z 0\n", write=True)
    assert re.fullmatch(r"arc_stats\+0x[0-9a-f]+: *(0x[0-9a-f]+|0) +=  *0x0\n", out.stdout)
    assert kernel_host.stat("hits") >= 0
    size = kernel_host.stat("size")
    kernel_host.mdb(f"{kernel_host.address('size')}/Z 1000\n", write=True)
    assert kernel_host.stat("size") == size
