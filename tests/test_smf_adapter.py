"""The SMF adapter's value quoting and output parsing, and the instance's
config/bundle check (pure; the command lines run end to end in
test_smf_guests.py and test_cli_service.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vmbundle.adapters import smf
from vmbundle.errors import ConfigError
from vmbundle.service import instance

FMRI = "svc:/system/vmbundle/vm:web01"


@pytest.mark.parametrize(
    ("printed", "value"),
    [
        ('""', ""),
        ("/tank/vms/web01", "/tank/vms/web01"),
        (r"/tank/my\ vms/web01", "/tank/my vms/web01"),
        (r"a\\b\;c\'d", "a\\b;c'd"),
    ],
)
def test_svcprop_values_are_unescaped(printed: str, value: str) -> None:
    assert smf.unescape_value(printed) == value


@given(st.text(alphabet=st.characters(blacklist_characters="\n\x00"), max_size=40))
def test_svccfg_quoting_round_trips_through_a_double_quoted_string(value: str) -> None:
    quoted = smf.quote_value(value)
    assert quoted.startswith('"') and quoted.endswith('"')
    inner = quoted[1:-1]
    out, i = [], 0
    while i < len(inner):
        if inner[i] == "\\":
            i += 1
        else:
            assert inner[i] != '"', "an unescaped quote would end the string early"
        out.append(inner[i])
        i += 1
    assert "".join(out) == value


def test_a_newline_cannot_cross_to_svccfg() -> None:
    with pytest.raises(ValueError):
        smf.quote_value("a\nb")


def test_the_reason_of_svcs_x_joins_its_continuation_lines() -> None:
    text = (
        "svc:/system/vmbundle/vm:web01 (vmbundle guest)\n"
        " State: maintenance since Mon Nov 23 22:05:54 2026\n"
        "Reason: Start method failed repeatedly, last exited with status 1.\n"
        "   See: http://illumos.org/msg/SMF-8000-KS\n"
        "   See: /var/svc/log/system-vmbundle-vm:web01.log\n"
        "Impact: This service is not running.\n"
    )
    assert smf.reason(text) == "Start method failed repeatedly, last exited with status 1."
    assert smf.reason("") is None


def test_instance_and_fmri_names() -> None:
    assert smf.instance_fmri("web01") == FMRI
    assert smf.instance_name(FMRI) == "web01"


def bundle_dir(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    (path / "vm.json").write_text("{}")
    return path


def test_config_bundle_naming_the_guest_s_bundle_is_taken(tmp_path: Path) -> None:
    path = bundle_dir(tmp_path, "web01")
    assert instance.bundle_path(FMRI, "web01", str(path)) == path


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            None,
            "web01: svc:/system/vmbundle/vm:web01 has no config/bundle property; set it with svccfg -s",
        ),
        ("", "has no config/bundle property"),
        ("vms/web01", "config/bundle must be an absolute path without .., got 'vms/web01'"),
        ("{tmp}/x/../web01", "must be an absolute path without .."),
        ("{tmp}/nothing", "holds no vm.json"),
        ("{tmp}/db01", "the bundle of guest 'db01'; point it at a bundle named 'web01'"),
    ],
)
def test_a_bad_config_bundle_is_a_configuration_error(
    tmp_path: Path, value: str | None, expected: str
) -> None:
    bundle_dir(tmp_path, "db01")
    with pytest.raises(ConfigError) as err:
        instance.bundle_path(FMRI, "web01", value.format(tmp=tmp_path) if value else value)
    assert expected in str(err.value)
    assert err.value.exit_code == 96
    assert "\n" not in str(err.value)


METHOD = str(Path(sys.executable).parent / "vmbundle-method")


def test_the_method_outside_smf_exits_99(tmp_path: Path) -> None:
    proc = subprocess.run(
        [METHOD, "start"], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}
    )
    assert proc.returncode == 99
    assert proc.stderr == "vmbundle-method start: SMF_FMRI is not set; the methods run under SMF\n"


def test_the_method_with_a_bad_argument_exits_96_as_a_bad_manifest() -> None:
    proc = subprocess.run(
        [METHOD, "launch"], capture_output=True, text=True, env={"SMF_FMRI": FMRI}
    )
    assert proc.returncode == 96
    assert proc.stderr.startswith("usage: vmbundle-method start|stop|refresh")


@pytest.mark.parametrize(
    ("reply", "state"),
    [
        ({"status": "running", "running": True, "singlestep": False}, "running"),
        ({"status": "shutdown", "running": False, "singlestep": False}, "shutdown"),
        ({"running": True, "singlestep": False}, "running"),  # the illumos KVM fork (0.14)
        ({"running": False, "singlestep": False}, "stopped"),
        ({}, "unknown"),
    ],
)
def test_therun_state_of_both_query_status_replies(reply: dict[str, object], state: str) -> None:
    from vmbundle.qemu.qmp import run_state_of

    assert run_state_of(reply) == state
