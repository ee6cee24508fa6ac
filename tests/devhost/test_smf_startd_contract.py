"""Process contracts and the three service models (startd/duration): what the
restarter follows, when it restarts, the restart rate limit, and adopting the
contracts of a restarter that died."""

from __future__ import annotations

import os
import signal

from smf_support import SmfHost

from devhost.smf import contracts
from devhost.smf.startd import daemon

FMRI = "svc:/test/app:default"


def _alive(pid: int) -> bool:
    st = contracts.proc_stat(pid)
    return st is not None and st.state != "Z"


def _double_forking_daemon(host: SmfHost) -> str:
    """Daemonizes the way QEMU's -daemonize does and more: setsid, fork twice,
    and the start method returns once the pid file is there."""
    pidfile = host.state / "daemon.pid"
    return str(
        host.script(
            "daemonize.sh",
            f"""
            rm -f {pidfile}
            setsid sh -c 'sh -c "echo \\$\\$ > {pidfile}; exec sleep 600" &' &
            while [ ! -s {pidfile} ]; do sleep 0.01; done
            """,
        )
    )


def test_contract_follows_a_double_forking_daemon(smf_host: SmfHost) -> None:
    smf_host.add(FMRI, start=_double_forking_daemon(smf_host))
    smf_host.wait_state(FMRI, "online")
    pid = int((smf_host.state / "daemon.pid").read_text())
    st = contracts.proc_stat(pid)
    assert st is not None and st.comm == "sleep"
    assert os.getsid(pid) != os.getsid(0)  # it left our session...
    assert smf_host.members(FMRI) == [pid]  # ...but not its contract
    assert contracts.processes(smf_host.state, smf_host.contract(FMRI)) == [pid]


def test_all_processes_exiting_restarts_the_service(smf_host: SmfHost) -> None:
    smf_host.add(FMRI, start=_double_forking_daemon(smf_host))
    smf_host.wait_state(FMRI, "online")
    first = smf_host.contract(FMRI)
    pid = int((smf_host.state / "daemon.pid").read_text())
    os.kill(pid, signal.SIGTERM)  # it exits, as a guest powering itself off makes QEMU do
    smf_host.wait_for(
        "a new contract", lambda: smf_host.props(FMRI).get("contract") != [str(first)]
    )
    smf_host.wait_state(FMRI, "online")
    lines = smf_host.log_lines(FMRI)
    at = lines.index("Stopping because process received fatal signal from outside the service.")
    assert lines[at + 1] == "Executing stop method (:kill)."
    assert lines[at + 2].startswith("Executing start method")


def test_contract_empty_restarts_the_service(smf_host: SmfHost) -> None:
    done = smf_host.state / "done"
    start = smf_host.script("short.sh", f"(while [ ! -e {done} ]; do sleep 0.02; done) &")
    smf_host.add(FMRI, start=str(start))
    smf_host.wait_state(FMRI, "online")
    first = smf_host.contract(FMRI)
    done.touch()  # the service's only process exits by itself
    smf_host.wait_for(
        "a restart",
        lambda: (
            smf_host.log_lines(FMRI).count("Enabled.") == 1
            and len([x for x in smf_host.log_lines(FMRI) if x.startswith("Executing start")]) == 2
        ),
    )
    lines = smf_host.log_lines(FMRI)
    at = lines.index("Stopping because all processes in service exited.")
    assert lines[at + 1] == "Executing stop method (:kill)."
    assert smf_host.props(FMRI).get("contract") != [str(first)]


def test_member_killed_by_a_signal_from_outside_restarts_the_service(smf_host: SmfHost) -> None:
    pids = smf_host.state / "pids"
    start = smf_host.script(
        "two.sh",
        f"""
        sleep 600 & echo $! >> {pids}
        sleep 600 & echo $! >> {pids}
        """,
    )
    smf_host.add(FMRI, start=str(start))
    smf_host.wait_state(FMRI, "online")
    first, survivor = (int(x) for x in pids.read_text().split())
    os.kill(first, signal.SIGKILL)
    smf_host.wait_for(
        "the stop",
        lambda: (
            "Stopping because process received fatal signal from outside the service."
            in smf_host.log_lines(FMRI)
        ),
    )
    smf_host.wait_state(FMRI, "online")
    assert not _alive(survivor)  # the stop method (:kill) took the rest down


