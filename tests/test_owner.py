"""The owner record's decisions (pure) and its file: who may start a guest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vmbundle.errors import SMF_EXIT_ERR_CONFIG
from vmbundle.vm import owner
from vmbundle.vm.owner import BadOwnerRecord, Host, IsReplica, OwnedElsewhere, Owner

HERE = Host("0a0b0c0d", "nas2")
THERE = Host("1a2b3c4d", "nas1")
T0, T1 = "2026-12-01T10:00:00Z", "2026-12-01T11:00:00Z"


def claim(current: Owner | None, *, promote: bool = False, take_over: bool = False) -> Owner:
    return owner.claim("web01", current, HERE, T1, promote=promote, take_over=take_over)


def test_a_guest_nobody_owns_is_claimed_at_generation_1() -> None:
    assert claim(None) == Owner(HERE, 1, T1, released=False)
    assert claim(None, promote=True) == Owner(HERE, 1, T1, released=True)


def test_this_hosts_own_claim_is_renewed_at_the_same_generation() -> None:
    crashed = Owner(HERE, 4, T0, released=False)  # a crash never released it
    assert claim(crashed) == Owner(HERE, 4, T1, released=False)
    assert claim(Owner(HERE, 4, T0, released=True)) == Owner(HERE, 4, T1, released=False)


def test_another_hosts_unreleased_claim_refuses_a_start_with_the_way_to_take_over() -> None:
    held = Owner(THERE, 3, T0, released=False)
    with pytest.raises(OwnedElsewhere) as refused:
        claim(held)
    assert refused.value.exit_code == SMF_EXIT_ERR_CONFIG == 96
    assert str(refused.value) == (
        "web01: owned by host nas1 (hostid 1a2b3c4d) since 2026-12-01T10:00:00Z, which has "
        "not released it (the guest may be running there); stop it there, or if that host "
        "is down for good, take it over: vmbundle start web01 --take-over"
    )
    with pytest.raises(OwnedElsewhere, match=r"vmbundle promote web01 --take-over$"):
        claim(held, promote=True)


def test_a_take_over_bumps_the_generation() -> None:
    held = Owner(THERE, 3, T0, released=False)
    assert claim(held, take_over=True) == Owner(HERE, 4, T1, released=False)
    assert claim(held, promote=True, take_over=True) == Owner(HERE, 4, T1, released=True)


def test_a_released_replica_starts_only_after_a_promote() -> None:
    released = Owner(THERE, 3, T0, released=True)
    with pytest.raises(IsReplica) as refused:
        claim(released)
    assert str(refused.value) == (
        "web01: a replica of a guest of host nas1 (hostid 1a2b3c4d), released there at "
        "2026-12-01T10:00:00Z; to make this host its home: vmbundle promote web01"
    )
    assert refused.value.exit_code == 96
    assert claim(released, promote=True) == Owner(HERE, 4, T1, released=True)


def test_a_stop_releases_only_this_hosts_claim() -> None:
    mine = Owner(HERE, 2, T0, released=False)
    assert owner.release(mine, HERE, T1) == Owner(HERE, 2, T1, released=True)
    assert owner.release(Owner(HERE, 2, T0, released=True), HERE, T1) is None
    # Taken over while this host was cut off: its stop must not free the new owner's claim.
    assert owner.release(Owner(THERE, 3, T0, released=False), HERE, T1) is None
    assert owner.release(None, HERE, T1) is None


def test_the_record_is_written_and_read_back(tmp_path: Path) -> None:
    record = Owner(THERE, 7, T0, released=False)
    owner.write(tmp_path, record)
    assert json.loads((tmp_path / "owner.json").read_text()) == {
        "version": 1,
        "hostid": "1a2b3c4d",
        "node": "nas1",
        "generation": 7,
        "time": T0,
        "released": False,
    }
    assert owner.read(tmp_path, "web01") == record
    assert owner.read(tmp_path / "none", "web01") is None


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{", "not JSON"),
        ('{"version": 2}', "version must be 1"),
        (
            '{"version": 1, "node": "a", "generation": 1, "time": "t", "released": true}',
            "hostid is missing",
        ),
        (
            '{"version": 1, "hostid": "; rm -rf /", "node": "a", "generation": 1, '
            '"time": "t", "released": true}',
            "hostid must be hex digits",
        ),
        (
            '{"version": 1, "hostid": "1a", "node": "a", "generation": 0, '
            '"time": "t", "released": true}',
            "generation must be a whole number from 1",
        ),
        (
            '{"version": 1, "hostid": "1a", "node": "a", "generation": 1, '
            '"time": "t", "released": "no"}',
            "released must be true or false",
        ),
    ],
)
def test_a_bad_record_is_one_line_that_says_how_to_replace_it(
    tmp_path: Path, text: str, why: str
) -> None:
    (tmp_path / "owner.json").write_text(text)
    with pytest.raises(BadOwnerRecord) as refused:
        owner.read(tmp_path, "web01")
    assert str(refused.value) == (
        f"web01: {tmp_path}/owner.json: not an owner record ({why}); if this host is the "
        "guest's home, write a new one: vmbundle promote web01 --take-over"
    )
    assert refused.value.exit_code == 96
