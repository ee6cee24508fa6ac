"""svcs(1) conformance: columns, widths, times, sorting, -l, -x, -d/-D, operands,
errors and exit codes (illumos.md §3 "svcs" and §4; svcs.c, explain.c). The tests
play the restarter by writing its property group themselves."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from smfcli_support import Cli, bundle, make_cli, simple_service

DAY = 86400
HEADER = "STATE          STIME    FMRI\n"


def hms(stamp: float) -> str:
    tm = time.gmtime(stamp)
    return f"{tm.tm_hour:2d}:{tm.tm_min:02d}:{tm.tm_sec:02d}"


def long_date(stamp: float) -> str:
    tm = time.gmtime(stamp)
    return time.strftime("%a %b ", tm) + f"{tm.tm_mday:2d}" + time.strftime(" %H:%M:%S %Y", tm)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    host = make_cli(tmp_path)
    host.import_(
        bundle(
            simple_service("site/alpha")
            + simple_service("site/beta")
            + simple_service("site/off", enabled="false")
            + """
            <service name="site/multi" type="service" version="1">
              <exec_method type="method" name="start" exec="/bin/true" timeout_seconds="30"/>
              <exec_method type="method" name="stop" exec=":true" timeout_seconds="30"/>
              <instance name="one" enabled="true"/>
              <instance name="two" enabled="true"/>
            </service>
            """
        )
    )
    return host


# --- the plain listing --------------------------------------------------------------------


def test_default_columns_are_state_stime_fmri_with_exact_widths(cli: Cli) -> None:
    now = time.time()
    cli.restarter("svc:/site/alpha:default", "online", since=now - 60)
    out = cli.ok("svcs", "svc:/site/alpha:default")
    assert out == HEADER + f"online         {hms(now - 60)} svc:/site/alpha:default\n"


def test_svcs_state_column_is_15_wide_including_the_separator(cli: Cli) -> None:
    cli.restarter("svc:/site/alpha:default", "uninitialized")
    line = cli.ok("svcs", "-H", "-o", "state,fmri", "svc:/site/alpha:default")
    assert line == "uninitialized  svc:/site/alpha:default\n"
    assert line.index("svc:/") == 15


def test_default_listing_shows_enabled_instances_only(cli: Cli) -> None:
    out = cli.ok("svcs", "-H", "-o", "fmri")
    assert "svc:/site/off:default" not in out
    assert "svc:/site/alpha:default" in out


def test_a_lists_disabled_instances_too(cli: Cli) -> None:
    assert "svc:/site/off:default" in cli.ok("svcs", "-a", "-H", "-o", "fmri")


def test_temporarily_disabled_instances_are_listed_by_default(cli: Cli) -> None:
    with cli.repo.edit() as doc:
        node = doc["services"]["site/alpha"]["instances"]["default"]
        node["pgs"]["general_ovr"] = {
            "type": "framework",
            "nonpersistent": True,
            "props": {"enabled": {"type": "boolean", "values": ["false"]}},
        }
    assert "svc:/site/alpha:default" in cli.ok("svcs", "-H", "-o", "fmri")


def test_operands_list_disabled_instances_without_a(cli: Cli) -> None:
    assert cli.ok("svcs", "-H", "-o", "fmri", "off") == "svc:/site/off:default\n"


def test_a_with_operands_is_ignored_with_a_warning(cli: Cli) -> None:
    proc = cli.run("svcs", "-a", "-H", "-o", "fmri", "alpha")
    assert proc.returncode == 0
    assert proc.stderr == "svcs: -a ignored when used with arguments.\n"
    assert proc.stdout == "svc:/site/alpha:default\n"


def test_missing_state_prints_a_dash(cli: Cli) -> None:
    assert cli.ok("svcs", "-H", "alpha") == "-              -        svc:/site/alpha:default\n"


def test_transitioning_state_gets_a_star(cli: Cli) -> None:
    cli.restarter("svc:/site/alpha:default", "offline", "online")
    assert cli.ok("svcs", "-H", "-o", "state", "alpha") == "offline*\n"
    assert cli.ok("svcs", "-H", "-o", "sta,s", "alpha") == "OFF* 0*\n"


def test_no_star_when_the_next_state_is_shown(cli: Cli) -> None:
    cli.restarter("svc:/site/alpha:default", "offline", "online")
    out = cli.ok("svcs", "-H", "-o", "state,nstate", "alpha")
    assert out == "offline        online\n"


def test_nstate_prints_a_dash_when_not_transitioning(cli: Cli) -> None:
    cli.restarter("svc:/site/alpha:default", "online")
    assert cli.ok("svcs", "-H", "-o", "state,nstate,fmri", "alpha") == (
        "online         -             svc:/site/alpha:default\n"
    )


def test_stime_is_the_time_of_day_within_24_hours(cli: Cli) -> None:
    stamp = time.time() - 3600
    cli.restarter("svc:/site/alpha:default", "online", since=stamp)
    assert cli.ok("svcs", "-H", "-o", "stime,fmri", "alpha") == (
        f"{hms(stamp)} svc:/site/alpha:default\n"
    )


def test_stime_is_month_and_day_within_about_a_year(cli: Cli) -> None:
    stamp = time.time() - 40 * DAY
    cli.restarter("svc:/site/alpha:default", "online", since=stamp)
    day = time.strftime("%b_%d", time.gmtime(stamp))
    assert cli.ok("svcs", "-H", "-o", "stime,fmri", "alpha") == (
        f"{day}   svc:/site/alpha:default\n"
    )


def test_stime_is_the_year_after_360_days(cli: Cli) -> None:
    stamp = time.time() - 400 * DAY
    cli.restarter("svc:/site/alpha:default", "online", since=stamp)
    year = time.strftime("%Y", time.gmtime(stamp))
    assert cli.ok("svcs", "-H", "-o", "stime,fmri", "alpha") == (
        f"{year}     svc:/site/alpha:default\n"
    )


def test_ctid_is_right_aligned_in_6_or_a_dash(cli: Cli) -> None:
    cli.restarter("svc:/site/alpha:default", "online", contract=42)
    cli.restarter("svc:/site/beta:default", "online")
    assert cli.ok("svcs", "-H", "-o", "ctid,fmri", "alpha", "beta").splitlines() == [
        "    42 svc:/site/alpha:default",
        "     - svc:/site/beta:default",
    ]


def test_header_pads_each_column_name_to_its_width(cli: Cli) -> None:
    out = cli.ok("svcs", "-o", "state,nstate,stime,ctid,fmri", "alpha")
    assert out.splitlines()[0] == "STATE          NSTATE        STIME    CTID   FMRI"


def test_v_shows_state_nstate_stime_ctid_fmri(cli: Cli) -> None:
    out = cli.ok("svcs", "-v", "alpha")
    assert out.splitlines()[0] == "STATE          NSTATE        STIME    CTID   FMRI"


def test_column_names_are_case_insensitive(cli: Cli) -> None:
    cli.restarter("svc:/site/alpha:default", "online")
    assert (
        cli.ok("svcs", "-H", "-o", "STA,Svc,inst", "alpha") == "ON   site/alpha           default\n"
    )


def test_unknown_column_is_a_fatal_error(cli: Cli) -> None:
    proc = cli.run("svcs", "-o", "bogus")
    assert (proc.returncode, proc.stderr) == (1, 'svcs: Unknown column "bogus".\n')


def test_trailing_blanks_are_trimmed(cli: Cli) -> None:
    for line in cli.ok("svcs", "-a", "-o", "fmri,state").splitlines():
        assert line == line.rstrip()


def test_default_sort_is_state_then_stime_then_fmri(cli: Cli) -> None:
    now = time.time()
    cli.restarter("svc:/site/alpha:default", "maintenance", since=now - 30)
    cli.restarter("svc:/site/beta:default", "online", since=now - 10)
    cli.restarter("svc:/site/multi:one", "online", since=now - 20)
    cli.restarter("svc:/site/multi:two", "disabled", since=now - 5)
    fmris = [line.split()[-1] for line in cli.ok("svcs", "-H").splitlines()]
    assert fmris == [
        "svc:/site/multi:two",
        "svc:/site/multi:one",
        "svc:/site/beta:default",
        "svc:/site/alpha:default",
    ]


def test_s_sorts_ascending_and_big_s_descending(cli: Cli) -> None:
    names = ["svc:/site/alpha:default", "svc:/site/beta:default"]
    names += ["svc:/site/multi:one", "svc:/site/multi:two"]
    assert cli.ok("svcs", "-H", "-o", "fmri", "-s", "fmri").split() == names
    assert cli.ok("svcs", "-H", "-o", "fmri", "-S", "fmri").split() == names[::-1]


def test_unknown_sort_column_is_a_fatal_error(cli: Cli) -> None:
    proc = cli.run("svcs", "-s", "bogus")
    assert (proc.returncode, proc.stderr) == (1, 'svcs: Unrecognized sort column "bogus".\n')


def test_h_omits_the_header(cli: Cli) -> None:
    assert not cli.ok("svcs", "-H").startswith("STATE")


# --- operands -------------------------------------------------------------------------------


def test_abbreviation_matches_on_trailing_components(cli: Cli) -> None:
    assert cli.ok("svcs", "-H", "-o", "fmri", "multi:one") == "svc:/site/multi:one\n"
    assert cli.ok("svcs", "-H", "-o", "fmri", "-s", "fmri", "site/multi") == (
        "svc:/site/multi:one\nsvc:/site/multi:two\n"
    )


def test_glob_is_matched_against_full_fmris(cli: Cli) -> None:
    out = cli.ok("svcs", "-H", "-o", "fmri", "-s", "fmri", "svc:/site/multi:*")
    assert out == "svc:/site/multi:one\nsvc:/site/multi:two\n"
    assert cli.ok("svcs", "-H", "-o", "fmri", "site/al*") == "svc:/site/alpha:default\n"


def test_pattern_matching_nothing_is_exit_1_after_the_header(cli: Cli) -> None:
    proc = cli.run("svcs", "nosuch")
    assert proc.returncode == 1
    assert proc.stdout == HEADER
    assert proc.stderr == "svcs: Pattern 'nosuch' doesn't match any instances\n"


def test_missing_instance_fmri_says_the_instance_does_not_exist(cli: Cli) -> None:
    # illumos.md section 3: `Instance "..." does not exist.` (svcs's uu_warn prefix added).
    proc = cli.run("svcs", "-H", "svc:/site/alpha:nope", "alpha")
    assert proc.returncode == 1
    assert proc.stderr == 'svcs: Instance "svc:/site/alpha:nope" does not exist.\n'
    assert "svc:/site/alpha:default" in proc.stdout
    proc = cli.run("svcs", "-H", "-o", "state", "svc:/site/nosuch:default")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == 'svcs: Instance "svc:/site/nosuch:default" does not exist.\n'
    for opts in (["-l"], ["-x"], ["-d"], ["-L"]):
        proc = cli.run("svcs", *opts, "svc:/site/alpha:nope")
        assert proc.returncode == 1, opts
        assert proc.stderr.endswith('svcs: Instance "svc:/site/alpha:nope" does not exist.\n')


def test_abbreviations_and_globs_matching_nothing_keep_the_pattern_message(cli: Cli) -> None:
    for operand, shown in (
        ("alpha:nope", "alpha:nope"),
        ("site/alpha:nope", "site/alpha:nope"),
        ("svc:/site/alpha:no*", "svc:/site/alpha:no*"),
        ("site/al*:nope", "svc:/site/al*:nope"),
        ("svc:/site/nosuch", "svc:/site/nosuch"),
    ):
        proc = cli.run("svcs", "-H", operand)
        assert proc.returncode == 1, operand
        assert proc.stderr == f"svcs: Pattern '{shown}' doesn't match any instances\n"


def test_glob_without_scheme_is_reported_with_svc_prefix(cli: Cli) -> None:
    proc = cli.run("svcs", "-H", "nosuch*")
    assert proc.stderr == "svcs: Pattern 'svc:/nosuch*' doesn't match any instances\n"


def test_unknown_option_is_a_usage_error(cli: Cli) -> None:
    proc = cli.run("svcs", "-k")
    assert proc.returncode == 2
    assert proc.stderr.startswith("svcs: illegal option -- k\nUsage: svcs [-aHpv] ")


def test_l_and_x_exclude_each_other(cli: Cli) -> None:
    assert cli.run("svcs", "-l", "-x", "alpha").returncode == 2


def test_question_mark_prints_the_column_help(cli: Cli) -> None:
    proc = cli.run("svcs", "-?")
    assert proc.returncode == 0
    assert proc.stdout.startswith("Usage: svcs [-aHpv] ")
    assert "\tSTATE   name for current state\n" in proc.stdout


# --- -l ---------------------------------------------------------------------------------------


def test_l_prints_label_value_pairs_13_wide(cli: Cli) -> None:
    stamp = 1_700_000_000.25
    cli.restarter(
        "svc:/site/alpha:default",
        "online",
        since=stamp,
        contract=77,
        logfile="/var/svc/log/site-alpha:default.log",
    )
    out = cli.ok("svcs", "-l", "alpha")
    assert out == (
        "fmri         svc:/site/alpha:default\n"
        "enabled      true\n"
        "state        online\n"
        "next_state   none\n"
        f"state_time   {long_date(stamp)}\n"
        "logfile      /var/svc/log/site-alpha:default.log\n"
        "restarter    svc:/system/svc/restarter:default\n"
        "contract_id  77 \n"
    )


def test_l_shows_temporary_enable_state(cli: Cli) -> None:
    with cli.repo.edit() as doc:
        node = doc["services"]["site/off"]["instances"]["default"]
        node["pgs"]["general_ovr"] = {
            "type": "framework",
            "nonpersistent": True,
            "props": {"enabled": {"type": "boolean", "values": ["true"]}},
        }
    assert "enabled      true (temporary)\n" in cli.ok("svcs", "-l", "off")


def test_l_separates_instances_with_blank_lines(cli: Cli) -> None:
    out = cli.ok("svcs", "-l", "svc:/site/multi:one", "svc:/site/multi:two")
    blocks = out.split("\n\n")
    assert len(blocks) == 2
    assert {b.splitlines()[0] for b in blocks} == {
        "fmri         svc:/site/multi:one",
        "fmri         svc:/site/multi:two",
    }


def test_l_shows_name_and_dependencies_with_their_states(tmp_path: Path) -> None:
    cli = make_cli(tmp_path)
    cli.import_(
        bundle(
            simple_service("site/base")
            + simple_service(
                "site/app",
                extra="""
                <template><common_name><loctext xml:lang="C">The app</loctext></common_name>
                </template>""",
            ).replace(
                '<exec_method type="method" name="start"',
                '<dependency name="base" grouping="require_all" restart_on="error" type="service">'
                '<service_fmri value="svc:/site/base"/></dependency>\n'
                '<exec_method type="method" name="start"',
            )
        )
    )
    cli.restarter("svc:/site/base:default", "online")
    out = cli.ok("svcs", "-l", "site/app")
    assert "name         The app\n" in out
    assert "dependency   require_all/error svc:/site/base (online)\n" in out


# --- -d and -D --------------------------------------------------------------------------------


@pytest.fixture
def deps(tmp_path: Path) -> Cli:
    cli = make_cli(tmp_path)
    cli.import_(
        bundle(
            simple_service("site/base")
            + """
            <service name="site/app" type="service" version="1">
              <create_default_instance enabled="true"/>
              <dependency name="base" grouping="require_all" restart_on="error" type="service">
                <service_fmri value="svc:/site/base"/>
              </dependency>
              <dependent name="app_web" grouping="optional_all" restart_on="none">
                <service_fmri value="svc:/site/web"/>
              </dependent>
              <exec_method type="method" name="start" exec="/bin/true" timeout_seconds="30"/>
              <exec_method type="method" name="stop" exec=":true" timeout_seconds="30"/>
            </service>
            """
            + simple_service("site/web")
        )
    )
    now = time.time()
    cli.restarter("svc:/site/base:default", "disabled", since=now)
    cli.restarter("svc:/site/app:default", "offline", since=now)
    cli.restarter("svc:/site/web:default", "offline", since=now)
    return cli


def test_d_lists_the_instances_an_instance_depends_on(deps: Cli) -> None:
    assert deps.ok("svcs", "-H", "-o", "fmri", "-d", "site/app") == "svc:/site/base:default\n"


def test_d_follows_dependencies_declared_as_dependents(deps: Cli) -> None:
    assert deps.ok("svcs", "-H", "-o", "fmri", "-d", "site/web") == "svc:/site/app:default\n"


def test_big_d_lists_the_instances_that_depend_on_it(deps: Cli) -> None:
    assert deps.ok("svcs", "-H", "-o", "fmri", "-D", "site/base") == "svc:/site/app:default\n"
    assert deps.ok("svcs", "-H", "-o", "fmri", "-D", "site/app") == "svc:/site/web:default\n"


def test_d_needs_an_operand(deps: Cli) -> None:
    assert deps.run("svcs", "-d").returncode == 2


# --- -x ---------------------------------------------------------------------------------------


def all_online(cli: Cli) -> None:
    """explain.c skips (with a warning) instances the restarter has not written."""
    for fmri in ("alpha:default", "beta:default", "off:default", "multi:one", "multi:two"):
        cli.restarter(f"svc:/site/{fmri}", "online")


def test_x_explains_a_method_exit_status(cli: Cli) -> None:
    all_online(cli)
    stamp = 1_700_000_000
    cli.restarter(
        "svc:/site/alpha:default",
        "maintenance",
        since=stamp,
        auxiliary_state="method_failed",
        start_method_waitstatus=3 << 8,
        logfile="/var/svc/log/site-alpha:default.log",
    )
    out = cli.ok("svcs", "-x")
    assert out == (
        "svc:/site/alpha:default (?)\n"
        f" State: maintenance since {long_date(stamp)}\n"
        "Reason: Start method exited with status 3.\n"
        "   See: http://illumos.org/msg/SMF-8000-KS\n"
        "   See: /var/svc/log/site-alpha:default.log\n"
        "Impact: This service is not running.\n"
    )


def test_x_reports_repeated_failures_and_the_killing_signal(cli: Cli) -> None:
    all_online(cli)
    cli.restarter(
        "svc:/site/alpha:default",
        "maintenance",
        auxiliary_state="fault_threshold_reached",
        start_method_waitstatus=9,
    )
    out = cli.ok("svcs", "-x", "alpha")
    assert "Reason: Start method failed repeatedly, last died on Killed (9).\n" in out
    assert "   See: http://illumos.org/msg/SMF-8000-KS\n" in out


def test_x_reports_restarting_too_quickly(cli: Cli) -> None:
    all_online(cli)
    cli.restarter(
        "svc:/site/alpha:default", "maintenance", auxiliary_state="restarting_too_quickly"
    )
    out = cli.ok("svcs", "-x", "alpha")
    assert "Reason: Restarting too quickly.\n   See: http://illumos.org/msg/SMF-8000-L5\n" in out


def test_x_reports_an_administrative_disable_and_its_impact(deps: Cli) -> None:
    out = deps.ok("svcs", "-x", "site/base")
    assert "Reason: Disabled by an administrator.\n" in out
    assert "   See: http://illumos.org/msg/SMF-8000-05\n" in out
    # site/web waits (optional_all) on site/app, which waits on site/base.
    assert "Impact: 2 dependent services are not running.  (Use -v for list.)\n" in out


def test_xv_lists_the_impacted_services(deps: Cli) -> None:
    out = deps.ok("svcs", "-xv", "site/base")
    assert out.endswith(
        "Impact: 2 dependent services are not running:\n"
        "        svc:/site/app:default\n"
        "        svc:/site/web:default\n"
    )


def test_x_warns_about_instances_without_restarter_state(cli: Cli) -> None:
    proc = cli.run("svcs", "-x", "alpha")
    assert (proc.returncode, proc.stdout) == (0, "")
    assert 'svc:/site/beta:default has no "restarter" property group; ignoring.\n' in proc.stderr


def test_x_without_operands_skips_healthy_instances(cli: Cli) -> None:
    all_online(cli)
    assert cli.ok("svcs", "-x") == ""
