"""The restarter's state machine: enable, disable, restart, refresh, clear and
mark, as svc.startd(8), svcadm(8) and restarter.c have them."""

from __future__ import annotations

import os
import pty
import time

from smf_support import SmfHost

FMRI = "svc:/test/app:default"


def _daemon(host: SmfHost, name: str = "daemon") -> str:
    """A start method that leaves one background process and says when it ran."""
    marker = host.state / f"{name}.starts"
    return str(
        host.script(
            f"{name}.sh",
            f"""
            echo start >> {marker}
            sleep 600 &
            """,
        )
    )


def test_enable_runs_the_start_method_and_goes_online(smf_host: SmfHost) -> None:
    start = _daemon(smf_host)
    smf_host.add(FMRI, start=start, enabled=False)
    smf_host.wait_state(FMRI, "disabled")
    smf_host.svcadm("enable", FMRI)
    smf_host.wait_state(FMRI, "online")
    lines = smf_host.log_lines(FMRI)
    assert lines[-3:] == [
        "Enabled.",
        f'Executing start method ("{start}").',
        'Method "start" exited with status 0.',
    ]
    p = smf_host.props(FMRI)
    assert p["next_state"] == ["none"]
    assert p["start_method_waitstatus"] == ["0"]
    assert p["logfile"] == [str(smf_host.state / "var/svc/log/test-app:default.log")]
    assert int(p["contract"][0]) > 0 and int(p["start_pid"][0]) > 0
    sec, _, ns = p["state_timestamp"][0].partition(".")
    assert abs(int(sec) - time.time()) < 60 and len(ns) == 9


def test_disable_runs_the_stop_method_and_goes_disabled(smf_host: SmfHost) -> None:
    smf_host.add(FMRI, start=_daemon(smf_host))
    smf_host.wait_state(FMRI, "online")
    members = smf_host.members(FMRI)
    assert members
    smf_host.svcadm("disable", FMRI)
    smf_host.wait_state(FMRI, "disabled")
    assert smf_host.log_lines(FMRI)[-2:] == [
        "Stopping because service disabled.",
        "Executing stop method (:kill).",
    ]
    assert "contract" not in smf_host.props(FMRI)
    assert not [pid for pid in members if os.path.exists(f"/proc/{pid}")]
    assert smf_host.props(FMRI, "general")["enabled"] == ["false"]


def test_temporary_disable_is_kept_in_general_ovr(smf_host: SmfHost) -> None:
    smf_host.add(FMRI, start=_daemon(smf_host))
    smf_host.wait_state(FMRI, "online")
    smf_host.svcadm("disable", "-t", FMRI)
    smf_host.wait_state(FMRI, "disabled")
    assert smf_host.props(FMRI, "general")["enabled"] == ["true"]
    assert smf_host.props(FMRI, "general_ovr")["enabled"] == ["false"]
    smf_host.svcadm("enable", FMRI)  # a persistent enable removes the override
    smf_host.wait_state(FMRI, "online")
    assert "enabled" not in smf_host.props(FMRI, "general_ovr")


def test_restart_stops_and_starts_again_in_a_new_contract(smf_host: SmfHost) -> None:
    smf_host.add(FMRI, start=_daemon(smf_host))
    smf_host.wait_state(FMRI, "online")
    before = smf_host.contract(FMRI)
    smf_host.svcadm("restart", FMRI)
    smf_host.wait_for(
        "a new contract", lambda: smf_host.props(FMRI).get("contract", ["0"]) != [str(before)]
    )
    smf_host.wait_state(FMRI, "online")
    assert "Stopping because service restarting." in smf_host.log_lines(FMRI)
    assert smf_host.props(FMRI)["auxiliary_state"] == ["restart_request"]
    assert (smf_host.state / "daemon.starts").read_text().count("start") == 2


