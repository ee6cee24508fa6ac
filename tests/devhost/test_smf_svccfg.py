"""svccfg(8) conformance: entity and property editing, value syntax, listings,
refresh, command files, messages and exit codes (illumos.md §3 "svccfg";
svccfg_main.c, svccfg_engine.c, svccfg.l, svccfg.y, svccfg_libscf.c)."""

from __future__ import annotations

from pathlib import Path

import pytest
from smfcli_support import DEMO, Cli, demo_cli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return demo_cli(tmp_path)


def svc_props(cli: Cli, pg: str, fmri: str = "site/demo") -> dict[str, tuple[str, list[str]]]:
    return {name: (p["type"], p["values"]) for name, p in cli.pgs(fmri)[pg]["props"].items()}


# --- setprop --------------------------------------------------------------------------------


def test_setprop_sets_a_typed_value(cli: Cli) -> None:
    cli.ok("svccfg", "-s", "site/demo", "setprop", "config/ram", "=", "count:", "4096")
    assert svc_props(cli, "config")["ram"] == ("count", ["4096"])


def test_setprop_infers_the_type_of_an_existing_property(cli: Cli) -> None:
    cli.ok("svccfg", "-s", "site/demo", "setprop", "config/ram", "=", "1024")
    assert svc_props(cli, "config")["ram"] == ("count", ["1024"])


def test_setprop_with_a_type_disagreeing_with_the_existing_property_fails(cli: Cli) -> None:
    # illumos.md section 3 (lscf_setprop() would change the type); the message is
    # svccfg's own for addpropvalue with the wrong type.
    proc = cli.run("svccfg", "-s", "site/demo", "setprop", "config/ram", "=", "astring:", "big")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == 'svccfg: Property "ram" is not of type "astring:".\n'
    proc = cli.run("svccfg", "-s", "site/demo", "setprop", "config/ram", "=", "integer:", "(1 2)")
    assert proc.stderr == 'svccfg: Property "ram" is not of type "integer:".\n'
    assert svc_props(cli, "config")["ram"] == ("count", ["2048"])


def test_setprop_type_required_for_new_properties(cli: Cli) -> None:
    proc = cli.run("svccfg", "-s", "site/demo", "setprop", "config/new", "=", "5")
    assert (proc.returncode, proc.stderr) == (1, "svccfg: Type required for new properties.\n")


def test_setprop_on_an_instance_infers_the_type_from_the_parent_service(cli: Cli) -> None:
    cli.ok("svccfg", "-s", DEMO, "addpg", "config", "application")
    cli.ok("svccfg", "-s", DEMO, "setprop", "config/ram", "=", "64")
    assert svc_props(cli, "config", DEMO)["ram"] == ("count", ["64"])


def test_setprop_quoted_string_unescapes_quotes_and_backslashes(cli: Cli) -> None:
    cli.ok(
        "svccfg",
        "-s",
        "site/demo",
        "setprop",
        "config/label",
        "=",
        "astring:",
        r'"say \"hi\" \\ bye"',
    )
    assert svc_props(cli, "config")["label"] == ("astring", ['say "hi" \\ bye'])


def test_setprop_value_list_in_parentheses(cli: Cli) -> None:
    cli.ok("svccfg", "-s", "site/demo", "setprop", "config/ports", "=", "count:", "(1", "2", "3)")
    assert svc_props(cli, "config")["ports"] == ("count", ["1", "2", "3"])
    cli.ok("svccfg", "-s", "site/demo", "setprop", "config/disks", "=", '("a b" "c")')
    assert svc_props(cli, "config")["disks"] == ("astring", ["a b", "c"])


def test_setprop_string_lists_must_be_quoted(cli: Cli) -> None:
    proc = cli.run("svccfg", "-s", "site/demo", "setprop", "config/disks", "=", "astring:", "(a b)")
    assert proc.returncode == 1
    assert proc.stderr == (
        "svccfg: Multiple string values or string values with spaces must be quoted with '\"'.\n"
    )


def test_setprop_rejects_a_value_invalid_for_its_type(cli: Cli) -> None:
    proc = cli.run("svccfg", "-s", "site/demo", "setprop", "config/ram", "=", "count:", "-3")
    assert (proc.returncode, proc.stderr) == (1, 'svccfg: Invalid "count" value "-3".\n')
    proc = cli.run("svccfg", "-s", "site/demo", "setprop", "config/debug", "=", "boolean:", "yes")
    assert proc.stderr == 'svccfg: Invalid "boolean" value "yes".\n'