def test_ignore_error_signal_masks_signal_events(smf_host: SmfHost) -> None:
    pids = smf_host.state / "pids"
    start = smf_host.script(
        "two.sh",
        f"""
        sleep 600 & echo $! >> {pids}
        sleep 600 & echo $! >> {pids}
        """,
    )
    smf_host.add(FMRI, start=str(start), startd={"ignore_error": ("astring", ["core,signal"])})
    smf_host.wait_state(FMRI, "online")
    contract = smf_host.contract(FMRI)
    first, survivor = (int(x) for x in pids.read_text().split())
    os.kill(first, signal.SIGKILL)
    smf_host.wait_for(
        "the restarter to see the signal event",
        lambda: f"contract {contract} is not critical" in smf_host.daemon_log(),
    )
    smf_host.wait_looked()
    assert smf_host.state_of(FMRI) == "online"
    assert smf_host.contract(FMRI) == contract
    assert smf_host.members(FMRI) == [survivor]
    os.kill(survivor, signal.SIGKILL)  # the contract empties: that still counts
    smf_host.wait_for(
        "the stop",
        lambda: "Stopping because all processes in service exited." in smf_host.log_lines(FMRI),
    )


def test_stop_method_timeout_kills_the_contract_and_fails_the_stop(smf_host: SmfHost) -> None:
    start = smf_host.script("stubborn.sh", "(trap '' TERM; while :; do sleep 0.05; done) &")
    smf_host.add(FMRI, start=str(start), timeout=1)
    smf_host.wait_state(FMRI, "online")
    members = smf_host.members(FMRI)
    smf_host.svcadm("disable", FMRI)
    smf_host.wait_state(FMRI, "maintenance", timeout=10)
    lines = smf_host.log_lines(FMRI)
    assert lines[-2] == "Executing stop method (:kill)."
    assert lines[-1].startswith("Method or service exit timed out.  Killing contract ")
    assert smf_host.props(FMRI)["auxiliary_state"] == ["method_failed"]
    assert not [p for p in members if _alive(p)]


def _crashing(host: SmfHost, seconds: float = 0.0) -> str:
    """A service whose daemon dies `seconds` after each start."""
    starts = host.state / "starts"
    return str(host.script("crash.sh", f"echo >> {starts}; (sleep {seconds}) &"))


def test_five_quick_starts_go_to_maintenance_restarting_too_quickly(smf_host: SmfHost) -> None:
    smf_host.add(FMRI, start=_crashing(smf_host))
    smf_host.wait_state(FMRI, "maintenance", timeout=20)
    lines = smf_host.log_lines(FMRI)
    assert lines[-1] == "Restarting too quickly, changing state to maintenance."
    # The fifth start is refused: four ran.
    assert (smf_host.state / "starts").read_text().count("\n") == 4
    assert smf_host.props(FMRI)["auxiliary_state"] == ["restarting_too_quickly"]


def test_critical_failure_period_sets_the_rate_limit(smf_host: SmfHost) -> None:
    smf_host.add(
        FMRI,
        start=_crashing(smf_host, 0.1),
        startd={
            "critical_failure_count": ("integer", ["3"]),
            "critical_failure_period": ("integer", ["0"]),
        },
    )
    starts = smf_host.state / "starts"
    smf_host.wait_for(
        "eight starts", lambda: starts.exists() and starts.read_text().count("\n") >= 8
    )
    assert smf_host.state_of(FMRI) != "maintenance"


