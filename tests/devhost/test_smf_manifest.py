"""svccfg import/validate/export conformance: DTD validation, how each manifest element
lands in the repository, snapshots and refresh, upgrades, and the exported XML
(illumos.md §1, §3; svccfg_xml.c, svccfg_libscf.c)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from smfcli_support import MANIFESTS, Cli, bundle, make_cli, simple_service

DEMO = "svc:/site/demo:default"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return make_cli(tmp_path)


@pytest.fixture
def demo(cli: Cli) -> Cli:
    cli.ok("svccfg", "import", str(MANIFESTS / "demo.xml"))
    return cli


def props(pgs: dict[str, Any], pg: str) -> dict[str, tuple[str, list[str]]]:
    return {name: (p["type"], p["values"]) for name, p in pgs[pg]["props"].items()}


# --- validation -------------------------------------------------------------------------------


def test_import_rejects_a_manifest_that_breaks_the_dtd(cli: Cli) -> None:
    path = cli.write("bad.xml", bundle('<service name="site/x" type="bogus" version="1"/>'))
    proc = cli.run("svccfg", "import", str(path))
    assert proc.returncode == 1
    assert proc.stderr.endswith("svccfg: Document is not valid.\n")
    assert "validity error" in proc.stderr
    assert cli.repo.read()["services"] == {}


def test_import_rejects_xml_that_does_not_parse(cli: Cli) -> None:
    path = cli.write("broken.xml", "<service_bundle")
    proc = cli.run("svccfg", "import", str(path))
    assert proc.returncode == 1
    assert proc.stderr.endswith("svccfg: couldn't parse document\n")


def test_import_of_a_missing_file_is_an_error(cli: Cli) -> None:
    proc = cli.run("svccfg", "import", "/nonexistent/m.xml")
    assert proc.returncode == 1
    assert proc.stderr == (
        "svccfg: Unable to stat file /nonexistent/m.xml.  No such file or directory\n"
    )


def test_import_dies_on_an_illegal_value(cli: Cli) -> None:
    path = cli.write(
        "v.xml",
        bundle(
            simple_service(
                "site/v",
                '<property_group name="c" type="application">'
                '<propval name="n" type="count" value="abc"/></property_group>',
            )
        ),
    )
    proc = cli.run("svccfg", "import", str(path))
    assert (proc.returncode, proc.stderr) == (
        1,
        'svccfg: illegal value "abc" for count (Illegal character)\n',
    )


def test_validate_checks_a_file_without_importing_it(cli: Cli) -> None:
    cli.ok("svccfg", "validate", str(MANIFESTS / "demo.xml"))
    assert cli.repo.read()["services"] == {}
    bad = cli.write("bad.xml", bundle('<service name="site/x" type="bogus" version="1"/>'))
    assert cli.run("svccfg", "validate", str(bad)).returncode == 1


# --- what import writes -----------------------------------------------------------------------


def test_import_creates_the_default_instance_enabled_as_the_manifest_says(demo: Cli) -> None:
    assert props(demo.pgs(DEMO), "general")["enabled"] == ("boolean", ["true"])
    second = demo.pgs("svc:/site/demo:second")
    assert props(second, "general")["enabled"] == ("boolean", ["false"])


def test_import_without_create_default_instance_makes_no_default(cli: Cli) -> None:
    cli.import_(
        bundle(
            """
            <service name="site/solo" type="service" version="1">
              <instance name="only" enabled="true"/>
            </service>
            """
        )
    )
    assert list(cli.repo.read()["services"]["site/solo"]["instances"]) == ["only"]


def test_exec_methods_become_method_groups(demo: Cli) -> None:
    pgs = demo.pgs("site/demo")
    assert pgs["start"]["type"] == "method"
    assert props(pgs, "start")["exec"] == ("astring", ["/bin/true %i"])
    assert props(pgs, "start")["timeout_seconds"] == ("count", ["60"])
    assert props(pgs, "start")["type"] == ("astring", ["method"])
    assert props(pgs, "start")["environment"] == (
        "astring",
        ["GREETING=hello world", "MODE=demo"],
    )


def test_service_method_context_goes_to_the_method_context_group(demo: Cli) -> None:
    pgs = demo.pgs("site/demo")
    assert pgs["method_context"]["type"] == "framework"
    assert props(pgs, "method_context") == {
        "working_directory": ("astring", ["/tmp"]),
        "use_profile": ("boolean", ["false"]),
        "user": ("astring", ["root"]),
        "group": ("astring", ["root"]),
    }


def test_dependency_becomes_a_dependency_group(demo: Cli) -> None:
    pgs = demo.pgs("site/demo")
    assert pgs["fs"]["type"] == "dependency"
    assert props(pgs, "fs") == {
        "type": ("astring", ["service"]),
        "restart_on": ("astring", ["none"]),
        "grouping": ("astring", ["require_all"]),
        "entities": ("fmri", ["svc:/site/base"]),
    }


def test_dependent_is_stored_as_a_dependency_group_on_the_dependent_service(demo: Cli) -> None:
    client = demo.pgs("site/client")
    assert client["demo_client"]["type"] == "dependency"
    assert props(client, "demo_client") == {
        "restart_on": ("astring", ["restart"]),
        "grouping": ("astring", ["optional_all"]),
        "entities": ("fmri", ["svc:/site/demo"]),
        "external": ("boolean", ["true"]),
        "type": ("astring", ["service"]),
    }
    assert props(demo.pgs("site/demo"), "dependents") == {
        "demo_client": ("fmri", ["svc:/site/client"])
    }


def test_property_groups_keep_types_and_value_lists(demo: Cli) -> None:
    assert props(demo.pgs("site/demo"), "config") == {
        "ram": ("count", ["2048"]),
        "label": ("astring", ['a "quoted" label']),
        "debug": ("boolean", ["false"]),
        "disks": ("astring", ["disk 0", "disk1"]),
        "ports": ("count", ["80", "443"]),
    }


def test_instance_property_groups_attach_to_the_instance(demo: Cli) -> None:
    assert props(demo.pgs("svc:/site/demo:second"), "config") == {"ram": ("count", ["512"])}


def test_single_instance_sets_general_single_instance(demo: Cli) -> None:
    assert props(demo.pgs("site/demo"), "general")["single_instance"] == ("boolean", ["true"])


def test_stability_is_ignored_and_the_common_name_kept(demo: Cli) -> None:
    pgs = demo.pgs("site/demo")
    assert not any("stability" in pg["props"] for pg in pgs.values())
    assert props(pgs, "tm_common_name") == {"C": ("ustring", ["Demo service"])}


def test_count_values_wrap_like_strtoull(cli: Cli) -> None:
    # svccfg_xml.c accepts negative counts (inetd uses them) and stores them unsigned.
    cli.import_(
        bundle(
            simple_service(
                "site/neg",
                '<property_group name="c" type="application">'
                '<propval name="n" type="count" value="-1"/></property_group>',
            )
        )
    )
    assert props(cli.pgs("site/neg"), "c")["n"] == ("count", ["18446744073709551615"])


# --- snapshots and refresh --------------------------------------------------------------------


def test_import_takes_initial_last_import_and_running_snapshots(demo: Cli) -> None:
    assert set(demo.snapshots(DEMO)) == {"initial", "last-import", "running"}
    running = demo.snapshots(DEMO)["running"]
    assert running["service"]["config"]["props"]["ram"]["values"] == ["2048"]


def test_import_posts_a_refresh_for_each_instance(demo: Cli) -> None:
    for fmri in (DEMO, "svc:/site/demo:second"):
        action = demo.pgs(fmri)["restarter_actions"]
        assert action["nonpersistent"] is True
        assert action["props"]["refresh"]["type"] == "integer"


def test_reimport_keeps_the_administrators_enabled_setting(demo: Cli) -> None:
    demo.ok("svccfg", "-s", DEMO, "setprop", "general/enabled", "=", "false")
    path = demo.write("demo2.xml", (MANIFESTS / "demo.xml").read_text().replace("2048", "4096"))
    demo.ok("svccfg", "import", str(path))
    assert props(demo.pgs(DEMO), "general")["enabled"] == ("boolean", ["false"])
    assert props(demo.pgs("site/demo"), "config")["ram"] == ("count", ["4096"])


def test_import_never_overwrites_an_existing_instance_enabled(cli: Cli) -> None:
    cli.ok("svccfg", "add", "site/pre")
    cli.ok("svccfg", "-s", "site/pre", "add", "default")
    cli.ok("svccfg", "-s", "svc:/site/pre:default", "addpg", "general", "framework")
    cli.ok(
        "svccfg",
        "-s",
        "svc:/site/pre:default",
        "setprop",
        "general/enabled",
        "=",
        "boolean:",
        "false",
    )
    cli.import_(bundle(simple_service("site/pre", enabled="true")))
    assert props(cli.pgs("svc:/site/pre:default"), "general")["enabled"] == ("boolean", ["false"])


def test_reimport_keeps_properties_the_administrator_changed(demo: Cli) -> None:
    demo.ok("svccfg", "-s", "site/demo", "setprop", "config/ram", "=", "1")
    text = (MANIFESTS / "demo.xml").read_text()
    path = demo.write("demo2.xml", text.replace("2048", "3000").replace('"false"/>', '"true"/>'))
    demo.ok("svccfg", "import", str(path))
    config = props(demo.pgs("site/demo"), "config")
    assert config["ram"] == ("count", ["1"])
    assert config["debug"] == ("boolean", ["true"])


def test_reimport_of_an_unchanged_manifest_changes_nothing(demo: Cli) -> None:
    demo.ok("svccfg", "-s", "site/demo", "setprop", "config/ram", "=", "1")
    demo.ok("svccfg", "import", str(MANIFESTS / "demo.xml"))
    assert props(demo.pgs("site/demo"), "config")["ram"] == ("count", ["1"])


# --- export -----------------------------------------------------------------------------------


def test_export_prints_single_quoted_xml_in_dtd_order(demo: Cli) -> None:
    out = demo.ok("svccfg", "export", "site/demo")
    assert out.startswith(
        "<?xml version='1.0'?>\n"
        "<!DOCTYPE service_bundle SYSTEM '/usr/share/lib/xml/dtd/service_bundle.dtd.1'>\n"
        "<service_bundle type='manifest' name='export'>\n"
        "  <service name='site/demo' type='service' version='0'>\n"
        "    <create_default_instance enabled='true'/>\n"
        "    <single_instance/>\n"
    )
    assert "<propval name='label' type='astring' value='a &quot;quoted&quot; label'/>" in out
    assert "<stability" not in out
    assert out.index("<dependency name='fs'") < out.index("<exec_method name='start'")
    assert out.index("<property_group name='config'") < out.index("<instance name='second'")


def test_export_then_import_reproduces_the_service(demo: Cli, tmp_path: Path) -> None:
    exported = demo.ok("svccfg", "export", "site/demo")
    (tmp_path / "other").mkdir()
    other = make_cli(tmp_path / "other")
    other.import_(exported, "exported.xml")
    for fmri in ("site/demo", DEMO, "svc:/site/demo:second"):
        mine = {n: pg for n, pg in demo.pgs(fmri).items() if n not in SKIP}
        theirs = {n: pg for n, pg in other.pgs(fmri).items() if n not in SKIP}
        assert theirs == mine


SKIP = {"manifestfiles", "restarter_actions"}


def test_export_of_an_instance_fmri_exports_its_service_with_a_warning(demo: Cli) -> None:
    proc = demo.run("svccfg", "export", DEMO)
    assert proc.returncode == 0
    assert proc.stderr == (
        "svccfg: Only services may be exported; ignoring instance portion of argument.\n"
    )
    assert "<service name='site/demo'" in proc.stdout


def test_export_of_an_instance_abbreviation_fails(demo: Cli) -> None:
    proc = demo.run("svccfg", "export", "demo:second")
    assert (proc.returncode, proc.stderr) == (
        1,
        "svccfg: Pattern 'demo:second' doesn't match any services\n",
    )
