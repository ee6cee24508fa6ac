"""The restarter's pure parts: % tokens, :kill, the startd and method properties,
dependency evaluation and the rate limit, without a daemon."""

from __future__ import annotations

import os
import signal
import string
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devhost import zfspool
from devhost.smf import notify
from devhost.smf.fmri import Fmri, file_path, parse
from devhost.smf.repository import Doc, Repository
from devhost.smf.startd import config, graph, methods
from devhost.smf.startd.config import Dependency, Style
from devhost.smf.startd.instance import Instance
from devhost.smf.startd.runner import Bell, rate_critical

INST = parse("svc:/system/vm:web01")


def expand(text: str, props: dict[str, list[str]] | None = None) -> str:
    return methods.expand_tokens(text, INST, "start", lambda spec: (props or {}).get(spec))


def test_tokens_name_the_instance_method_and_restarter() -> None:
    assert expand("%f %s %i %m %r 100%%") == (
        "svc:/system/vm:web01 system/vm web01 start svc.startd 100%"
    )


def test_a_lone_trailing_percent_is_dropped() -> None:
    assert expand("abc%") == "abc"


def test_property_values_are_escaped_and_joined() -> None:
    props = {"cfg/list": ["a b", "c"], "cfg/one": ["x;y"]}
    assert expand("%{cfg/list}", props) == "a\\ b c"
    assert expand("%{cfg/list,}", props) == "a\\ b,c"
    assert expand("%{cfg/list:}", props) == "a\\ b:c"
    assert expand("%{cfg/one}", props) == "x\\;y"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("%{cfg/x}", 'property "cfg/x" not found'),
        ("%{cfg/x", "parse error"),
        ("%z", "unknown method token"),
    ],
)
def test_bad_tokens_say_why(text: str, message: str) -> None:
    with pytest.raises(methods.TokenError, match=message):
        expand(text)


# expand.c escapes only these metacharacters (and space and tab): a value with
# $, *, ? or a leading # or ~ is open to the shell on illumos too.
SAFE = (
    string.ascii_letters + string.digits + methods.SHELL_METACHARS.replace("\n", "") + ".,:_-+/@%"
)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=SAFE, min_size=1))
def test_escaped_values_reach_the_method_as_one_word(value: str) -> None:
    method = expand("printf %%s %{v}", {"v": [value]})
    out = subprocess.run(["/bin/sh", "-c", "exec " + method], capture_output=True, text=True)
    assert out.stdout == value


def test_kill_methods_and_their_signals() -> None:
    assert methods.kill_signal(":kill") == signal.SIGTERM
    assert methods.kill_signal(":kill -HUP") == signal.SIGHUP
    assert methods.kill_signal(":kill -9") == 9
    assert methods.kill_signal(":killer") is None
    assert methods.is_null_method(":true")


def _pg(pgtype: str, **props: tuple[str, list[str]]) -> dict[str, object]:
    return {
        "type": pgtype,
        "nonpersistent": False,
        "props": {k: {"type": t, "values": v} for k, (t, v) in props.items()},
    }


def test_only_child_and_transient_durations_are_recognised() -> None:
    for value, style in (("child", Style.WAIT), ("transient", Style.TRANSIENT),
                         ("wait", Style.CONTRACT), ("contract", Style.CONTRACT)):  # fmt: skip
        view = {"startd": _pg("framework", duration=("astring", [value]))}
        assert config.startd_props(view).style is style
    assert config.startd_props({}).style is Style.CONTRACT


def test_timeouts_of_zero_minus_one_or_none_are_infinite() -> None:
    for raw in ("0", "-1", "18446744073709551615"):
        view = {"start": _pg("method", exec=("astring", ["x"]), timeout_seconds=("count", [raw]))}
        assert config.method_props(view, "start").timeout is None
    view = {"start": _pg("method", exec=("astring", ["x"]), timeout_seconds=("count", ["30"]))}
    assert config.method_props(view, "start").timeout == 30
    wrong = {"start": _pg("method", exec=("astring", ["x"]), timeout_seconds=("integer", ["30"]))}
    props = config.method_props(wrong, "start")
    assert props.timeout is None
    assert props.timeout_note == (
        "start/timeout_seconds is multi-valued or not of type count.  Using infinite timeout."
    )