def test_setprop_unknown_type_is_an_error_naming_the_type_word(cli: Cli) -> None:
    # The type word keeps its colon in the message (lscf_setprop prints it as given).
    proc = cli.run("svccfg", "-s", "site/demo", "setprop", "config/x", "=", "float:", "1")
    assert (proc.returncode, proc.stderr) == (1, 'svccfg: Unknown type "float:".\n')


def test_setprop_needs_an_existing_property_group(cli: Cli) -> None:
    proc = cli.run("svccfg", "-s", "site/demo", "setprop", "nopg/x", "=", "count:", "1")
    assert (proc.returncode, proc.stderr) == (1, 'svccfg: No such property group "nopg".\n')


def test_setprop_equals_sign_is_its_own_token(cli: Cli) -> None:
    # svccfg.l ends a word at `=`, so no blanks are needed around it.
    cli.ok("svccfg", "-s", "site/demo", "setprop", "config/ram=count:", "8")
    assert svc_props(cli, "config")["ram"] == ("count", ["8"])


def test_setprop_without_a_value_is_a_syntax_error(cli: Cli) -> None:
    proc = cli.run("svccfg", "-s", "site/demo", "setprop", "config/ram", "=")
    assert (proc.returncode, proc.stderr) == (1, "svccfg: Syntax error.\n")


def test_svccfg_never_auto_refreshes_after_setprop(cli: Cli) -> None:
    before = cli.snapshots(DEMO)["running"]
    cli.ok("svccfg", "-s", "site/demo", "setprop", "config/ram", "=", "count:", "4096")
    cli.ok("svccfg", "-s", DEMO, "setprop", "general/enabled", "=", "false")
    assert cli.snapshots(DEMO)["running"] == before
    assert "restarter_actions" not in cli.pgs(DEMO) or cli.pgs(DEMO)["restarter_actions"][
        "props"
    ].keys() == {"refresh"}


# --- addpropvalue, delpropvalue, delprop, addpg, delpg ----------------------------------------


def test_addpropvalue_appends_and_checks_the_type(cli: Cli) -> None:
    cli.ok("svccfg", "-s", "site/demo", "addpropvalue", "config/ports", "8080")
    assert svc_props(cli, "config")["ports"] == ("count", ["80", "443", "8080"])
    proc = cli.run("svccfg", "-s", "site/demo", "addpropvalue", "config/ports", "astring:", "x")
    assert proc.stderr == 'svccfg: Property "ports" is not of type "astring:".\n'


def test_addpropvalue_creates_a_new_property_with_a_type(cli: Cli) -> None:
    cli.ok("svccfg", "-s", "site/demo", "addpropvalue", "config/tags", "astring:", '"t 1"')
    assert svc_props(cli, "config")["tags"] == ("astring", ["t 1"])


def test_delpropvalue_removes_values_matching_a_glob(cli: Cli) -> None:
    cli.ok("svccfg", "-s", "site/demo", "delpropvalue", "config/ports", "4*")
    assert svc_props(cli, "config")["ports"] == ("count", ["80"])


def test_delprop_deletes_a_property(cli: Cli) -> None:
    cli.ok("svccfg", "-s", "site/demo", "delprop", "config/ram")
    assert "ram" not in svc_props(cli, "config")


def test_delprop_of_a_group_name_deletes_the_group(cli: Cli) -> None:
    cli.ok("svccfg", "-s", "site/demo", "delprop", "config")
    assert "config" not in cli.pgs("site/demo")


def test_delprop_of_a_missing_property_is_an_error(cli: Cli) -> None:
    proc = cli.run("svccfg", "-s", "site/demo", "delprop", "config/nope")
    assert (proc.returncode, proc.stderr) == (1, "svccfg: No such property config/nope.\n")


def test_addpg_creates_a_typed_group(cli: Cli) -> None:
    cli.ok("svccfg", "-s", DEMO, "addpg", "extra", "application")
    assert cli.pgs(DEMO)["extra"]["type"] == "application"
    assert not cli.pgs(DEMO)["extra"].get("nonpersistent")


def test_addpg_flag_p_makes_the_group_nonpersistent(cli: Cli) -> None:
    cli.ok("svccfg", "-s", DEMO, "addpg", "scratch", "framework", "P")
    assert cli.pgs(DEMO)["scratch"]["nonpersistent"] is True
    assert (
        cli.ok("svccfg", "-s", DEMO, "listpg", "scratch") == "scratch  framework\tNONPERSISTENT\n"
    )