def test_restart_of_an_instance_that_is_not_running_is_ignored(smf_host: SmfHost) -> None:
    smf_host.add(FMRI, start=_daemon(smf_host), enabled=False)
    smf_host.wait_state(FMRI, "disabled")
    smf_host.svcadm("restart", FMRI)
    smf_host.wait_for(
        "the request to be taken",
        lambda: not smf_host.props(FMRI, "restarter_actions").get("restart"),
    )
    assert smf_host.state_of(FMRI) == "disabled"


def test_refresh_runs_the_refresh_method_when_online(smf_host: SmfHost) -> None:
    refreshed = smf_host.state / "refreshed"
    smf_host.add(FMRI, start=_daemon(smf_host), refresh=f"touch {refreshed}")
    smf_host.wait_state(FMRI, "online")
    smf_host.svcadm("refresh", FMRI)
    smf_host.wait_for("the refresh method", refreshed.exists)
    smf_host.wait_state(FMRI, "online")
    lines = smf_host.log_lines(FMRI)
    assert lines[-3:] == [
        "Rereading configuration.",
        f'Executing refresh method ("touch {refreshed}").',
        'Method "refresh" exited with status 0.',
    ]


def test_refresh_without_a_refresh_method_is_treated_as_true(smf_host: SmfHost) -> None:
    smf_host.add(FMRI, start=_daemon(smf_host))
    smf_host.wait_state(FMRI, "online")
    smf_host.svcadm("refresh", FMRI)
    smf_host.wait_for(
        "the refresh",
        lambda: "No 'refresh' method defined.  Treating as :true." in smf_host.log_lines(FMRI),
    )
    assert smf_host.log_lines(FMRI)[-2] == "Rereading configuration."


def test_refresh_of_an_offline_instance_runs_no_method(smf_host: SmfHost) -> None:
    refreshed = smf_host.state / "refreshed"
    smf_host.add(FMRI, start=_daemon(smf_host), refresh=f"touch {refreshed}", enabled=False)
    smf_host.wait_state(FMRI, "disabled")
    since = smf_host.props(FMRI)["state_timestamp"]
    smf_host.svcadm("refresh", FMRI)
    smf_host.wait_for("the refresh", lambda: "Rereading configuration." in smf_host.log_lines(FMRI))
    smf_host.wait_looked()  # the pass that reread it is over: a method would have begun
    assert not refreshed.exists()
    assert smf_host.props(FMRI)["state_timestamp"] == since


def test_refresh_takes_the_running_snapshot_the_methods_read(smf_host: SmfHost) -> None:
    out = smf_host.state / "seen"
    smf_host.add(
        FMRI,
        start=f"{_daemon(smf_host)} %{{config/word}}",
        refresh=f"echo %{{config/word}} > {out}",
        pgs={"config": ("application", {"word": ("astring", ["old"])})},
    )
    smf_host.wait_state(FMRI, "online")
    smf_host.setprop(FMRI, "config", "word", "astring", ["new"])
    smf_host.svcadm("refresh", FMRI)
    # The shell creates the file before echo writes to it: wait for the line.
    smf_host.wait_for("the refresh method", lambda: out.exists() and out.read_text().endswith("\n"))
    assert out.read_text() == "new\n"


def test_mark_maintenance_runs_the_stop_method_first(smf_host: SmfHost) -> None:
    smf_host.add(FMRI, start=_daemon(smf_host))
    smf_host.wait_state(FMRI, "online")
    members = smf_host.members(FMRI)
    smf_host.svcadm("mark", "maintenance", FMRI)
    smf_host.wait_state(FMRI, "maintenance")
    lines = smf_host.log_lines(FMRI)
    assert lines[-2:] == [
        "Stopping for maintenance due to service_request.",
        "Executing stop method (:kill).",
    ]
    assert not [pid for pid in members if os.path.exists(f"/proc/{pid}")]


