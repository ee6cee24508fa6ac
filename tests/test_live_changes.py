"""What a refresh changes live and what it leaves pending (pure)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from vmbundle.guest.live_changes import MediaChange, plan
from vmbundle.vm import codec
from vmbundle.vm.model import VmConfig


def vm(**changes: Any) -> VmConfig:
    doc: dict[str, Any] = {
        "schema_version": 1,
        "name": "web01",
        "uuid": "0f2a6d3e-5b7c-4e8f-9a1b-2c3d4e5f6a7b",
        "ram": "1G",
        "vcpus": 2,
        "disks": [{"id": "disk0", "file": "disk0.qcow2", "size": "20G"}],
        "cdroms": [{"id": "cd0", "iso": None}, {"id": "cd1", "iso": "a.iso"}],
        "nics": [{"id": "net0", "mac": "52:54:00:12:34:56", "backend": {"type": "user"}}],
    }
    doc.update(changes)
    return codec.structure(doc)


def test_nothing_changed_plans_nothing() -> None:
    p = plan(vm(), vm())
    assert p.media == () and p.pending == ()
    assert p.applied == vm()


def test_an_iso_put_in_swapped_or_taken_out_changes_live() -> None:
    wanted = vm(cdroms=[{"id": "cd0", "iso": "/isos/x.iso"}, {"id": "cd1", "iso": None}])
    p = plan(vm(), wanted)
    assert p.media == (MediaChange("cd0", "/isos/x.iso"), MediaChange("cd1", None))
    assert p.pending == ()
    assert p.applied == wanted


def test_ram_and_vcpus_wait_for_the_next_start() -> None:
    p = plan(vm(), vm(ram="2G", vcpus=4))
    assert p.media == ()
    assert p.pending == (
        "ram: 1G now, 2G from the next start",
        "vcpus: 2 now, 4 from the next start",
    )
    assert p.applied == vm()


def test_policies_apply_at_once_without_a_restart() -> None:
    wanted = vm(stop_timeout=5, on_poweroff="restart", autostart=True, description="db")
    p = plan(vm(), wanted)
    assert p.pending == ()
    assert p.applied == wanted


def test_a_grown_disk_is_already_live_but_a_new_cache_mode_is_pending() -> None:
    wanted = vm(disks=[{"id": "disk0", "file": "disk0.qcow2", "size": "40G", "cache": "none"}])
    p = plan(vm(), wanted)
    assert p.pending == ("disks.disk0.cache: writeback now, none from the next start",)
    assert p.applied.disks[0].size == 40 << 30


def test_a_new_drive_or_nic_is_pending_and_an_iso_in_it_is_not_inserted() -> None:
    wanted = vm(
        cdroms=[{"id": "cd0"}, {"id": "cd1", "iso": "a.iso"}, {"id": "cd2", "iso": "b.iso"}],
        nics=[],
    )
    p = plan(vm(), wanted)
    assert p.media == ()
    assert p.pending == (
        "cdroms.cd2: added in vm.json, from the next start",
        "nics.net0: removed in vm.json, present until the next start",
    )


def test_a_drive_moved_to_another_bus_keeps_its_medium_until_the_restart() -> None:
    wanted = vm(
        cdroms=[{"id": "cd0", "iso": "x.iso", "bus": "sata"}, {"id": "cd1", "iso": "a.iso"}]
    )
    p = plan(vm(), wanted)
    assert p.media == ()
    assert set(p.pending) == {
        "cdroms.cd0.bus: ide now, sata from the next start",
        "cdroms.cd0.iso: none now, x.iso from the next start",
    }


@given(
    ram=st.sampled_from(["1G", "2G"]),
    isos=st.lists(st.sampled_from([None, "a.iso", "b.iso"]), min_size=2, max_size=2),
    stop_timeout=st.integers(1, 600),
)
def test_applying_the_plan_then_planning_again_leaves_only_the_pending(
    ram: str, isos: list[str | None], stop_timeout: int
) -> None:
    wanted = vm(
        ram=ram,
        stop_timeout=stop_timeout,
        cdroms=[{"id": "cd0", "iso": isos[0]}, {"id": "cd1", "iso": isos[1]}],
    )
    first = plan(vm(), wanted)
    second = plan(first.applied, wanted)
    assert second.media == ()
    assert second.pending == first.pending
    assert (first.pending == ()) == (ram == "1G")


def test_each_profile_gets_its_own_media_commands() -> None:
    from pathlib import Path

    from vmbundle.guest.refresh import media_command

    iso = Path("/isos/x.iso")
    assert media_command("modern", MediaChange("cd0", "x.iso"), iso) == (
        "blockdev-change-medium",
        {"id": "cd0", "filename": "/isos/x.iso", "format": "raw", "read-only-mode": "read-only"},
    )
    assert media_command("modern", MediaChange("cd0", None), None) == (
        "eject",
        {"id": "cd0", "force": True},
    )
    # QEMU 0.14 (the illumos KVM fork) knows drives only by their -drive id
    assert media_command("illumos-kvm", MediaChange("cd0", "x.iso"), iso) == (
        "change",
        {"device": "drive-cd0", "target": "/isos/x.iso"},
    )
    assert media_command("illumos-kvm", MediaChange("cd0", None), None) == (
        "eject",
        {"device": "drive-cd0", "force": True},
    )
