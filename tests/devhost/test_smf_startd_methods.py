"""How methods run: the shell, environment, log, % tokens, :true and :kill,
timeouts, and what exit codes and signals do (smf_method(7), method.c)."""

from __future__ import annotations

import pytest
from smf_support import SmfHost

FMRI = "svc:/test/app:default"
ENV_DUMP = "env | sort > {out}; pwd >> {out}; ls -l /proc/self/fd/0 >> {out}"


def exiting(host: SmfHost, code: int) -> str:
    """A method that exits with code (`exit N` itself cannot be exec'd)."""
    return str(host.script(f"exit{code}.sh", f"exit {code}"))


def test_method_runs_through_sh_with_the_smf_environment(smf_host: SmfHost) -> None:
    out = smf_host.state / "env"
    smf_host.add(FMRI, start=ENV_DUMP.format(out=out), duration="transient", stop=None)
    smf_host.wait_state(FMRI, "online")
    env = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert env["SMF_FMRI"] == FMRI
    assert env["SMF_METHOD"] == "start"
    assert env["SMF_RESTARTER"] == "svc:/system/svc/restarter:default"
    assert env["SMF_ZONENAME"] == "global"
    # illumos's PATH, with the devhost's tools first so methods find svcadm & co.
    assert env["PATH"] == f"{smf_host.bin}:/usr/sbin:/usr/bin"
    assert "HOME" not in env and "PWD" in env
    lines = out.read_text().splitlines()
    assert lines[-2] == "/"  # no method context: init's working directory
    assert lines[-1].endswith("-> /dev/null")


def test_method_context_sets_environment_and_working_directory(smf_host: SmfHost) -> None:
    out = smf_host.state / "env"
    work = smf_host.state / "work"
    work.mkdir()
    smf_host.add(
        FMRI,
        start=ENV_DUMP.format(out=out),
        stop=None,
        duration="transient",
        env={"start": {"GREETING": "hello world", "PATH": "/opt/bin:/usr/bin"}},
        workdir={"start": str(work)},
    )
    smf_host.wait_state(FMRI, "online")
    text = out.read_text()
    assert "GREETING=hello world\n" in text
    # A method_context PATH replaces illumos's; the devhost's tools stay first.
    assert f"PATH={smf_host.bin}:/opt/bin:/usr/bin\n" in text
    assert text.splitlines()[-2] == str(work)


def test_smf_variables_cannot_come_from_the_method_context(smf_host: SmfHost) -> None:
    out = smf_host.state / "env"
    smf_host.add(
        FMRI,
        start=ENV_DUMP.format(out=out),
        stop=None,
        duration="transient",
        method_props={"start": {"environment": ("astring", ["SMF_FMRI=forged", "BAD"])}},
        raw=True,
    )
    smf_host.wait_state(FMRI, "online")
    assert f"SMF_FMRI={FMRI}\n" in out.read_text()
    lines = smf_host.log_lines(FMRI)
    assert 'Invalid environment variable "SMF_FMRI=forged"; "SMF_" prefix is reserved.' in lines
    assert 'Invalid environment variable "BAD".' in lines


def test_missing_working_directory_fails_the_method_with_a_config_error(smf_host: SmfHost) -> None:
    smf_host.add(FMRI, start=":true x", workdir={"start": "/nonexistent/dir"})
    smf_host.wait_state(FMRI, "maintenance")
    lines = smf_host.log_lines(FMRI)
    assert 'chdir: No such file or directory ("/nonexistent/dir")' in lines
    assert lines[-1] == 'Method "start" exited with status 96.'
    assert smf_host.props(FMRI)["auxiliary_state"] == ["method_failed"]


def test_method_output_goes_to_the_instance_log(smf_host: SmfHost) -> None:
    speak = smf_host.script("speak.sh", "echo to-stdout; echo to-stderr >&2")
    smf_host.add(FMRI, start=str(speak), duration="transient", stop=None)
    smf_host.wait_state(FMRI, "online")
    log = smf_host.log(FMRI)
    assert "\nto-stdout\nto-stderr\n" in log


def test_percent_tokens_expand_as_svc_startd_does(smf_host: SmfHost) -> None:
    out = smf_host.state / "tokens"
    smf_host.add(
        FMRI,
        # printf's own %s is written %%s: the restarter expands every % token.
        start=f"printf '%%s|' %f %s %i %m %r %% %{{config/words}} %{{config/words,}} %{{plain}} > {out}",
        stop=None,
        duration="transient",
        pgs={
            "config": ("application", {"words": ("astring", ["a b", "c;d"])}),
            "application": ("application", {"plain": ("astring", ["x"])}),
        },
    )
    smf_host.wait_state(FMRI, "online")
    assert out.read_text().split("|")[:-1] == [
        FMRI,
        "test/app",
        "default",
        "start",
        "svc.startd",
        "%",
        "a b",  # values escaped for the shell: one word each
        "c;d",
        "a b,c;d",
        "x",
    ]


def test_a_token_that_cannot_be_expanded_fails_the_method(smf_host: SmfHost) -> None:
    smf_host.add(FMRI, start="/bin/echo %{config/missing}")
    smf_host.wait_state(FMRI, "maintenance")
    assert smf_host.log_lines(FMRI)[-1] == (
        'Could not expand method tokens in "/bin/echo %{config/missing}": '
        'property "config/missing" not found.'
    )
    assert smf_host.props(FMRI)["auxiliary_state"] == ["method_failed"]


def test_true_method_is_logged_as_null(smf_host: SmfHost) -> None:
    smf_host.add(FMRI, start=":true", duration="transient")
    smf_host.wait_state(FMRI, "online")
    assert smf_host.log_lines(FMRI)[-1] == "Executing start method (null)."