def test_clear_resets_the_restart_history(smf_host: SmfHost) -> None:
    smf_host.add(FMRI, start=_crashing(smf_host, 0.0))
    smf_host.wait_state(FMRI, "maintenance", timeout=20)
    starts = smf_host.state / "starts"
    smf_host.svcadm("clear", FMRI)
    # With the history kept the first start after clear would be refused.
    smf_host.wait_for("a start after clear", lambda: starts.read_text().count("\n") >= 5)


def test_child_model_restarts_its_child_and_never_goes_to_maintenance(smf_host: SmfHost) -> None:
    starts = smf_host.state / "starts"
    child = smf_host.script("child.sh", f"echo >> {starts}; exit 1")
    smf_host.add(FMRI, start=str(child), duration="child")
    smf_host.wait_for(
        "eight starts", lambda: starts.exists() and starts.read_text().count("\n") >= 8, timeout=20
    )
    lines = smf_host.log_lines(FMRI)
    assert "Stopping because service exited with an error." in lines
    assert "Failing too quickly, throttling." in lines
    assert "maintenance" not in smf_host.props(FMRI)["state"]


def test_child_model_is_online_while_its_child_runs(smf_host: SmfHost) -> None:
    smf_host.add(FMRI, start="sleep 600", duration="child")
    smf_host.wait_state(FMRI, "online")
    pid = int(smf_host.props(FMRI)["start_pid"][0])
    assert contracts.proc_stat(pid) is not None
    assert smf_host.log_lines(FMRI)[-1] == 'Executing start method ("sleep 600").'
    os.kill(pid, signal.SIGTERM)
    smf_host.wait_for("the restart", lambda: smf_host.props(FMRI).get("start_pid") != [str(pid)])
    smf_host.wait_state(FMRI, "online")
    assert "Stopping because all processes in service exited." in smf_host.log_lines(FMRI)


def test_child_model_exit_96_goes_to_maintenance(smf_host: SmfHost) -> None:
    child = smf_host.script("child.sh", "sleep 0.2; exit 96")
    smf_host.add(FMRI, start=str(child), duration="child")
    smf_host.wait_state(FMRI, "maintenance", timeout=10)
    assert "Stopping because service exited with a configuration error." in smf_host.log_lines(FMRI)
    assert smf_host.props(FMRI)["auxiliary_state"] == ["method_failed"]


def test_transient_model_is_online_after_its_start_method_and_watches_nothing(
    smf_host: SmfHost,
) -> None:
    leftover = smf_host.state / "leftover.pid"
    start = smf_host.script("t.sh", f"sleep 600 & echo $! > {leftover}")
    smf_host.add(FMRI, start=str(start), stop=":true", duration="transient")
    smf_host.wait_state(FMRI, "online")
    assert "contract" not in smf_host.props(FMRI)
    gone = int(leftover.read_text())
    os.kill(gone, signal.SIGKILL)
    smf_host.wait_for("the leftover to die", lambda: not _alive(gone))
    smf_host.wait_looked()
    assert smf_host.state_of(FMRI) == "online"
    assert len([x for x in smf_host.log_lines(FMRI) if x.startswith("Executing start")]) == 1


def test_emulator_restart_adopts_running_contracts(smf_host: SmfHost) -> None:
    smf_host.add(FMRI, start=_double_forking_daemon(smf_host))
    smf_host.wait_state(FMRI, "online")
    contract, members = smf_host.contract(FMRI), smf_host.members(FMRI)
    old = daemon.running_pid(smf_host.state)
    assert old is not None
    os.kill(old, signal.SIGKILL)  # the emulator dies; the holder does not
    smf_host.wait_for("the old restarter to go", lambda: not _alive(old))
    new = daemon.spawn(smf_host.state)
    assert new != old
    smf_host.wait_looked()  # a pass besides the one that adopted the contract
    assert smf_host.state_of(FMRI) == "online"
    assert smf_host.contract(FMRI) == contract
    assert smf_host.members(FMRI) == members
    assert len([x for x in smf_host.log_lines(FMRI) if x.startswith("Executing start")]) == 1
    # ...and it keeps watching the adopted contract.
    os.kill(members[0], signal.SIGTERM)
    smf_host.wait_for(
        "a new contract", lambda: smf_host.props(FMRI).get("contract") != [str(contract)]
    )
    smf_host.wait_state(FMRI, "online")
    assert smf_host.contract(FMRI) > contract  # ids go on from where they were


