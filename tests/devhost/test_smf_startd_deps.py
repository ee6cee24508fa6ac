"""Dependencies: the four groupings on services, path dependencies, restart_on
propagation, and the standard services seeded for manifests to depend on."""

from __future__ import annotations

from smf_support import Dep, SmfHost

A = "svc:/test/a:default"
B = "svc:/test/b:default"
C = "svc:/test/c:default"


def _daemon(host: SmfHost, name: str) -> str:
    starts = host.state / f"{name}.starts"
    return str(host.script(f"{name}.sh", f"echo >> {starts}; sleep 600 &"))


def _starts(host: SmfHost, name: str) -> int:
    path = host.state / f"{name}.starts"
    return path.read_text().count("\n") if path.exists() else 0


def test_require_all_waits_offline_until_the_dependency_is_online(smf_host: SmfHost) -> None:
    smf_host.add(A, start=_daemon(smf_host, "a"), enabled=False)
    smf_host.add(B, start=_daemon(smf_host, "b"), deps=(Dep("a", (A,)),))
    smf_host.wait_state(B, "offline")
    smf_host.wait_looked()
    assert smf_host.state_of(B) == "offline"
    smf_host.svcadm("enable", A)
    smf_host.wait_state(B, "online")
    assert smf_host.props(B)["auxiliary_state"] == ["dependencies_satisfied"]


def test_waiting_for_dependencies_keeps_the_reason_it_went_offline(smf_host: SmfHost) -> None:
    # restarter.c writes no auxiliary state of its own while an instance waits: it
    # keeps enable_inst()'s reason (per_configuration from uninitialized,
    # enable_request from disabled). There is no "dependencies_unsatisfied".
    smf_host.add(A, start=_daemon(smf_host, "a"), enabled=False)
    smf_host.add(B, start=_daemon(smf_host, "b"), deps=(Dep("a", (A,)),))
    smf_host.wait_state(B, "offline")
    smf_host.wait_looked()
    assert smf_host.props(B)["auxiliary_state"] == ["per_configuration"]
    smf_host.svcadm("disable", B)
    smf_host.wait_state(B, "disabled")
    smf_host.svcadm("enable", B)
    smf_host.wait_state(B, "offline")
    smf_host.wait_looked()
    assert smf_host.state_of(B) == "offline"
    assert smf_host.props(B)["auxiliary_state"] == ["enable_request"]


def test_svcs_x_explains_a_waiting_instance_by_its_dependency_state(smf_host: SmfHost) -> None:
    smf_host.add(A, start=_daemon(smf_host, "a"), enabled=False)
    smf_host.add(B, start=_daemon(smf_host, "b"), deps=(Dep("a", (A,)),))
    smf_host.wait_state(B, "offline")
    smf_host.wait_state(A, "disabled")
    out = smf_host.run(str(smf_host.bin / "svcs"), "-x", B).stdout.splitlines()
    assert out[0] == f"{B} (?)"
    assert out[1].startswith(" State: offline since ")
    assert out[2:4] == [
        f"Reason: Service {A} is disabled.",
        "   See: http://illumos.org/msg/SMF-8000-GE",
    ]
    assert out[-1] == "Impact: This service is not running."
    out = smf_host.run(str(smf_host.bin / "svcs"), "-xv", B).stdout.splitlines()
    assert out[4:6] == [f"  Path: {B}", f"{'':8}  {A}"]
    # Without operands, the root cause is listed with what it holds up.
    out = smf_host.run(str(smf_host.bin / "svcs"), "-x").stdout
    assert out.startswith(f"{A} (?)\n State: disabled since ")
    assert "Reason: Disabled by an administrator.\n" in out
    assert "Impact: 1 dependent service is not running.  (Use -v for list.)\n" in out


def test_require_any_is_satisfied_by_one_online_instance(smf_host: SmfHost) -> None:
    smf_host.add(A, start=_daemon(smf_host, "a"), enabled=False)
    smf_host.add(C, start=_daemon(smf_host, "c"))
    smf_host.add(B, start=_daemon(smf_host, "b"), deps=(Dep("any", (A, C), "require_any"),))
    smf_host.wait_state(B, "online")


def test_a_dependency_on_a_service_means_any_of_its_instances(smf_host: SmfHost) -> None:
    smf_host.add("svc:/test/a:one", start=_daemon(smf_host, "a1"), enabled=False)
    smf_host.add("svc:/test/a:two", start=_daemon(smf_host, "a2"))
    smf_host.add(B, start=_daemon(smf_host, "b"), deps=(Dep("a", ("svc:/test/a",)),))
    smf_host.wait_state(B, "online")


def test_require_all_on_a_missing_instance_is_never_satisfied(smf_host: SmfHost) -> None:
    smf_host.add(
        B, start=_daemon(smf_host, "b"), deps=(Dep("ghost", ("svc:/test/ghost:default",)),)
    )
    smf_host.wait_state(B, "offline")
    smf_host.wait_looked()
    assert smf_host.state_of(B) == "offline"


def test_optional_all_ignores_disabled_and_missing_dependencies(smf_host: SmfHost) -> None:
    smf_host.add(A, start=_daemon(smf_host, "a"), enabled=False)
    smf_host.add(
        B,
        start=_daemon(smf_host, "b"),
        deps=(Dep("opt", (A, "svc:/test/ghost:default"), "optional_all"),),
    )
    smf_host.wait_state(B, "online")


