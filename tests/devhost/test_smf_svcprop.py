"""svcprop(1) conformance: output shapes, escaping, views, errors and exit codes
(illumos.md §3 "svcprop"; svcprop.c)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from smfcli_support import DEMO, Cli, bundle, demo_cli, make_cli, simple_service


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return demo_cli(tmp_path)


# --- output shapes ---------------------------------------------------------------------


def test_single_property_prints_just_its_value(cli: Cli) -> None:
    assert cli.ok("svcprop", "-p", "config/ram", DEMO) == "2048\n"


def test_multiple_values_print_space_separated_on_one_line(cli: Cli) -> None:
    assert cli.ok("svcprop", "-p", "config/ports", DEMO) == "80 443\n"


def test_values_escape_shell_metacharacters_with_backslashes(cli: Cli) -> None:
    assert cli.ok("svcprop", "-p", "config/disks", DEMO) == "disk\\ 0 disk1\n"
    assert cli.ok("svcprop", "-p", "config/label", DEMO) == 'a\\ \\"quoted\\"\\ label\n'
    cli.ok("svccfg", "-s", "site/demo", "setprop", "config/odd", "=", "astring:", r'"a;b&c|d<e>"')
    cli.ok("svccfg", "-s", "site/demo", "setprop", "config/none", "=", "astring:", '""')
    out = cli.ok("svcprop", "-c", "-p", "config/odd", "-p", "config/none", DEMO)
    assert out == 'a\\;b\\&c\\|d\\<e\\>\n""\n'


def test_whole_property_group_prints_name_type_value_lines(cli: Cli) -> None:
    out = cli.ok("svcprop", "-p", "config", DEMO)
    assert out.splitlines() == [
        "config/ram count 2048",
        'config/label astring a\\ \\"quoted\\"\\ label',
        "config/debug boolean false",
        "config/disks astring disk\\ 0 disk1",
        "config/ports count 80 443",
    ]


def test_no_p_option_prints_every_property_labelled(cli: Cli) -> None:
    lines = cli.ok("svcprop", DEMO).splitlines()
    assert "general/enabled boolean true" in lines
    assert "start/exec astring /bin/true\\ %i" in lines
    assert "config/ram count 2048" in lines


def test_t_labels_a_single_property(cli: Cli) -> None:
    assert cli.ok("svcprop", "-t", "-p", "config/ram", DEMO) == "config/ram count 2048\n"


def test_two_property_selectors_print_two_bare_lines(cli: Cli) -> None:
    out = cli.ok("svcprop", "-p", "config/ram", "-p", "config/debug", DEMO)
    assert out == "2048\nfalse\n"


def test_mixing_group_and_property_selectors_labels_every_line(cli: Cli) -> None:
    out = cli.ok("svcprop", "-p", "config/ram", "-p", "startd", DEMO)
    assert out == "config/ram count 2048\nstartd/duration astring transient\n"


def test_f_prints_full_property_fmris(cli: Cli) -> None:
    out = cli.ok("svcprop", "-f", "-p", "general/enabled", DEMO)
    assert out == f"{DEMO}/:properties/general/enabled boolean true\n"


def test_more_than_one_matched_entity_prints_full_fmris(cli: Cli) -> None:
    out = cli.ok("svcprop", "-p", "general/enabled", DEMO, "svc:/site/demo:second")
    assert out.splitlines() == [
        f"{DEMO}/:properties/general/enabled boolean true",
        "svc:/site/demo:second/:properties/general/enabled boolean false",
    ]


def test_property_fmri_operand_names_the_property(cli: Cli) -> None:
    assert cli.ok("svcprop", f"{DEMO}/:properties/general/enabled") == "true\n"
    out = cli.ok("svcprop", "svc:/site/demo/:properties/startd")
    assert out == "startd/duration astring transient\n"


def test_abbreviation_operand_matches_an_instance(cli: Cli) -> None:
    assert cli.ok("svcprop", "-p", "config/ram", "demo:second") == "512\n"


def test_service_operand_reads_the_service_properties(cli: Cli) -> None:
    assert cli.ok("svcprop", "-p", "config/ram", "site/demo") == "2048\n"


# --- which view -----------------------------------------------------------------------


def test_setprop_is_invisible_to_svcprop_until_refresh(cli: Cli) -> None:
    cli.ok("svccfg", "-s", "site/demo", "setprop", "config/ram", "=", "count:", "4096")
    assert cli.ok("svcprop", "-p", "config/ram", DEMO) == "2048\n"
    cli.ok("svccfg", "-s", DEMO, "refresh")
    assert cli.ok("svcprop", "-p", "config/ram", DEMO) == "4096\n"


def test_c_shows_the_composed_editing_view_at_once(cli: Cli) -> None:
    cli.ok("svccfg", "-s", "site/demo", "setprop", "config/ram", "=", "count:", "4096")
    assert cli.ok("svcprop", "-c", "-p", "config/ram", DEMO) == "4096\n"


def test_instance_properties_override_the_service_property_by_property(cli: Cli) -> None:
    second = "svc:/site/demo:second"
    assert cli.ok("svcprop", "-p", "config/ram", second) == "512\n"
    assert cli.ok("svcprop", "-p", "config/debug", second) == "false\n"


def test_big_c_shows_only_directly_attached_properties(cli: Cli) -> None:
    assert cli.ok("svcprop", "-C", "-p", "config/ram", "svc:/site/demo:second") == "512\n"
    proc = cli.run("svcprop", "-C", "-p", "config/ram", DEMO)
    assert proc.returncode == 1
    assert proc.stderr == f"svcprop: Couldn't find property group `config' for instance `{DEMO}'.\n"


def test_s_reads_a_named_snapshot(cli: Cli) -> None:
    cli.ok("svccfg", "-s", "site/demo", "setprop", "config/ram", "=", "count:", "4096")
    cli.ok("svccfg", "-s", DEMO, "refresh")
    assert cli.ok("svcprop", "-s", "initial", "-p", "config/ram", DEMO) == "2048\n"
    assert cli.ok("svcprop", "-s", "running", "-p", "config/ram", DEMO) == "4096\n"


def test_missing_snapshot_is_an_error(cli: Cli) -> None:
    proc = cli.run("svcprop", "-s", "start", DEMO)
    assert (proc.returncode, proc.stderr) == (1, "svcprop: No such snapshot.\n")


def test_restarter_group_is_read_live_under_the_running_snapshot(cli: Cli) -> None:
    cli.restarter(DEMO, "online")
    assert cli.ok("svcprop", "-p", "restarter/state", DEMO) == "online\n"
    cli.restarter(DEMO, "maintenance")
    assert cli.ok("svcprop", "-p", "restarter/state", DEMO) == "maintenance\n"


def test_instance_without_running_snapshot_shows_only_directly_attached_properties(
    cli: Cli,
) -> None:
    # illumos.md section 3. (svcprop.c itself would compose the current properties.)
    fresh = "svc:/site/demo:fresh"
    cli.ok("svccfg", "-s", "site/demo", "add", "fresh")
    proc = cli.run("svcprop", "-p", "config/ram", fresh)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert (
        proc.stderr == f"svcprop: Couldn't find property group `config' for instance `{fresh}'.\n"
    )
    assert cli.ok("svcprop", "-c", "-p", "config/ram", fresh) == "2048\n"
    cli.ok("svccfg", "-s", fresh, "addpg", "config", "application")
    cli.ok("svccfg", "-s", fresh, "setprop", "config/ram", "=", "count:", "64")
    assert cli.ok("svcprop", "-p", "config/ram", fresh) == "64\n"
    assert cli.ok("svcprop", "-p", "config", fresh) == "config/ram count 64\n"
    assert cli.ok("svcprop", fresh).splitlines() == ["config/ram count 64"]
    cli.restarter(fresh, "offline")
    lines = cli.ok("svcprop", fresh).splitlines()
    assert "config/ram count 64" in lines and "restarter/state astring offline" in lines
    assert not any(line.startswith(("start/", "general/")) for line in lines)


# --- errors -----------------------------------------------------------------------------


def test_missing_property_is_exit_1_with_its_message(cli: Cli) -> None:
    proc = cli.run("svcprop", "-p", "config/nothing", DEMO)
    assert proc.returncode == 1 and proc.stdout == ""
    assert (
        proc.stderr == f"svcprop: Couldn't find property `config/nothing' for instance `{DEMO}'.\n"
    )


def test_missing_property_group_is_exit_1_with_its_message(cli: Cli) -> None:
    proc = cli.run("svcprop", "-p", "nopg/x", "site/demo")
    assert proc.returncode == 1
    assert (
        proc.stderr
        == "svcprop: Couldn't find property group `nopg' for service `svc:/site/demo'.\n"
    )


def test_q_prints_nothing_and_keeps_the_exit_status(cli: Cli) -> None:
    assert cli.run("svcprop", "-q", "-p", "config/ram", DEMO).stdout == ""
    assert cli.run("svcprop", "-q", "-p", "config/ram", DEMO).returncode == 0
    proc = cli.run("svcprop", "-q", "-p", "config/nothing", DEMO)
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", "")


def test_v_prints_missing_property_messages_despite_q(cli: Cli) -> None:
    proc = cli.run("svcprop", "-q", "-v", "-p", "config/nothing", DEMO)
    assert proc.returncode == 1
    assert "Couldn't find property `config/nothing'" in proc.stderr


def test_pattern_matching_nothing_is_exit_1(cli: Cli) -> None:
    proc = cli.run("svcprop", "nosuch")
    assert (proc.returncode, proc.stderr) == (
        1,
        "svcprop: Pattern 'nosuch' doesn't match any entities\n",
    )


def test_glob_pattern_gets_svc_prefix_in_messages(cli: Cli) -> None:
    proc = cli.run("svcprop", "nosuch*")
    assert proc.stderr == "svcprop: Pattern 'svc:/nosuch*' doesn't match any entities\n"


def test_invalid_property_name_is_a_usage_error(cli: Cli) -> None:
    proc = cli.run("svcprop", "-p", "con fig/ram", DEMO)
    assert (proc.returncode, proc.stderr) == (2, "svcprop: Invalid component name `con fig'.\n")


def test_snapshot_options_exclude_each_other(cli: Cli) -> None:
    for opts in (["-c", "-C"], ["-c", "-s", "running"], ["-C", "-w"]):
        proc = cli.run("svcprop", *opts, DEMO)
        assert proc.returncode == 2 and proc.stderr.startswith("Usage: svcprop ")


def test_no_operand_is_a_usage_error(cli: Cli) -> None:
    proc = cli.run("svcprop", "-p", "config/ram")
    assert proc.returncode == 2 and proc.stderr.startswith("Usage: svcprop [-fqtv]")


def test_unknown_option_is_a_usage_error(cli: Cli) -> None:
    proc = cli.run("svcprop", "-k", DEMO)
    assert proc.returncode == 2
    assert proc.stderr.startswith("svcprop: illegal option -- k\nUsage: svcprop")


# --- -w ---------------------------------------------------------------------------------


# nanosleep and clock_nanosleep, by machine (/proc/PID/syscall gives the number).
_SLEEP_CALLS = {"x86_64": ("35", "230"), "aarch64": ("101", "115")}


def _asleep(pid: int) -> bool:
    """Whether the process is blocked in a sleep. svcprop -w sleeps only between its
    looks at the repository, once it has read the group it waits on."""
    try:
        if "nanosleep" in Path(f"/proc/{pid}/wchan").read_text():
            return True
        call = Path(f"/proc/{pid}/syscall").read_text().split()[0]
    except (OSError, IndexError):
        return False
    return call in _SLEEP_CALLS.get(os.uname().machine, ())


def test_w_waits_until_the_property_group_changes(cli: Cli) -> None:
    cli.restarter(DEMO, "offline", "online")
    waiter = subprocess.Popen(
        [str(cli.state / "bin" / "svcprop"), "-w", "-p", "restarter/state", DEMO],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not _asleep(waiter.pid) and waiter.poll() is None:
            assert time.monotonic() < deadline, "svcprop -w never began to wait"
            time.sleep(0.01)
        assert waiter.poll() is None, "svcprop -w returned before any change"
        cli.restarter(DEMO, "online")
        out, err = waiter.communicate(timeout=10)
    finally:
        if waiter.poll() is None:
            waiter.kill()
    assert (waiter.returncode, out, err) == (0, "online\n", "")


def test_w_needs_exactly_one_entity(cli: Cli) -> None:
    proc = cli.run("svcprop", "-w", "-p", "config/ram", DEMO, "svc:/site/demo:second")
    assert proc.returncode == 2 and proc.stderr.startswith("Usage: svcprop")


def test_types_and_values_round_trip_through_setprop(tmp_path: Path) -> None:
    cli = make_cli(tmp_path)
    cli.import_(bundle(simple_service("site/kinds")))
    fmri = "svc:/site/kinds:default"
    cli.ok("svccfg", "-s", fmri, "addpg", "kinds", "application")
    for prop, value in {
        "count": "7",
        "integer": "-7",
        "boolean": "true",
        "time": "1700000000.5",
        "fmri": "svc:/site/kinds",
        "host": "example.org",
        "net_address": "10.0.0.1",
        "uri": "http://example.org/",
        "opaque": "0a0b",
    }.items():
        cli.ok("svccfg", "-s", fmri, "setprop", f"kinds/{prop}", "=", f"{prop}:", value)
    out = cli.ok("svcprop", "-c", "-p", "kinds", fmri)
    assert out.splitlines() == [
        "kinds/count count 7",
        "kinds/integer integer -7",
        "kinds/boolean boolean true",
        "kinds/time time 1700000000.5",
        "kinds/fmri fmri svc:/site/kinds",
        "kinds/host host example.org",
        "kinds/net_address net_address 10.0.0.1",
        "kinds/uri uri http://example.org/",
        "kinds/opaque opaque 0a0b",
    ]