def test_restart_on_and_ignore_error_choose_the_critical_events() -> None:
    start = _pg("method", exec=("astring", ["x"]))
    assert config.method_props({"start": start}, "start").critical_events == (
        config.EV_CORE | config.EV_EMPTY | config.EV_SIGNAL | config.EV_HWERR
    )
    view = {
        "start": _pg("method", exec=("astring", ["x"]), restart_on=("astring", ["external_fault"])),
        "startd": _pg("framework", ignore_error=("astring", ["signal"])),
    }
    assert config.method_props(view, "start").critical_events == config.EV_HWERR


@attrs.define
class FakeGraph:
    states: dict[Fmri, str]
    deps: dict[Fmri, list[Dependency]] = attrs.Factory(dict)
    files: set[str] = attrs.Factory(set)

    def state(self, fmri: Fmri) -> str | None:
        return self.states.get(fmri)

    def enabled(self, fmri: Fmri) -> bool:
        return self.states.get(fmri) != "disabled"

    def dependencies(self, fmri: Fmri) -> list[Dependency]:
        return self.deps.get(fmri, [])

    def service_instances(self, service: str) -> list[Fmri] | None:
        found = [f for f in self.states if f.service == service]
        return found or None

    def path_ready(self, path: str) -> bool:
        return path in self.files


def dep(grouping: str, *entities: str) -> Dependency:
    return Dependency("d", grouping, 0, "service", entities)


@pytest.mark.parametrize(
    ("grouping", "dep_state", "expected"),
    [
        ("require_all", "online", 1),
        ("require_all", "offline", -1),  # offline for good: its own dependency is missing
        ("require_all", "disabled", -1),
        ("require_all", "maintenance", -1),
        ("require_all", None, -1),
        ("optional_all", "disabled", 1),
        ("optional_all", "maintenance", 1),
        ("optional_all", None, 1),
        ("optional_all", "offline", 1),  # offline and unsatisfiable: as good as satisfied
        ("exclude_all", "online", -1),
        ("exclude_all", "disabled", 1),
        ("exclude_all", "offline", 0),
    ],
)
def test_dependency_groupings(grouping: str, dep_state: str | None, expected: int) -> None:
    a, b, ghost = parse("svc:/a:default"), parse("svc:/b:default"), parse("svc:/ghost:x")
    states = {b: "offline"}
    if dep_state is not None:
        states[a] = dep_state
    g = FakeGraph(states, {b: [dep(grouping, str(a))], a: [dep("require_all", str(ghost))]})
    assert graph.Evaluator(g).instance(b, satbility=True) == expected


def test_an_offline_dependency_that_can_start_is_unsatisfied_not_unsatisfiable() -> None:
    a, b = parse("svc:/a:default"), parse("svc:/b:default")
    g = FakeGraph({a: "offline", b: "offline"}, {b: [dep("require_all", str(a))]})
    assert graph.Evaluator(g).instance(b, satbility=True) == 0


def test_require_any_needs_one() -> None:
    a, c, b = parse("svc:/a:default"), parse("svc:/c:default"), parse("svc:/b:default")
    g = FakeGraph(
        {a: "disabled", c: "online", b: "offline"}, {b: [dep("require_any", str(a), str(c))]}
    )
    assert graph.Evaluator(g).instance(b) == 1
    g.states[c] = "maintenance"
    assert graph.Evaluator(g).instance(b, satbility=True) == -1


def test_path_dependencies_need_the_file() -> None:
    b = parse("svc:/b:default")
    g = FakeGraph(
        {b: "offline"}, {b: [Dependency("f", "require_all", 0, "path", ("file://localhost/x",))]}
    )
    assert graph.Evaluator(g).instance(b, satbility=True) == -1
    g.files.add("/x")
    assert graph.Evaluator(g).instance(b) == 1


def test_a_dependency_cycle_does_not_recurse_forever() -> None:
    a, b = parse("svc:/a:default"), parse("svc:/b:default")
    g = FakeGraph(
        {a: "offline", b: "offline"},
        {a: [dep("require_all", str(b))], b: [dep("require_all", str(a))]},
    )
    assert graph.Evaluator(g).instance(a, satbility=True) == 0


