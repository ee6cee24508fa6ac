"""svccfg/svcs/svcprop against the real restarter: what an import starts, the
processes `svcs -p` lists, and a refresh posted by svccfg reaching svc.startd."""

from __future__ import annotations

import os
import re
import socket
import textwrap
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