def test_emulator_restart_resumes_a_start_method_in_flight(smf_host: SmfHost) -> None:
    go = smf_host.state / "go"
    start = smf_host.script("slow.sh", f"while [ ! -e {go} ]; do sleep 0.02; done; sleep 600 &")
    smf_host.add(FMRI, start=str(start))
    smf_host.wait_state(FMRI, "offline", settled=False)
    smf_host.wait_for(
        "the start method",
        lambda: (
            smf_host.props(FMRI).get("next_state") == ["online"]
            and "contract" in smf_host.props(FMRI)
        ),
    )
    old = daemon.running_pid(smf_host.state)
    assert old is not None
    os.kill(old, signal.SIGKILL)
    smf_host.wait_for("the old restarter to go", lambda: not _alive(old))
    daemon.spawn(smf_host.state)
    go.touch()
    smf_host.wait_state(FMRI, "online")
    assert len([x for x in smf_host.log_lines(FMRI) if x.startswith("Executing start")]) == 1


def test_shutdown_stops_every_instance_and_leaves_no_process(smf_host: SmfHost) -> None:
    stopped = smf_host.state / "stopped"
    leftover = smf_host.state / "leftover.pid"
    # A stop method that leaves the daemon running: the contract is killed.
    smf_host.add(FMRI, start=_double_forking_daemon(smf_host), stop=f"touch {stopped}", timeout=1)
    smf_host.add(
        "svc:/test/transient:default",
        start=str(smf_host.script("t.sh", f"sleep 600 & echo $! > {leftover}")),
        stop=":true",
        duration="transient",
    )
    smf_host.wait_state(FMRI, "online")
    smf_host.wait_state("svc:/test/transient:default", "online")
    members = [*smf_host.members(FMRI), int(leftover.read_text())]
    daemon.shutdown(smf_host.state, timeout=30)
    assert daemon.running_pid(smf_host.state) is None
    assert stopped.exists()  # the stop method ran...
    assert not [p for p in members if _alive(p)]  # ...and nothing is left behind
    lines = smf_host.log_lines(FMRI)
    assert lines[-4:-1] == [
        "Stopping because service disabled.",
        f'Executing stop method ("touch {stopped}").',
        'Method "stop" exited with status 0.',
    ]
    assert lines[-1].startswith("Method or service exit timed out.  Killing contract ")


def test_spawn_returns_the_running_daemon(smf_host: SmfHost) -> None:
    pid = daemon.running_pid(smf_host.state)
    assert pid is not None
    assert daemon.spawn(smf_host.state) == pid
    assert (smf_host.state / "smf" / "startd.pid").read_text() == f"{pid}\n"


def test_restart_d_aborts_the_contract_and_the_abort_restarts_it(smf_host: SmfHost) -> None:
    pidfile = smf_host.state / "sleeper.pid"
    smf_host.add(FMRI, start=str(smf_host.script("s.sh", f"sleep 600 & echo $! > {pidfile}")))
    smf_host.wait_state(FMRI, "online")
    first = int(pidfile.read_text())
    smf_host.svcadm("restart", "-d", FMRI)
    smf_host.wait_for("the abort", lambda: not _alive(first))
    smf_host.wait_for("the restart", lambda: int(pidfile.read_text()) != first)
    smf_host.wait_state(FMRI, "online")
    stops = [x for x in smf_host.log_lines(FMRI) if x.startswith("Stopping because")]
    assert stops in (
        ["Stopping because process dumped core."],
        ["Stopping because process received fatal signal from outside the service."],
    )