def test_mark_immediate_maintenance_skips_the_stop_method(smf_host: SmfHost) -> None:
    smf_host.add(FMRI, start=_daemon(smf_host))
    smf_host.wait_state(FMRI, "online")
    members = smf_host.members(FMRI)
    smf_host.svcadm("mark", "-I", "maintenance", FMRI)
    smf_host.wait_state(FMRI, "maintenance")
    assert smf_host.log_lines(FMRI)[-1] == "Stopping for maintenance due to service_request."
    # The contract is abandoned, not killed: its processes live on.
    assert all(os.path.exists(f"/proc/{pid}") for pid in members)
    assert "contract" not in smf_host.props(FMRI)


def test_mark_maintenance_from_a_terminal_is_an_administrative_request(smf_host: SmfHost) -> None:
    smf_host.add(FMRI, start=_daemon(smf_host))
    smf_host.wait_state(FMRI, "online")
    main, tty = pty.openpty()
    try:
        smf_host.run(str(smf_host.bin / "svcadm"), "mark", "maintenance", FMRI, stdin=tty)
    finally:
        os.close(main)
        os.close(tty)
    smf_host.wait_state(FMRI, "maintenance")
    assert smf_host.props(FMRI)["auxiliary_state"] == ["administrative_request"]


def test_mark_maintenance_from_a_script_is_a_service_request(smf_host: SmfHost) -> None:
    smf_host.add(FMRI, start=_daemon(smf_host))
    smf_host.wait_state(FMRI, "online")
    smf_host.svcadm("mark", "maintenance", FMRI)
    smf_host.wait_state(FMRI, "maintenance")
    assert smf_host.props(FMRI)["auxiliary_state"] == ["service_request"]


def test_clear_goes_from_maintenance_through_uninitialized_to_online(smf_host: SmfHost) -> None:
    smf_host.add(FMRI, start=_daemon(smf_host))
    smf_host.wait_state(FMRI, "online")
    smf_host.svcadm("mark", "maintenance", FMRI)
    smf_host.wait_state(FMRI, "maintenance")
    smf_host.svcadm("clear", FMRI)
    smf_host.wait_state(FMRI, "online")
    lines = smf_host.log_lines(FMRI)
    at = lines.index("Leaving maintenance because clear requested.")
    assert lines[at + 1] == "Enabled."
    assert lines[at + 2].startswith("Executing start method")
    assert smf_host.props(FMRI)["auxiliary_state"] == ["clear_request"]


def test_mark_degraded_and_clear_back_to_online(smf_host: SmfHost) -> None:
    smf_host.add(FMRI, start=_daemon(smf_host))
    smf_host.wait_state(FMRI, "online")
    contract = smf_host.contract(FMRI)
    smf_host.svcadm("mark", "degraded", FMRI)
    smf_host.wait_state(FMRI, "degraded")
    smf_host.svcadm("clear", FMRI)
    smf_host.wait_state(FMRI, "online")
    assert smf_host.contract(FMRI) == contract  # never stopped


def test_disable_of_an_instance_in_maintenance_leaves_maintenance(smf_host: SmfHost) -> None:
    smf_host.add(FMRI, start=str(smf_host.script("fail.sh", "exit 96")))
    smf_host.wait_state(FMRI, "maintenance")
    smf_host.svcadm("disable", FMRI)
    smf_host.wait_state(FMRI, "disabled")
    lines = smf_host.log_lines(FMRI)
    assert lines[-2:] == ["Leaving maintenance because disable requested.", "Disabled."]


def test_enable_after_disable_starts_the_instance_again(smf_host: SmfHost) -> None:
    smf_host.add(FMRI, start=str(smf_host.script("fail.sh", "exit 96")))
    smf_host.wait_state(FMRI, "maintenance")
    smf_host.svcadm("disable", "-t", FMRI)
    smf_host.wait_state(FMRI, "disabled")
    smf_host.svcadm("enable", FMRI)
    smf_host.wait_state(FMRI, "maintenance")
