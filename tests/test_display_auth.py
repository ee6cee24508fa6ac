"""How a desktop display is protected (pure), and what that puts on QEMU's command line."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
from test_qemu_argv import ILLUMOS, after, facts, guest

from vmbundle.errors import ConfigError
from vmbundle.guest.display_auth import DisplayAuth, DisplayPolicy, decide, new_password
from vmbundle.qemu.argv import build_argv
from vmbundle.vm.model import Vnc

OFF = DisplayPolicy("0.0.0.0")


def test_loopback_is_as_before_with_or_without_a_password() -> None:
    assert decide(guest(), DisplayPolicy("127.0.0.1")) == DisplayAuth("loopback")
    with_pw = guest(vnc=Vnc(password="secret"))
    assert decide(with_pw, DisplayPolicy("::1")) == DisplayAuth("loopback", "guest")


def test_off_loopback_each_way_of_protection_and_the_refusal() -> None:
    assert decide(guest(vnc=Vnc(password="pw")), OFF) == DisplayAuth("password", "guest")
    assert decide(guest(), attrs.evolve(OFF, generate_passwords=True)) == DisplayAuth(
        "password", "generated"
    )
    # TLS always comes with a password: the guest's, or one made at start.
    assert decide(guest(), attrs.evolve(OFF, tls=True)) == DisplayAuth("tls", "generated")
    assert decide(guest(vnc=Vnc(password="pw")), attrs.evolve(OFF, tls=True)) == DisplayAuth(
        "tls", "guest"
    )
    assert decide(guest(), attrs.evolve(OFF, allow_unauthenticated=True)).kind == "unauthenticated"
    refused = decide(guest(), OFF)
    assert refused.kind == "refused" and refused.problem is not None
    assert refused.problem.startswith("the display would listen on 0.0.0.0, off loopback")


def test_the_argv_carries_the_protection_and_never_the_password() -> None:
    off = {"vnc_listen": "0.0.0.0"}
    tls = facts(
        display_policy=attrs.evolve(OFF, tls=True), tls_dir=Path("/etc/vmbundle/vnc-x509"), **off
    )
    argv = build_argv(guest(), tls)
    assert after(argv, "-vnc")[-1] == "0.0.0.0:7,id=display,tls-creds=vnctls,password-secret=vncpw"
    objects = after(argv, "-object")
    assert (
        "tls-creds-x509,id=vnctls,dir=/etc/vmbundle/vnc-x509,endpoint=server,verify-peer=off"
        in objects
    )
    assert f"secret,id=vncpw,file={tls.run.vnc_password},format=raw" in objects
    generated = facts(display_policy=attrs.evolve(OFF, generate_passwords=True), **off)
    assert after(build_argv(guest(), generated), "-vnc")[-1] == (
        "0.0.0.0:7,id=display,password-secret=vncpw"
    )
    with pytest.raises(ConfigError, match=r"web01: vnc: the display would listen on 0\.0\.0\.0"):
        build_argv(guest(), facts(display_policy=OFF, **off))
    # A generated password on the 0.14 fork: ",password", set over QMP after the start.
    fork = facts(ILLUMOS, display_policy=attrs.evolve(OFF, generate_passwords=True), **off)
    assert after(build_argv(guest(), fork), "-vnc") == ["0.0.0.0:7,password"]
    with pytest.raises(ConfigError, match=r"display\.tls: TLS on the VNC display needs a QEMU"):
        build_argv(guest(), facts(ILLUMOS, display_policy=attrs.evolve(OFF, tls=True), **off))


def test_a_made_password_is_eight_unambiguous_characters() -> None:
    made = {new_password() for _ in range(50)}
    assert len(made) == 50
    assert all(len(p) == 8 and not set(p) & set("0O1lI") for p in made)
