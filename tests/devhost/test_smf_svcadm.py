"""svcadm(8): operands as libscf's scf_walk_fmri resolves them, what each
subcommand writes, -s and its exit codes, and illumos's messages."""

from __future__ import annotations

import ctypes
import io
import os
import struct
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from smf_support import Dep, SmfHost

from devhost import tools
from devhost.smf import repository, svcadm
from devhost.smf.fmri import parse

A = "svc:/test/a:default"


# --- without a restarter: what svcadm writes -------------------------------------------------


@pytest.fixture
def offline_host(tmp_path: Path) -> SmfHost:
    """A repository with a few instances and no restarter running."""
    host = SmfHost(tmp_path)
    tools.install(tmp_path)
    with host.repo.edit() as doc:
        for text in (
            "svc:/network/smtp:sendmail",
            "svc:/network/smtp:postfix",
            "svc:/system/vm:web01",
            "svc:/system/vm:db01",
            "svc:/site/single:default",
        ):
            f = parse(text)
            repository.add_instance(doc, f)
            repository.set_prop(
                repository.entity(doc, f)["pgs"],  # type: ignore[index]
                "restarter", "state", "astring", ["online"],
                pg_type="framework", nonpersistent=True,
            )  # fmt: skip
    return host


def adm(host: SmfHost, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = svcadm.main(list(argv), host.state)
    return code, out.getvalue(), err.getvalue()


def test_no_subcommand_is_a_usage_error(offline_host: SmfHost) -> None:
    code, _, err = adm(offline_host)
    assert code == 2
    assert err.startswith("Usage: svcadm [-S <state>] [-v] [-Z | -z zone] [cmd [args ... ]]")


def test_enable_without_operands_is_a_usage_error(offline_host: SmfHost) -> None:
    assert adm(offline_host, "enable")[0] == 2
    assert adm(offline_host, "enable", "-x", "sendmail")[0] == 2


def test_full_fmri_and_abbreviations_name_one_instance(offline_host: SmfHost) -> None:
    for operand in (
        "svc:/network/smtp:sendmail",
        "network/smtp:sendmail",
        "smtp:sendmail",
        "sendmail",
        ":sendmail",
    ):
        code, _, err = adm(offline_host, "disable", "-t", operand)
        assert (code, err) == (0, ""), operand


def test_an_abbreviation_must_end_on_an_element(offline_host: SmfHost) -> None:
    for operand in ("mail", "network/smt", "smtp:send"):
        code, _, err = adm(offline_host, "disable", operand)
        assert code == 1
        assert err == f"svcadm: Pattern '{operand}' doesn't match any instances\n"


def test_an_ambiguous_abbreviation_does_nothing(offline_host: SmfHost) -> None:
    code, _, err = adm(offline_host, "disable", "smtp")
    assert code == 1
    assert err == "svcadm: Partial FMRI matches multiple instances\n"
    doc = offline_host.repo.read()
    assert not repository.enabled(doc, parse("svc:/network/smtp:sendmail"))
    node = repository.entity(doc, parse("svc:/network/smtp:sendmail"))
    assert node is not None and "general" not in node["pgs"]


def test_a_service_with_several_instances_is_refused(offline_host: SmfHost) -> None:
    code, _, err = adm(offline_host, "enable", "svc:/system/vm")
    assert (code, err) == (1, "svcadm: Partial FMRI matches multiple instances\n")


def test_a_service_with_one_instance_names_it(offline_host: SmfHost) -> None:
    assert adm(offline_host, "enable", "svc:/site/single") == (0, "", "")
    assert repository.enabled(offline_host.repo.read(), parse("svc:/site/single:default"))


def test_a_glob_applies_to_every_match(offline_host: SmfHost) -> None:
    assert adm(offline_host, "enable", "system/vm:*") == (0, "", "")
    doc = offline_host.repo.read()
    assert repository.enabled(doc, parse("svc:/system/vm:web01"))
    assert repository.enabled(doc, parse("svc:/system/vm:db01"))
    assert not repository.enabled(doc, parse("svc:/site/single:default"))


def test_a_glob_that_matches_nothing_names_the_svc_pattern(offline_host: SmfHost) -> None:
    code, _, err = adm(offline_host, "enable", "nothing/*")
    assert (code, err) == (1, "svcadm: Pattern 'svc:/nothing/*' doesn't match any instances\n")


def test_enable_writes_general_enabled_and_removes_the_override(offline_host: SmfHost) -> None:
    adm(offline_host, "disable", "-t", "web01")
    p = offline_host.props("svc:/system/vm:web01", "general")
    assert p == {"enabled": ["false"]}  # created, as an incomplete instance is disabled
    assert offline_host.props("svc:/system/vm:web01", "general_ovr") == {"enabled": ["false"]}
    adm(offline_host, "enable", "web01")
    assert offline_host.props("svc:/system/vm:web01", "general") == {"enabled": ["true"]}
    assert offline_host.props("svc:/system/vm:web01", "general_ovr") == {}
    node = repository.entity(offline_host.repo.read(), parse("svc:/system/vm:web01"))
    assert node is not None
    assert node["pgs"]["general_ovr"]["nonpersistent"] is True
    assert node["pgs"]["general"]["nonpersistent"] is False


def test_disable_c_records_the_comment(offline_host: SmfHost) -> None:
    assert adm(offline_host, "disable", "-c", "OPS-1000", "web01")[0] == 0
    assert offline_host.props("svc:/system/vm:web01", "general_ovr")["comment"] == ["OPS-1000"]


def test_actions_are_request_times_in_restarter_actions(offline_host: SmfHost) -> None:
    for sub in (["refresh"], ["restart"], ["mark", "maintenance"], ["mark", "-I", "maintenance"],
                ["mark", "-t", "maintenance"], ["mark", "-It", "maintenance"]):  # fmt: skip
        assert adm(offline_host, *sub, "web01")[0] == 0
    actions = offline_host.props("svc:/system/vm:web01", "restarter_actions")
    for name in ("refresh", "restart", "maint_on", "maint_on_immediate", "maint_on_temporary",
                 "maint_on_immtemp"):  # fmt: skip
        assert int(actions[name][0]) > 0, name
    assert actions["auxiliary_tty"] == ["false"]


def test_restart_d_asks_for_a_dump_first(offline_host: SmfHost) -> None:
    adm(offline_host, "restart", "-d", "web01")
    actions = offline_host.props("svc:/system/vm:web01", "restarter_actions")
    assert int(actions["do_dump"][0]) <= int(actions["restart"][0])


def test_mark_degraded_needs_an_online_instance(offline_host: SmfHost) -> None:
    assert adm(offline_host, "mark", "degraded", "web01")[0] == 0
    assert "degraded" in offline_host.props("svc:/system/vm:web01", "restarter_actions")
    with offline_host.repo.edit() as doc:
        node = repository.entity(doc, parse("svc:/system/vm:db01"))
        assert node is not None
        node["pgs"]["restarter"]["props"]["state"]["values"] = ["offline"]
    code, _, err = adm(offline_host, "mark", "degraded", "db01")
    assert (code, err) == (1, 'svcadm: Instance "svc:/system/vm:db01" is not online.\n')


def test_mark_t_degraded_is_a_usage_error(offline_host: SmfHost) -> None:
    code, _, err = adm(offline_host, "mark", "-t", "degraded", "web01")
    assert (code, err) == (2, "svcadm: -t may not be used with degraded.\n")


def test_clear_of_an_instance_that_is_not_in_maintenance_fails(offline_host: SmfHost) -> None:
    code, _, err = adm(offline_host, "clear", "web01")
    assert code == 1
    assert err == (
        'svcadm: Instance "svc:/system/vm:web01" is not in a maintenance or degraded state.\n'
    )


def test_verbose_says_what_it_did(offline_host: SmfHost) -> None:
    assert adm(offline_host, "-v", "enable", "-t", "web01") == (
        0, "svc:/system/vm:web01 temporarily enabled.\n", ""
    )  # fmt: skip
    assert adm(offline_host, "-v", "refresh", "web01") == (
        0, "Action refresh set for svc:/system/vm:web01.\n", ""
    )  # fmt: skip


def test_S_selects_the_instances_in_a_state(offline_host: SmfHost) -> None:
    with offline_host.repo.edit() as doc:
        node = repository.entity(doc, parse("svc:/system/vm:db01"))
        assert node is not None
        node["pgs"]["restarter"]["props"]["state"]["values"] = ["maintenance"]
    assert adm(offline_host, "-S", "maintenance", "clear")[0] == 0
    assert "maint_off" in offline_host.props("svc:/system/vm:db01", "restarter_actions")
    assert (
        "restarter_actions"
        not in repository.entity(  # type: ignore[index]
            offline_host.repo.read(), parse("svc:/system/vm:web01")
        )["pgs"]
    )
    assert adm(offline_host, "-S", "online", "clear", "web01")[0] == 2  # no operands with -S


def test_no_such_instance_is_reported_for_a_full_fmri(offline_host: SmfHost) -> None:
    code, _, err = adm(offline_host, "enable", "svc:/system/vm:nope")
    assert (code, err) == (1, "svcadm: Pattern 'svc:/system/vm:nope' doesn't match any instances\n")


class RepositoryWrites:
    """Counts the repository's writes, each an atomic rename onto
    repository.json, with inotify (IN_MOVED_TO on the smf directory)."""

    IN_MOVED_TO, IN_NONBLOCK = 0x80, 0o4000

    def __init__(self, host: SmfHost) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(self.IN_NONBLOCK)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        wd = self.libc.inotify_add_watch(self.fd, str(host.repo.dir).encode(), self.IN_MOVED_TO)
        assert wd >= 0, os.strerror(ctypes.get_errno())

    def count(self) -> int:
        """The writes since the last count."""
        n = 0
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return n
            at = 0
            while at < len(data):
                _wd, _mask, _cookie, size = struct.unpack_from("iIII", data, at)
                name = data[at + 16 : at + 16 + size].rstrip(b"\0")
                n += name == b"repository.json"
                at += 16 + size

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def writes(offline_host: SmfHost) -> Iterator[RepositoryWrites]:
    w = RepositoryWrites(offline_host)
    yield w
    w.close()


VMS = ("svc:/system/vm:web01", "svc:/system/vm:db01", "svc:/site/single:default")


def test_enable_of_many_instances_writes_the_repository_once(
    offline_host: SmfHost, writes: RepositoryWrites
) -> None:
    assert adm(offline_host, "enable", "-t", *VMS) == (0, "", "")
    assert writes.count() == 1
    doc = offline_host.repo.read()
    assert all(repository.enabled(doc, parse(f)) for f in VMS)
    assert adm(offline_host, "disable", "-c", "OPS-1", *VMS) == (0, "", "")
    assert writes.count() == 1
    doc = offline_host.repo.read()
    assert not any(repository.enabled(doc, parse(f)) for f in VMS)
    for f in VMS:
        assert offline_host.props(f, "general_ovr")["comment"] == ["OPS-1"]


def test_enable_and_disable_of_many_say_one_line_for_each_in_order(
    offline_host: SmfHost,
) -> None:
    assert adm(offline_host, "-v", "enable", "-t", *VMS) == (
        0, "".join(f"{f} temporarily enabled.\n" for f in VMS), ""
    )  # fmt: skip
    assert adm(offline_host, "-v", "disable", *reversed(VMS)) == (
        0, "".join(f"{f} disabled.\n" for f in reversed(VMS)), ""
    )  # fmt: skip


def test_an_operand_that_matches_nothing_among_several_fails_but_the_others_are_done(
    offline_host: SmfHost, writes: RepositoryWrites
) -> None:
    # scf_walk_fmri reports the operand and still calls back for the others.
    web, db = "svc:/system/vm:web01", "svc:/system/vm:db01"
    code, out, err = adm(offline_host, "-v", "enable", web, "svc:/system/vm:nope", db)
    assert code == 1
    assert err == "svcadm: Pattern 'svc:/system/vm:nope' doesn't match any instances\n"
    assert out == f"{web} enabled.\n{db} enabled.\n"
    assert writes.count() == 1
    doc = offline_host.repo.read()
    assert repository.enabled(doc, parse(web)) and repository.enabled(doc, parse(db))
    code, out, err = adm(offline_host, "-v", "disable", "-t", "nothing*", web, db)
    assert code == 1
    assert err == "svcadm: Pattern 'svc:/nothing*' doesn't match any instances\n"
    assert out == f"{web} temporarily disabled.\n{db} temporarily disabled.\n"
    doc = offline_host.repo.read()
    assert not repository.enabled(doc, parse(web)) and not repository.enabled(doc, parse(db))


def test_svcadm_without_a_restarter_cannot_wait(offline_host: SmfHost) -> None:
    with offline_host.repo.edit() as doc:
        node = repository.entity(doc, parse("svc:/system/vm:web01"))
        assert node is not None
        node["pgs"]["restarter"]["props"]["state"]["values"] = ["disabled"]
    code, _, err = adm(offline_host, "enable", "-s", "web01")
    assert code == 4
    assert err == 'svcadm: Instance "svc:/system/vm:web01" has unsatisfied dependencies.\n'


# --- with the restarter: -s ----------------------------------------------------------------


def test_enable_s_waits_until_online(smf_host: SmfHost) -> None:
    go = smf_host.state / "go"
    slow = smf_host.script("slow.sh", f"sleep 0.5; touch {go}; sleep 600 &")
    smf_host.add(A, start=str(slow), enabled=False)
    smf_host.wait_state(A, "disabled")
    smf_host.svcadm("enable", "-s", A)
    assert go.exists()
    assert smf_host.state_of(A) == "online"


def test_enable_s_waits_for_the_others_when_an_operand_matches_nothing(
    smf_host: SmfHost,
) -> None:
    # svcadm.c: the walk's error does not stop -s; the exit status is 1 after it.
    b = "svc:/test/b:default"
    for f in (A, b):
        smf_host.add(f, start="sleep 0.5", duration="transient", enabled=False)
        smf_host.wait_state(f, "disabled")
    proc = smf_host.svcadm("enable", "-st", A, "svc:/test/nope:default", b, check=False)
    assert proc.returncode == 1
    assert proc.stderr == "svcadm: Pattern 'svc:/test/nope:default' doesn't match any instances\n"
    assert smf_host.state_of(A) == "online" and smf_host.state_of(b) == "online"


def test_enable_s_exits_3_when_the_instance_lands_in_maintenance(smf_host: SmfHost) -> None:
    smf_host.add(A, start=str(smf_host.script("bad.sh", "exit 96")), enabled=False)
    smf_host.wait_state(A, "disabled")
    proc = smf_host.svcadm("enable", "-s", A, check=False)
    assert proc.returncode == 3
    assert proc.stderr == f'svcadm: Instance "{A}" is in maintenance state.\n'


def test_enable_s_exits_3_at_once_for_a_hung_start_after_its_timeouts(smf_host: SmfHost) -> None:
    smf_host.add(A, start="sleep 600", timeout=1, enabled=False)
    smf_host.wait_state(A, "disabled")
    proc = smf_host.svcadm("enable", "-s", A, check=False)
    assert proc.returncode == 3


def test_enable_s_exits_4_for_unsatisfied_dependencies(smf_host: SmfHost) -> None:
    smf_host.add("svc:/test/dep:default", start=":true", duration="transient", enabled=False)
    smf_host.add(A, start=":true", duration="transient", enabled=False,
                 deps=(Dep("dep", ("svc:/test/dep:default",)),))  # fmt: skip
    smf_host.wait_state(A, "disabled")
    proc = smf_host.svcadm("enable", "-s", A, check=False)
    assert proc.returncode == 4
    assert proc.stderr == f'svcadm: Instance "{A}" has unsatisfied dependencies.\n'


def test_enable_r_enables_the_dependencies_too(smf_host: SmfHost) -> None:
    smf_host.add("svc:/test/dep:default", start=":true", duration="transient", enabled=False)
    smf_host.add(A, start=":true", duration="transient", enabled=False,
                 deps=(Dep("dep", ("svc:/test/dep:default",)),))  # fmt: skip
    smf_host.wait_state(A, "disabled")
    smf_host.svcadm("enable", "-rs", A)
    assert smf_host.state_of(A) == "online"
    assert smf_host.state_of("svc:/test/dep:default") == "online"


def test_disable_s_waits_until_disabled(smf_host: SmfHost) -> None:
    stop = smf_host.script("stop.sh", "sleep 0.5")
    smf_host.add(A, start=":true", stop=str(stop), duration="transient")
    smf_host.wait_state(A, "online")
    smf_host.svcadm("disable", "-s", A)
    assert smf_host.state_of(A) == "disabled"


def test_svcadm_from_a_method_names_its_service(smf_host: SmfHost) -> None:
    # A guest that powers itself off: the method disables its own instance.
    script = smf_host.script("self.sh", 'svcadm disable -t "$SMF_FMRI"')
    smf_host.add(A, start=":true", refresh=str(script), stop=":true", duration="transient")
    smf_host.wait_state(A, "online")
    smf_host.svcadm("refresh", A)
    smf_host.wait_state(A, "disabled")
    actions = smf_host.props(A, "restarter_actions")
    assert actions["auxiliary_fmri"] == [A]
