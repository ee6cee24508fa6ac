"""What a refresh changes live and what it leaves pending (pure)."""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st

from vmbundle.guest import live_changes
from vmbundle.guest.live_changes import (
    FORK_REASON,
    OLD_BOOT_REASON,
    AddCpus,
    MediaChange,
    Room,
    SetRam,
    plan,
)
from vmbundle.qemu.capacity import Capacity
from vmbundle.vm import codec
from vmbundle.vm.model import GiB, MiB, VmConfig

# A modern boot of vm(): 1G and 2 vCPUs, room for 4 vCPUs and 2G in 8 slots.
ROOM = Room("modern", Capacity(max_vcpus=4, max_ram=2 * GiB, slots=8, balloon=True), 1 * GiB)


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


def test_a_boot_without_room_changes_only_media() -> None:
    p = plan(vm(), vm(ram="2G", vcpus=4))
    assert p.media == () and p.steps == ()
    assert p.pending == (
        f"ram: 1G now, 2G from the next start; {OLD_BOOT_REASON}",
        f"vcpus: 2 now, 4 from the next start; {OLD_BOOT_REASON}",
    )
    assert p.applied == vm()


def test_vcpus_go_up_live_to_the_boots_maximum_and_down_only_at_the_next_start() -> None:
    p = plan(vm(), vm(vcpus=4), ROOM)
    assert p.steps == (AddCpus(2, 4),) and p.pending == ()
    assert p.applied.vcpus == 4
    assert plan(vm(), vm(vcpus=1), ROOM).pending == (
        "vcpus: 2 now, 1 from the next start; a vCPU cannot be taken out of a running guest",
    )
    assert plan(vm(), vm(vcpus=5), ROOM).pending == (
        "vcpus: 2 now, 5 from the next start; this boot can have at most 4 (its max_vcpus); "
        "raise max_vcpus, then restart",
    )


def test_ram_grows_by_a_dimm_of_whole_steps_and_the_balloon_takes_the_rest() -> None:
    assert plan(vm(), vm(ram="1280M"), ROOM).steps == (SetRam(1 * GiB, 1280 * MiB, 256 * MiB),)
    # 100M more needs one 128M step; the balloon holds the guest at 1124M.
    assert plan(vm(), vm(ram="1124M"), ROOM).steps == (SetRam(1 * GiB, 1124 * MiB, 128 * MiB),)
    # Below what is plugged (after an earlier lowering): the balloon alone.
    lowered = vm(ram="512M")
    assert plan(lowered, vm(), ROOM).steps == (SetRam(512 * MiB, 1 * GiB, 0),)
    assert plan(vm(), lowered, ROOM).steps == (SetRam(1 * GiB, 512 * MiB, 0),)


def test_ram_beyond_the_boots_maximum_or_slots_waits_with_the_reason() -> None:
    assert plan(vm(), vm(ram="3G"), ROOM).pending == (
        "ram: 1G now, 3G from the next start; this boot can grow to 2G (its max_ram) in steps "
        "of 128M; raise max_ram, then restart",
    )
    full = attrs.evolve(ROOM, dimms=8)
    assert plan(vm(), vm(ram="1280M"), full).pending == (
        "ram: 1G now, 1280M from the next start; this boot's 8 memory slots are all used; "
        "restart to take the memory into the boot's own",
    )


def test_disks_and_nics_come_and_go_where_a_bus_takes_hotplug() -> None:
    wanted = vm(
        disks=[
            {"id": "disk1", "file": "disk1.qcow2", "size": "1G"},
            {"id": "disk2", "file": "disk2.qcow2", "size": "1G", "bus": "sata"},
            {"id": "disk3", "file": "disk3.qcow2", "size": "1G", "bus": "scsi"},
        ],
        nics=[
            {"id": "net1", "mac": "52:54:00:12:34:57", "backend": {"type": "user"}},
            {"id": "net2", "backend": {"type": "user"}},
        ],
    )
    p = plan(vm(), wanted, ROOM)
    kinds = [type(s).__name__ for s in p.steps]
    # Removals first: they free the PCI places and the memory that additions take.
    assert kinds == ["RemoveDisk", "RemoveNic", "AddDisk", "AddNic"]
    assert [live_changes.path_of(s) for s in p.steps] == [
        "disks.disk0",
        "nics.net0",
        "disks.disk1",
        "nics.net1",
    ]
    assert p.pending == (
        "disks.disk2: added in vm.json, from the next start; an SATA disk cannot be added to a "
        "running guest; use virtio or scsi",
        "disks.disk3: added in vm.json, from the next start; this boot has no SCSI controller "
        "to add it to; use virtio, or restart",
        "nics.net2: added in vm.json, from the next start; it has no MAC yet; give it one "
        "(mac=...)",
    )


def test_the_illumos_fork_changes_media_and_nothing_else_live() -> None:
    fork = Room("illumos-kvm", None, 1 * GiB)
    wanted = vm(vcpus=4, nics=[], cdroms=[{"id": "cd0", "iso": "x.iso"}, {"id": "cd1"}])
    p = plan(vm(), wanted, fork)
    assert p.steps == ()
    assert p.media == (MediaChange("cd0", "x.iso"), MediaChange("cd1", None))
    assert p.pending == (
        f"vcpus: 2 now, 4 from the next start; {FORK_REASON}",
        f"nics.net0: removed in vm.json, present until the next start; {FORK_REASON}",
    )


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
        f"nics.net0: removed in vm.json, present until the next start; {OLD_BOOT_REASON}",
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
    ram=st.sampled_from(["512M", "1G", "1124M", "2G", "3G"]),
    vcpus=st.integers(1, 6),
    isos=st.lists(st.sampled_from([None, "a.iso", "b.iso"]), min_size=2, max_size=2),
    stop_timeout=st.integers(1, 600),
)
def test_applying_the_plan_then_planning_again_leaves_only_the_pending(
    ram: str, vcpus: int, isos: list[str | None], stop_timeout: int
) -> None:
    wanted = vm(
        ram=ram,
        vcpus=vcpus,
        stop_timeout=stop_timeout,
        cdroms=[{"id": "cd0", "iso": isos[0]}, {"id": "cd1", "iso": isos[1]}],
    )
    first = plan(vm(), wanted, ROOM)
    plugged = sum(s.dimm for s in first.steps if isinstance(s, SetRam))
    after = attrs.evolve(
        ROOM, plugged_ram=ROOM.plugged_ram + plugged, dimms=ROOM.dimms + bool(plugged)
    )
    second = plan(first.applied, wanted, after)
    assert second.media == () and second.steps == ()
    assert second.pending == first.pending
    # Only what the boot has no room for waits.
    assert (first.pending == ()) == (ram != "3G" and 2 <= vcpus <= 4)


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
