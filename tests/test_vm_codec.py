"""vm.json: strict loading with JSON paths, writing back, set KEY=VALUE, the schema."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vmbundle.vm import codec
from vmbundle.vm.codec import ConfigProblems
from vmbundle.vm.fields import Invalid
from vmbundle.vm.model import VmConfig

UUID = "0b6f1d2e-3c4a-4b5c-8d6e-7f8091a2b3c4"


def minimal(**extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema_version": 1,
        "name": "web01",
        "uuid": UUID,
        "ram": "2G",
        "vcpus": 2,
    }
    doc.update(extra)
    return doc


def problems_of(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigProblems) as info:
        codec.structure(doc)
    return [p.line("web01") for p in info.value.problems]


def test_minimal_config_gets_the_documented_defaults() -> None:
    cfg = codec.structure(minimal())
    assert cfg.ram == 2 << 30
    assert (cfg.machine, cfg.cpu, cfg.stop_timeout) == ("pc", "qemu64", 120)
    assert (cfg.on_poweroff, cfg.on_reboot, cfg.on_crash) == ("disable", "restart", "restart")
    assert cfg.vnc.enabled and cfg.vnc.password is None
    assert cfg.disks == () and cfg.nics == ()


def test_errors_carry_the_json_path_of_the_bad_value() -> None:
    doc = minimal(
        disks=[
            {"id": "disk0", "file": "a.qcow2", "size": "20G"},
            {"id": "disk1", "file": "b.qcow2", "size": "big"},
        ]
    )
    assert problems_of(doc) == ['web01: disks[1].size: must be a size like 20G, got "big"']


def test_every_problem_is_reported_not_only_the_first() -> None:
    doc = minimal(vcpus="2", ram="lots", machine="vax")
    lines = problems_of(doc)
    assert len(lines) == 3
    assert any(line.startswith("web01: vcpus: must be a whole number") for line in lines)


def test_unknown_key_suggests_the_near_one() -> None:
    assert problems_of(minimal(vcpu=2)) == ["web01: vcpu: unknown key; did you mean 'vcpus'?"]
    lines = problems_of(minimal(nics=[{"id": "net0", "modle": "virtio"}]))
    assert lines == ["web01: nics[0].modle: unknown key; did you mean 'model'?"]


def test_types_are_strict() -> None:
    assert problems_of(minimal(vcpus=True)) == [
        "web01: vcpus: must be a whole number from 1 to 255, got true"
    ]
    assert problems_of(minimal(autostart="yes")) == [
        'web01: autostart: must be true or false, got "yes"'
    ]
    assert problems_of(minimal(ram=2048)) == ["web01: ram: must be a size like 20G, got 2048"]


def test_missing_required_key() -> None:
    doc = minimal()
    del doc["uuid"]
    assert problems_of(doc) == ["web01: uuid: is missing; add it"]


def test_duplicate_keys_and_non_objects_are_refused() -> None:
    with pytest.raises(ConfigProblems, match="appears twice"):
        codec.loads(b'{"name": "a", "name": "b"}')
    with pytest.raises(ConfigProblems, match="must hold a JSON object"):
        codec.loads(b"[1, 2]")
    with pytest.raises(ConfigProblems, match="not UTF-8"):
        codec.loads(b'{"name": "\xff"}')


def test_newer_schema_version_says_to_upgrade() -> None:
    assert problems_of(minimal(schema_version=2)) == [
        "web01: schema_version: this vmbundle reads version 1, the file is version 2; upgrade vmbundle"
    ]


def test_cross_field_rules() -> None:
    doc = minimal(
        disks=[
            {"id": "d0", "file": "a.qcow2", "size": "1G", "boot_index": 1},
            {"id": "d0", "file": "a.qcow2", "size": "1G", "boot_index": 1},
        ],
        nics=[{"id": "n0", "mac": "53:54:00:00:00:01", "backend": {"type": "tap"}}],
        boot_once="cd9",
    )
    lines = problems_of(doc)
    assert "web01: disks[1].id: 'd0' is used by another device; give each its own id" in lines
    assert "web01: disks[1].file: 'a.qcow2' is used by two disks" in lines
    assert "web01: disks[0].boot_index: 1 is used by another device; give each its own" in lines
    assert any("nics[0].mac: 53:54:00:00:00:01 is a multicast address" in line for line in lines)
    assert "web01: nics[0].backend.name: names the tap to use; set it" in lines
    assert any(
        line.startswith("web01: boot_once: 'cd9' is not a device of this guest") for line in lines
    )


def test_the_live_maximums_are_never_below_what_the_guest_starts_with() -> None:
    doc = minimal(vcpus=4, max_vcpus=2, ram="2G", max_ram="1G")
    assert problems_of(doc) == [
        "web01: max_vcpus: 2 is below vcpus (4); raise it, or set it to null",
        "web01: max_ram: 1G is below ram (2G); raise it, or set it to null",
    ]
    cfg = codec.structure(minimal(vcpus=2, max_vcpus=2, max_ram=None))
    assert (cfg.max_vcpus, cfg.max_ram) == (2, None)


def test_round_trip_writes_every_field_and_reads_back_equal() -> None:
    cfg = codec.structure(minimal(disks=[{"id": "disk0", "file": "disk0.qcow2", "size": "20G"}]))
    doc = json.loads(codec.dumps(cfg))
    assert doc["disks"][0] == {
        "id": "disk0",
        "file": "disk0.qcow2",
        "size": "20G",
        "format": "qcow2",
        "bus": "virtio",
        "cache": "writeback",
        "boot_index": None,
    }
    assert codec.loads(codec.dumps(cfg)) == cfg


def test_set_key_by_path_and_by_id() -> None:
    doc = codec.unstructure(
        codec.structure(minimal(disks=[{"id": "disk0", "file": "disk0.qcow2", "size": "20G"}]))
    )
    doc = codec.set_key(doc, "ram", "4G")
    doc = codec.set_key(doc, "disks.disk0.cache", "none")
    doc = codec.set_key(doc, "disks[0].boot_index", "1")
    doc = codec.set_key(doc, "vnc.password", "secret")
    doc = codec.set_key(doc, "autostart", "true")
    cfg = codec.structure(doc)
    assert cfg.ram == 4 << 30 and cfg.disks[0].cache == "none" and cfg.disks[0].boot_index == 1
    assert cfg.vnc.password == "secret" and cfg.autostart is True
    doc = codec.set_key(doc, "vnc.password", "null")
    assert codec.structure(doc).vnc.password is None


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("rma", "4G", "rma: unknown key; did you mean 'ram'?"),
        ("ram", "lots", 'ram: must be a size like 20G, got "lots"'),
        (
            "disks.disk9.cache",
            "none",
            "disks.disk9.cache: no entry with id 'disk9' in disks; ids: disk0",
        ),
        (
            "disks",
            "x",
            "disks: is a list; use the disk, iso or nic commands, or name one entry by its id",
        ),
        ("vnc", "x", "vnc: is a group of settings; set one of its keys instead"),
        ("vcpus", "two", 'vcpus: must be a whole number from 1 to 255, got "two"'),
    ],
)
def test_set_key_refuses_bad_edits(key: str, value: str, message: str) -> None:
    doc = codec.unstructure(
        codec.structure(minimal(disks=[{"id": "disk0", "file": "disk0.qcow2", "size": "20G"}]))
    )
    with pytest.raises(Invalid) as info:
        codec.set_key(doc, key, value)
    assert str(info.value) == message


def test_json_schema_describes_every_field() -> None:
    schema = codec.json_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"schema_version", "name", "uuid", "ram", "vcpus"}
    disk = schema["properties"]["disks"]["items"]
    assert disk["properties"]["bus"]["enum"] == ["virtio", "scsi", "sata", "ide"]
    assert all("description" in p for p in schema["properties"].values())


sizes = st.integers(1, 64).map(lambda n: f"{n}G")
disk = st.builds(
    lambda i, size, fmt, bus: {
        "id": f"disk{i}",
        "file": f"disk{i}.{fmt}",
        "size": size,
        "format": fmt,
        "bus": bus,
    },
    st.just(0),
    sizes,
    st.sampled_from(["qcow2", "raw"]),
    st.sampled_from(["virtio", "scsi", "sata", "ide"]),
)


@given(
    ram=st.integers(32, 65536).map(lambda m: f"{m}M"),
    vcpus=st.integers(1, 255),
    disks=st.lists(disk, max_size=1),
    description=st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=40),
)
def test_any_valid_config_round_trips(
    ram: str, vcpus: int, disks: list[dict[str, Any]], description: str
) -> None:
    cfg = codec.structure(minimal(ram=ram, vcpus=vcpus, disks=disks, description=description))
    assert isinstance(cfg, VmConfig)
    assert codec.loads(codec.dumps(cfg)) == cfg