def test_kill_as_stop_method_of_a_transient_service_is_invalid(smf_host: SmfHost) -> None:
    smf_host.add(FMRI, start=":true", stop=":kill", duration="transient")
    smf_host.wait_state(FMRI, "online")
    smf_host.svcadm("disable", FMRI)
    smf_host.wait_state(FMRI, "maintenance")
    assert smf_host.log_lines(FMRI)[-1] == (
        'Invalid use of ":kill" as stop method for transient service.'
    )


def test_kill_with_a_signal_sends_it_to_every_process_in_the_contract(smf_host: SmfHost) -> None:
    got = smf_host.state / "got"
    start = smf_host.script(
        "trap.sh",
        f"""
        ( trap 'echo HUP >> {got}; exit 0' HUP; while :; do sleep 0.05; done ) &
        ( trap 'echo HUP >> {got}; exit 0' HUP; while :; do sleep 0.05; done ) &
        """,
    )
    smf_host.add(FMRI, start=str(start), stop=":kill -HUP")
    smf_host.wait_state(FMRI, "online")
    smf_host.svcadm("disable", FMRI)
    smf_host.wait_state(FMRI, "disabled")
    assert got.read_text() == "HUP\nHUP\n"


def test_start_method_timeout_kills_the_contract_and_retries(smf_host: SmfHost) -> None:
    smf_host.add(FMRI, start="sleep 600", timeout=1)
    smf_host.wait_state(FMRI, "maintenance", timeout=15)
    lines = smf_host.log_lines(FMRI)
    killed = [line for line in lines if line.startswith("Method or service exit timed out.")]
    assert len(killed) == 3  # three tries: the fault threshold
    assert killed[0].startswith("Method or service exit timed out.  Killing contract ")
    assert lines.count('Method "start" failed due to signal KILL.') == 3
    p = smf_host.props(FMRI)
    assert p["auxiliary_state"] == ["fault_threshold_reached"]
    assert p["start_method_waitstatus"] == ["9"]


def test_timeout_retry_false_goes_to_maintenance_after_one_timeout(smf_host: SmfHost) -> None:
    smf_host.add(
        FMRI, start="sleep 600", timeout=1, startd={"timeout_retry": ("boolean", ["false"])}
    )
    smf_host.wait_state(FMRI, "maintenance", timeout=10)
    lines = smf_host.log_lines(FMRI)
    assert len([x for x in lines if x.startswith("Method or service exit timed out.")]) == 1
    assert smf_host.props(FMRI)["auxiliary_state"] == ["method_failed"]


@pytest.mark.parametrize("code", [95, 96, 99, 100])
def test_exit_95_96_99_100_go_to_maintenance_at_once(smf_host: SmfHost, code: int) -> None:
    smf_host.add(FMRI, start=exiting(smf_host, code))
    smf_host.wait_state(FMRI, "maintenance")
    lines = smf_host.log_lines(FMRI)
    assert lines.count(f'Method "start" exited with status {code}.') == 1
    p = smf_host.props(FMRI)
    assert p["auxiliary_state"] == ["method_failed"]
    assert p["start_method_waitstatus"] == [str(code << 8)]


def test_third_consecutive_start_failure_goes_to_maintenance(smf_host: SmfHost) -> None:
    smf_host.add(FMRI, start=exiting(smf_host, 1))
    smf_host.wait_state(FMRI, "maintenance")
    lines = smf_host.log_lines(FMRI)
    assert lines.count('Method "start" exited with status 1.') == 3
    assert smf_host.props(FMRI)["auxiliary_state"] == ["fault_threshold_reached"]


def test_a_success_resets_the_failure_count(smf_host: SmfHost) -> None:
    count = smf_host.state / "count"
    # Fails twice, then succeeds and leaves a process; later fails twice again.
    start = smf_host.script(
        "flaky.sh",
        f"""
        n=$(cat {count} 2>/dev/null || echo 0); n=$((n + 1)); echo $n > {count}
        case $n in 1|2|4|5) exit 1;; esac
        sleep 600 &
        """,
    )
    smf_host.add(FMRI, start=str(start))
    smf_host.wait_state(FMRI, "online")
    smf_host.svcadm("restart", FMRI)
    smf_host.wait_for("the sixth start", lambda: count.read_text() == "6\n")
    smf_host.wait_state(FMRI, "online")


def test_start_method_killed_by_a_signal_is_retried(smf_host: SmfHost) -> None:
    smf_host.add(FMRI, start="kill -TERM $$")
    smf_host.wait_state(FMRI, "maintenance")
    lines = smf_host.log_lines(FMRI)
    assert lines.count('Method "start" failed due to signal TERM.') == 3
    assert smf_host.props(FMRI)["start_method_waitstatus"] == ["15"]


def test_exit_94_nodaemon_is_online_without_a_contract(smf_host: SmfHost) -> None:
    smf_host.add(FMRI, start=exiting(smf_host, 94))
    smf_host.wait_state(FMRI, "online")
    assert smf_host.log_lines(FMRI)[-1] == 'Method "start" exited with status 94.'
    assert "contract" not in smf_host.props(FMRI)


def test_stop_method_runs_with_smf_method_stop(smf_host: SmfHost) -> None:
    out = smf_host.state / "stopped"
    smf_host.add(FMRI, start=":true", stop=f"echo $SMF_METHOD > {out}", duration="transient")
    smf_host.wait_state(FMRI, "online")
    smf_host.svcadm("disable", FMRI)
    smf_host.wait_state(FMRI, "disabled")
    assert out.read_text() == "stop\n"