def test_rate_limit_is_an_average_gap_over_five_starts() -> None:
    inst = Instance(fmri=INST, log=Path("/dev/null"))
    sp = config.startd_props({})
    inst.start_times = [0, 100, 200, 300]
    assert not rate_critical(inst, sp)  # fewer than five starts: never
    inst.start_times.append(400)
    assert rate_critical(inst, sp)  # 100 s apart on average: under 600 s
    inst.start_times = [0, 700, 1400, 2100, 2800]
    assert not rate_critical(inst, sp)


# --- the restarter's socket (devhost.smf.notify) --------------------------------------------


def test_socket_path_is_startd_sock_in_the_state_dir_while_short_enough() -> None:
    state = Path("/var/tmp/devhost-0")
    assert notify.socket_path(state) == state / "smf" / "startd.sock"
    limit = Path("/" + "s" * (107 - len("/smf/startd.sock") - 1))
    assert len(str(notify.socket_path(limit))) == 107
    assert notify.socket_path(limit).parent == limit / "smf"


def test_socket_path_of_a_long_state_dir_is_short_stable_and_distinct() -> None:
    a = Path("/" + "a" * 100)
    b = Path("/" + "b" * 100)
    assert len(str(a / "smf" / "startd.sock")) >= 108
    pa = notify.socket_path(a)
    assert len(str(pa)) < 108 and pa.name == "startd.sock"
    assert str(pa.parent) == "/tmp/dh-smf-" + zfspool.pool_for(a).name[2:]  # the same hash
    assert pa == notify.socket_path(a) != notify.socket_path(b)
    assert notify.is_short(pa) and not notify.is_short(notify.socket_path(Path("/x")))


def test_socket_dir_under_tmp_must_be_private() -> None:
    sock = notify.socket_path(Path("/" + "p" * 100) / str(os.getpid()))
    try:
        sock.parent.mkdir(mode=0o755)
        os.chmod(sock.parent, 0o755)
        with pytest.raises(PermissionError, match="not a private directory"):
            notify.prepare(sock)
        os.chmod(sock.parent, 0o700)
        notify.prepare(sock)
    finally:
        notify.remove(sock)
    assert not sock.parent.exists()


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("file://localhost/etc/x", "/etc/x"),
        ("file:///etc/x", "/etc/x"),
        ("file:/etc/x", "/etc/x"),
        ("file://otherhost/etc/x", None),  # libscf has no remote scopes
        ("file://localhost", None),
        ("file:etc/x", None),
        ("svc:/etc/x", None),
    ],
)
def test_file_fmri_path_is_read_as_libscf_does(text: str, path: str | None) -> None:
    # One parser for the restarter's path dependencies, svcs -l/-x, svcadm and
    # manifests' fmri values.
    assert file_path(text) == path


def test_a_shared_read_is_the_document_written_until_another_writer_replaces_it(
    tmp_path: Path,
) -> None:
    ours, theirs = Repository(tmp_path), Repository(tmp_path)

    def add(name: str) -> Callable[[Doc], bool]:
        def change(doc: Doc) -> bool:
            doc.setdefault("services", {})[name] = {}
            return True

        return change

    ours.update(add("a"))
    shared = ours.read_shared()
    assert shared is ours.read_shared()  # not parsed again
    assert shared == ours.read()
    assert ours.read() is not shared  # a writer's read is its own copy

    theirs.update(add("b"))
    seen = ours.read_shared()
    assert seen is not shared and set(seen["services"]) == {"a", "b"}


def test_a_bell_wakes_a_waiter_rung_after_its_mark_and_not_one_rung_before() -> None:
    bell = Bell()
    mark = bell.mark()
    bell.ring()  # between the look and the wait: not lost
    began = time.monotonic()
    bell.wait(mark, 5.0)
    assert time.monotonic() - began < 1.0
    mark = bell.mark()
    began = time.monotonic()
    bell.wait(mark, 0.2)  # nothing rang: the timeout
    assert time.monotonic() - began >= 0.2
    threading.Timer(0.05, bell.ring).start()
    began = time.monotonic()
    bell.wait(bell.mark(), 5.0)
    assert time.monotonic() - began < 1.0
