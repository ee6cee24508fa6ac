"""Where the web console's proxy connects for each QEMU profile (controller.vnc_target)."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from vmbundle.controller.vnc_target import (
    ONE_TIME_LENGTH,
    VncTarget,
    one_time_password,
    password_commands,
    vnc_target,
)
from vmbundle.errors import VmbundleError
from vmbundle.guest.boot_record import BootRecord
from vmbundle.guest.rundir import RunPaths
from vmbundle.memory.policy import MiB
from vmbundle.vm.model import VmConfig, Vnc

RUN = RunPaths.for_guest(Path("/var/run/vmbundle"), "web01")
CONFIG = VmConfig(
    schema_version=1,
    name="web01",
    uuid="0f8fad5b-d9cb-469f-a165-70867728950e",
    ram=128 * MiB,
    vcpus=1,
)


def record(profile: str, display: int | None = 3, config: VmConfig = CONFIG) -> BootRecord:
    return BootRecord("/tank/vms/web01", config, profile, 4242, 0.0, display=display)


def test_modern_qemu_is_reached_on_its_private_unix_socket() -> None:
    assert vnc_target("web01", record("modern"), RUN, "0.0.0.0") == VncTarget(unix=RUN.vnc_socket)


@pytest.mark.parametrize(
    ("listen", "host"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("0.0.0.0", "127.0.0.1"),
        ("::", "::1"),
        ("192.0.2.7", "192.0.2.7"),
    ],
)
def test_the_illumos_fork_is_reached_on_its_display_with_a_one_time_password(
    listen: str, host: str
) -> None:
    target = vnc_target("web01", record("illumos-kvm"), RUN, listen)
    assert target == VncTarget(host=host, port=5903, one_time_password=True)


def test_a_fork_guest_with_its_own_password_keeps_it() -> None:
    own = attrs.evolve(CONFIG, vnc=Vnc(password="s3cret"))
    target = vnc_target("web01", record("illumos-kvm", config=own), RUN, "127.0.0.1")
    assert target.one_time_password is False


def test_a_fork_guest_without_a_display_has_no_console() -> None:
    with pytest.raises(VmbundleError, match="web01: has no VNC display"):
        vnc_target("web01", record("illumos-kvm", display=None), RUN, "127.0.0.1")


def test_the_one_time_password_is_fresh_and_expires_in_30_seconds() -> None:
    a, b = one_time_password(), one_time_password()
    assert len(a) == ONE_TIME_LENGTH and a != b
    assert password_commands(a) == [
        ("set_password", {"protocol": "vnc", "password": a}),
        ("expire_password", {"protocol": "vnc", "time": "+30"}),
    ]