def test_optional_all_waits_for_an_enabled_dependency(smf_host: SmfHost) -> None:
    go = smf_host.state / "go"
    slow = smf_host.script("slow.sh", f"while [ ! -e {go} ]; do sleep 0.02; done; sleep 600 &")
    smf_host.add(A, start=str(slow))
    smf_host.add(B, start=_daemon(smf_host, "b"), deps=(Dep("opt", (A,), "optional_all"),))
    smf_host.wait_state(A, "offline", settled=False)
    smf_host.wait_state(B, "offline")
    smf_host.wait_looked()
    assert smf_host.state_of(B) == "offline"
    go.touch()
    smf_host.wait_state(B, "online")


def test_exclude_all_keeps_an_instance_offline_while_the_excluded_runs(smf_host: SmfHost) -> None:
    smf_host.add(A, start=_daemon(smf_host, "a"))
    smf_host.wait_state(A, "online")
    smf_host.add(B, start=_daemon(smf_host, "b"), deps=(Dep("not_a", (A,), "exclude_all"),))
    smf_host.wait_state(B, "offline")
    smf_host.wait_looked()
    assert smf_host.state_of(B) == "offline"
    smf_host.svcadm("disable", A)
    smf_host.wait_state(B, "online")
    smf_host.svcadm("enable", A)  # the excluded comes back: B must go
    smf_host.wait_state(A, "online")
    smf_host.wait_state(B, "offline")


def test_path_dependency_needs_the_file(smf_host: SmfHost) -> None:
    needed = smf_host.state / "needed"
    smf_host.add(
        B,
        start=_daemon(smf_host, "b"),
        deps=(Dep("file", (f"file://localhost{needed}",), type="path"),),
    )
    smf_host.wait_state(B, "offline")
    needed.touch()
    # svc.startd looks at the file again on the instance's next event, such as a
    # refresh. (Whether some other event gets there first is timing, not a rule.)
    smf_host.svcadm("refresh", B)
    smf_host.wait_state(B, "online")


def test_restart_on_restart_restarts_dependents(smf_host: SmfHost) -> None:
    smf_host.add(A, start=_daemon(smf_host, "a"))
    smf_host.add(B, start=_daemon(smf_host, "b"), deps=(Dep("a", (A,), restart_on="restart"),))
    smf_host.wait_state(B, "online")
    smf_host.svcadm("restart", A)
    smf_host.wait_for("B to start again", lambda: _starts(smf_host, "b") == 2)
    smf_host.wait_state(B, "online")
    assert "Stopping because dependency activity requires stop." in smf_host.log_lines(B)


def test_restart_on_none_leaves_dependents_running(smf_host: SmfHost) -> None:
    smf_host.add(A, start=_daemon(smf_host, "a"))
    smf_host.add(B, start=_daemon(smf_host, "b"), deps=(Dep("a", (A,), restart_on="none"),))
    smf_host.wait_state(B, "online")
    b_since = smf_host.props(B)["state_timestamp"]
    smf_host.svcadm("restart", A)
    smf_host.wait_for("A to start again", lambda: _starts(smf_host, "a") == 2)
    smf_host.wait_state(A, "online")
    smf_host.wait_looked()
    assert _starts(smf_host, "b") == 1
    assert smf_host.props(B)["state_timestamp"] == b_since  # not even stopping


def test_restart_on_refresh_restarts_dependents_on_a_refresh(smf_host: SmfHost) -> None:
    smf_host.add(A, start=_daemon(smf_host, "a"))
    smf_host.add(B, start=_daemon(smf_host, "b"), deps=(Dep("a", (A,), restart_on="refresh"),))
    smf_host.wait_state(B, "online")
    smf_host.svcadm("refresh", A)
    smf_host.wait_for("B to start again", lambda: _starts(smf_host, "b") == 2)
    assert _starts(smf_host, "a") == 1


def test_disabling_a_dependency_stops_its_dependents_first(smf_host: SmfHost) -> None:
    smf_host.add(A, start=_daemon(smf_host, "a"))
    smf_host.add(B, start=_daemon(smf_host, "b"), deps=(Dep("a", (A,)),))
    smf_host.wait_state(B, "online")
    smf_host.svcadm("disable", A)
    smf_host.wait_state(A, "disabled")
    smf_host.wait_state(B, "offline")
    b_stopped = smf_host.props(B)["state_timestamp"][0]
    a_stopped = smf_host.props(A)["state_timestamp"][0]
    assert float(b_stopped) <= float(a_stopped)
    smf_host.wait_looked()
    assert smf_host.state_of(B) == "offline"  # and it does not come back


def test_standard_services_are_seeded_online(smf_host: SmfHost) -> None:
    for fmri in (
        "svc:/milestone/single-user:default",
        "svc:/milestone/multi-user:default",
        "svc:/milestone/multi-user-server:default",
        "svc:/milestone/network:default",
        "svc:/system/filesystem/local:default",
        "svc:/system/filesystem/minimal:default",
        "svc:/network/physical:default",
        "svc:/network/loopback:default",
        "svc:/system/svc/restarter:default",
    ):
        assert smf_host.state_of(fmri) == "online", fmri
    smf_host.add(
        B,
        start=_daemon(smf_host, "b"),
        deps=(
            Dep("fs", ("svc:/system/filesystem/local",)),
            Dep("net", ("svc:/milestone/network:default",)),
        ),
    )
    smf_host.wait_state(B, "online")