def test_addpg_existing_group_is_an_error(cli: Cli) -> None:
    proc = cli.run("svccfg", "-s", "site/demo", "addpg", "config", "application")
    assert (proc.returncode, proc.stderr) == (1, "svccfg: Property group already exists.\n")


def test_delpg_deletes_a_group(cli: Cli) -> None:
    cli.ok("svccfg", "-s", "site/demo", "delpg", "startd")
    assert "startd" not in cli.pgs("site/demo")


def test_delpg_of_a_missing_group_is_an_error(cli: Cli) -> None:
    proc = cli.run("svccfg", "-s", "site/demo", "delpg", "nope")
    assert (proc.returncode, proc.stderr) == (1, 'svccfg: No such property group "nope".\n')


# --- listpg and listprop ----------------------------------------------------------------------


def test_listpg_pads_names_to_the_longest_plus_two_spaces(cli: Cli) -> None:
    out = cli.ok("svccfg", "-s", "site/demo", "listpg", "st*")
    assert out == "start   method\nstop    method\nstartd  framework\n"


def test_listprop_pads_types_to_7_and_quotes_strings_as_needed(cli: Cli) -> None:
    out = cli.ok("svccfg", "-s", "site/demo", "listprop", "config/*")
    assert out.splitlines() == [
        "config/ram    count    2048",
        'config/label  astring  "a \\"quoted\\" label"',
        "config/debug  boolean  false",
        'config/disks  astring  "disk 0" "disk1"',
        "config/ports  count    80 443",
    ]


def test_listprop_shows_groups_with_their_properties(cli: Cli) -> None:
    out = cli.ok("svccfg", "-s", "site/demo", "listprop", "startd")
    assert out == "startd           framework\nstartd/duration  astring  transient\n"


def test_listprop_quotes_a_single_string_value_only_when_needed(cli: Cli) -> None:
    out = cli.ok("svccfg", "-s", "site/demo", "listprop", "stop/exec")
    assert out == "stop/exec  astring  :kill\n"


# --- entities ---------------------------------------------------------------------------------


def test_add_creates_an_instance_of_the_selected_service(cli: Cli) -> None:
    cli.ok("svccfg", "-s", "site/demo", "add", "vm1")
    assert "svc:/site/demo:vm1\n" in cli.ok("svcs", "-a", "-H", "-o", "fmri")


def test_add_existing_instance_is_an_error(cli: Cli) -> None:
    proc = cli.run("svccfg", "-s", "site/demo", "add", "second")
    assert (proc.returncode, proc.stderr) == (1, "svccfg: Instance already exists.\n")


def test_add_without_selection_creates_a_service(cli: Cli) -> None:
    cli.ok("svccfg", "add", "site/fresh")
    assert "site/fresh" in cli.repo.read()["services"]


def test_delete_refuses_an_online_instance_without_f(cli: Cli) -> None:
    cli.restarter(DEMO, "online")
    proc = cli.run("svccfg", "delete", DEMO)
    assert proc.returncode == 1
    assert proc.stderr == f"svccfg: Instance {DEMO} may be running.  Use delete -f if it is not.\n"
    cli.ok("svccfg", "delete", "-f", DEMO)
    assert "default" not in cli.repo.read()["services"]["site/demo"]["instances"]


def test_delete_an_offline_instance_by_name_in_the_selection(cli: Cli) -> None:
    cli.restarter("svc:/site/demo:second", "disabled")
    cli.ok("svccfg", "-s", "site/demo", "delete", "second")
    assert "second" not in cli.repo.read()["services"]["site/demo"]["instances"]


def test_delete_service_removes_what_its_dependents_put_elsewhere(cli: Cli) -> None:
    assert "demo_client" in cli.pgs("site/client")
    cli.ok("svccfg", "delete", "site/demo")
    services = cli.repo.read()["services"]
    assert "site/demo" not in services
    assert "site/client" not in services or "demo_client" not in services["site/client"]["pgs"]


def test_select_of_a_missing_entity_is_a_pattern_error(cli: Cli) -> None:
    proc = cli.run("svccfg", "-s", "nosuch", "listpg")
    assert proc.returncode == 1
    assert proc.stderr == "svccfg: Pattern 'nosuch' doesn't match any instances or services\n"


