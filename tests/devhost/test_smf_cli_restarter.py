"""svccfg/svcs/svcprop against the real restarter: what an import starts, the
processes `svcs -p` lists, and a refresh posted by svccfg reaching svc.startd."""

from __future__ import annotations

import os
import re
import socket
import textwrap
import time
from pathlib import Path

from smf_support import SmfHost, smf_host
from smfcli_support import bundle

from devhost.smf import notify

FMRI = "svc:/site/sleeper:default"


def sleeper_manifest(host: SmfHost) -> str:
    start = host.script(
        "start.sh",
        """
        sleep 300 &
        exit 0
        """,
    )
    return bundle(
        textwrap.dedent(
            f"""
            <service name="site/sleeper" type="service" version="1">
              <create_default_instance enabled="true"/>
              <exec_method type="method" name="start" exec="{start}" timeout_seconds="30"/>
              <exec_method type="method" name="stop" exec=":kill" timeout_seconds="30"/>
              <property_group name="config" type="application">
                <propval name="size" type="count" value="1"/>
              </property_group>
            </service>
            """
        )
    )


def imported(host: SmfHost) -> None:
    path = host.state / "sleeper.xml"
    path.write_text(sleeper_manifest(host))
    host.run(str(host.bin / "svccfg"), "import", str(path))
    host.wait_state(FMRI, "online")


def test_imported_enabled_instance_is_brought_online(smf_host: SmfHost) -> None:
    imported(smf_host)
    out = smf_host.run(str(smf_host.bin / "svcs"), "-H", "-o", "state,fmri", FMRI).stdout
    assert out == f"online         {FMRI}\n"


def test_svcs_p_lists_the_processes_of_the_contract(smf_host: SmfHost) -> None:
    imported(smf_host)
    out = smf_host.run(str(smf_host.bin / "svcs"), "-H", "-p", FMRI).stdout
    lines = out.splitlines()
    assert lines[0].startswith("online ")
    assert lines[0].endswith(FMRI)
    # "\n               %-8s   %6ld %.*s": 15 blanks, start time, 3 blanks, pid, name.
    assert any(re.fullmatch(r" {15}[ \d:]{8} {3}[ \d]{6} sleep", line) for line in lines[1:]), out


def test_svcs_l_shows_the_contract_and_the_log_file(smf_host: SmfHost) -> None:
    imported(smf_host)
    out = smf_host.run(str(smf_host.bin / "svcs"), "-l", FMRI).stdout
    assert re.search(r"^contract_id  \d+ $", out, re.M), out
    logfile = re.search(r"^logfile      (.*)$", out, re.M)
    assert logfile is not None
    assert smf_host.run(str(smf_host.bin / "svcs"), "-L", FMRI).stdout == logfile[1] + "\n"


def test_svccfg_refresh_makes_the_restarter_reread_the_configuration(smf_host: SmfHost) -> None:
    imported(smf_host)
    svccfg, svcprop = str(smf_host.bin / "svccfg"), str(smf_host.bin / "svcprop")
    smf_host.run(svccfg, "-s", "site/sleeper", "setprop", "config/size", "=", "2")
    assert smf_host.run(svcprop, "-p", "config/size", FMRI).stdout == "1\n"
    smf_host.run(svccfg, "-s", FMRI, "refresh")
    assert smf_host.run(svcprop, "-p", "config/size", FMRI).stdout == "2\n"
    smf_host.wait_for(
        "the restarter to take the refresh",
        lambda: "refresh" not in smf_host.props(FMRI, "restarter_actions"),
    )
    smf_host.wait_state(FMRI, "online")


def _listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.sendto(b"!", str(path))
        except OSError:
            return False
    return True


def test_restarter_socket_is_under_the_state_dir_when_the_path_is_short(
    smf_host: SmfHost,
) -> None:
    sock = notify.socket_path(smf_host.state)
    assert sock == smf_host.state / "smf" / "startd.sock"
    assert _listening(sock)


def test_restarter_socket_moves_to_a_private_tmp_dir_when_the_state_path_is_long() -> None:
    with smf_host("long-" + "x" * 100) as host:
        natural = host.state / "smf" / "startd.sock"
        assert len(str(natural)) >= 108
        sock = notify.socket_path(host.state)
        assert len(str(sock)) < 108 and sock.parent != natural.parent
        st = os.lstat(sock.parent)
        assert (st.st_mode & 0o777, st.st_uid) == (0o700, os.getuid())
        assert _listening(sock)
        assert "cannot listen" not in (host.state / "smf" / "startd.log").read_text()
        # svcadm (the nudge) and the restarter agree: an enable is acted on.
        imported(host)
        host.svcadm("disable", FMRI)
        host.wait_state(FMRI, "disabled")
    assert not sock.exists() and not sock.parent.exists()


def test_the_start_methods_of_instances_enabled_together_run_at_once(smf_host: SmfHost) -> None:
    # svc.startd runs each instance's methods in a thread of its own (restarter.c):
    # eight start methods of 2 s each, enabled by one svcadm, overlap.
    instances = "\n".join(f'<instance name="vm{i}" enabled="false"/>' for i in range(8))
    xml = bundle(
        f"""
        <service name="site/storm" type="service" version="1">
          <exec_method type="method" name="start" exec="sleep 2" timeout_seconds="60"/>
          <exec_method type="method" name="stop" exec=":true" timeout_seconds="60"/>
          <property_group name="startd" type="framework">
            <propval name="duration" type="astring" value="transient"/>
          </property_group>
          {instances}
        </service>
        """
    )
    path = smf_host.state / "storm.xml"
    path.write_text(xml)
    smf_host.run(str(smf_host.bin / "svccfg"), "import", str(path))
    fmris = [f"svc:/site/storm:vm{i}" for i in range(8)]
    for fmri in fmris:
        smf_host.wait_state(fmri, "disabled")
    began = time.monotonic()
    smf_host.svcadm("enable", "-s", "-t", *fmris)
    took = time.monotonic() - began
    assert [smf_host.state_of(f) for f in fmris] == ["online"] * 8
    assert took < 8, f"8 start methods of 2 s took {took:.1f} s: one after another?"