# --- refresh, snapshots, environment ----------------------------------------------------------


def test_refresh_takes_the_running_snapshot_and_posts_a_refresh_action(cli: Cli) -> None:
    cli.ok("svccfg", "-s", "site/demo", "setprop", "config/ram", "=", "count:", "4096")
    with cli.repo.edit() as doc:
        doc["services"]["site/demo"]["instances"]["default"]["pgs"].pop("restarter_actions", None)
    cli.ok("svccfg", "-s", DEMO, "refresh")
    snap = cli.snapshots(DEMO)["running"]
    assert snap["service"]["config"]["props"]["ram"]["values"] == ["4096"]
    action = cli.pgs(DEMO)["restarter_actions"]
    assert action["nonpersistent"] is True
    assert action["props"]["refresh"]["type"] == "integer"


def test_refresh_needs_a_selected_instance(cli: Cli) -> None:
    proc = cli.run("svccfg", "-s", "site/demo", "refresh")
    assert (proc.returncode, proc.stderr) == (1, "svccfg: Instance not selected.\n")


def test_listsnap_lists_the_import_snapshots(cli: Cli) -> None:
    assert cli.ok("svccfg", "-s", DEMO, "listsnap").split() == ["initial", "last-import", "running"]


def test_setenv_replaces_a_variable_in_the_start_method(cli: Cli) -> None:
    cli.ok("svccfg", "-s", "site/demo", "setenv", "MODE", "prod")
    assert svc_props(cli, "start")["environment"] == (
        "astring",
        ["GREETING=hello world", "MODE=prod"],
    )
    cli.ok("svccfg", "-s", "site/demo", "unsetenv", "GREETING")
    assert svc_props(cli, "start")["environment"] == ("astring", ["MODE=prod"])


def test_setenv_i_sets_the_instance_method_context(cli: Cli) -> None:
    cli.ok("svccfg", "-s", DEMO, "setenv", "-i", "ZONE", "z1")
    assert svc_props(cli, "method_context", DEMO)["environment"] == ("astring", ["ZONE=z1"])


def test_setenv_m_needs_the_method_on_the_selected_entity(cli: Cli) -> None:
    proc = cli.run("svccfg", "-s", DEMO, "setenv", "-m", "start", "A", "b")
    assert (proc.returncode, proc.stderr) == (1, 'svccfg: Couldn\'t find the method "start".\n')


# --- command files, stdin, usage ------------------------------------------------------------


def test_f_runs_a_command_file_with_select_and_unselect(cli: Cli) -> None:
    path = cli.write(
        "cmds",
        "# a comment\n"
        "select site/demo\n"
        "setprop config/ram = count: 1\n"
        "select svc:/site/demo:default\n"
        "listsnap\n"
        "unselect\n"
        "listprop config/ram\n",
    )
    assert cli.ok("svccfg", "-f", str(path)) == (
        "initial\nlast-import\nrunning\nconfig/ram  count    1\n"
    )


def test_f_stops_at_the_first_error_naming_file_and_line(cli: Cli) -> None:
    path = cli.write(
        "cmds",
        "select site/demo\nsetprop config/zz = 3\nsetprop config/ram = count: 1\n",
    )
    proc = cli.run("svccfg", "-f", str(path))
    assert proc.returncode == 1
    assert proc.stderr == f"svccfg ({path}, line 2): Type required for new properties.\n"
    assert svc_props(cli, "config")["ram"] == ("count", ["2048"])


def test_commands_are_read_from_stdin_without_arguments(cli: Cli) -> None:
    out = cli.ok("svccfg", input="select site/demo\nlistpg startd\n")
    assert out == "startd  framework\n"


def test_unknown_command_is_an_error(cli: Cli) -> None:
    proc = cli.run("svccfg", "frobnicate")
    assert (proc.returncode, proc.stderr) == (1, 'svccfg: Unknown command "frobnicate".\n')


def test_bad_option_is_a_usage_error_exit_2(cli: Cli) -> None:
    proc = cli.run("svccfg", "-x")
    assert proc.returncode == 2
    assert proc.stderr.startswith("svccfg: illegal option -- x\nUsage:")


def test_entity_commands_need_a_selection(cli: Cli) -> None:
    proc = cli.run("svccfg", "listpg")
    assert (proc.returncode, proc.stderr) == (1, "svccfg: An entity is not selected.\n")
