"""The owner record, `owner.json` in the bundle: which host runs (or last ran) the
guest, so that one guest never runs on two hosts that share or replicate its storage.

The start method claims it before QEMU starts and the stop method releases it. It
travels with every snapshot and `zfs send`, so a replica on a DR host knows whose
guest it is:

- no record, or this host's: the guest may start here;
- another host's, not released: it may be running there; a start refuses, and only
  a deliberate take-over (after a real disaster) claims it;
- another host's, released: a replica; `vmbundle promote` makes this host its home.

A new host's claim bumps the generation, so the history of hand-overs is visible.
The decisions are pure (`claim`, `release`); reading and writing are beside them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from vmbundle import locks
from vmbundle.adapters import hostid
from vmbundle.atomic import write_atomic
from vmbundle.errors import SMF_EXIT_ERR_CONFIG, VmbundleError, faults_of

OWNER_FILE = "owner.json"
VERSION = 1


@attrs.frozen
class Host:
    hostid: str
    node: str

    def __str__(self) -> str:
        return f"{self.node} (hostid {self.hostid})"


@attrs.frozen
class Owner:
    host: Host
    generation: int
    time: str  # when claimed or released, UTC, ISO 8601
    released: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "hostid": self.host.hostid,
            "node": self.host.node,
            "generation": self.generation,
            "time": self.time,
            "released": self.released,
        }


class OwnerRefused(VmbundleError):
    """The guest belongs to another host: starting it here could run it twice."""

    exit_code = SMF_EXIT_ERR_CONFIG


class OwnedElsewhere(OwnerRefused):
    """Another host claimed the guest and has not released it."""


class IsReplica(OwnerRefused):
    """Another host released the guest; this host holds a replica of it."""


class BadOwnerRecord(OwnerRefused):
    """owner.json cannot be read as an owner record."""


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def this_host() -> Host:
    return Host(hostid.host_id(), os.uname().nodename)


# --- the decisions ------------------------------------------------------------------


def claim(
    guest: str, current: Owner | None, me: Host, when: str, *, promote: bool, take_over: bool
) -> Owner:
    """The record once this host takes the guest: to run it (a start), or to hold it
    stopped as its new home (a promote, which may take a released replica).
    OwnerRefused when another host has it and take_over is not set."""
    if current is None:
        return Owner(me, 1, when, released=promote)
    if current.host.hostid == me.hostid:
        return Owner(me, current.generation, when, released=promote)
    if not (take_over or (promote and current.released)):
        raise refusal(guest, current, promoting=promote)
    return Owner(me, current.generation + 1, when, released=promote)


def refusal(guest: str, other: Owner, *, promoting: bool) -> OwnerRefused:
    if other.released:
        return IsReplica(
            f"{guest}: a replica of a guest of host {other.host}, released there at "
            f"{other.time}; to make this host its home: vmbundle promote {guest}"
        )
    how = "promote" if promoting else "start"
    return OwnedElsewhere(
        f"{guest}: owned by host {other.host} since {other.time}, which has not "
        "released it (the guest may be running there); stop it there, or if that host "
        f"is down for good, take it over: vmbundle {how} {guest} --take-over"
    )


def release(current: Owner | None, me: Host, when: str) -> Owner | None:
    """The record once this host stops the guest; None when there is nothing of
    this host's to release (another host took it over meanwhile, say)."""
    if current is None or current.host.hostid != me.hostid or current.released:
        return None
    return attrs.evolve(current, time=when, released=True)


def is_foreign(current: Owner | None, me: Host) -> bool:
    return current is not None and current.host.hostid != me.hostid


# --- the file -----------------------------------------------------------------------


def read(bundle_path: Path, guest: str) -> Owner | None:
    """The bundle's record, None when it has none; BadOwnerRecord when unreadable."""
    path = bundle_path / OWNER_FILE
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BadOwnerRecord(f"{guest}: cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise _bad(guest, path, "not JSON") from None
    try:
        return _parse(doc)
    except ValueError as exc:
        raise _bad(guest, path, str(exc)) from None


def _bad(guest: str, path: Path, why: str) -> BadOwnerRecord:
    return BadOwnerRecord(
        f"{guest}: {path}: not an owner record ({why}); if this host is the guest's "
        f"home, write a new one: vmbundle promote {guest} --take-over"
    )


def _parse(doc: Any) -> Owner:
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        raise ValueError(f"version must be {VERSION}")
    missing = [k for k in ("hostid", "node", "generation", "time", "released") if k not in doc]
    if missing:
        raise ValueError(f"{missing[0]} is missing")
    host_id, node, generation = doc["hostid"], doc["node"], doc["generation"]
    when, released = doc["time"], doc["released"]
    if not (isinstance(host_id, str) and hostid.HOSTID.fullmatch(host_id)):
        raise ValueError("hostid must be hex digits")
    if not (isinstance(node, str) and 0 < len(node) <= 256 and node.isprintable()):
        raise ValueError("node must be a host name")
    if type(generation) is not int or generation < 1:
        raise ValueError("generation must be a whole number from 1")
    if not (isinstance(when, str) and len(when) <= 40 and when.isprintable()):
        raise ValueError("time must be a time stamp")
    if type(released) is not bool:
        raise ValueError("released must be true or false")
    return Owner(Host(host_id, node), generation, when, released)


def write(bundle_path: Path, record: Owner) -> None:
    data = json.dumps(record.to_json(), indent=2).encode() + b"\n"
    write_atomic(bundle_path / OWNER_FILE, data)


def check_start(bundle_path: Path, guest: str) -> Host:
    """Refuse (OwnerRefused) a start on this host that take() would refuse; writes
    nothing. This host, for the take() that follows."""
    me = this_host()
    claim(guest, read(bundle_path, guest), me, now(), promote=False, take_over=False)
    return me


# --- under the bundle's lock --------------------------------------------------------


def take(
    run_dir: Path, bundle_path: Path, guest: str, me: Host, *, promote: bool, take_over: bool
) -> Owner:
    """Claim the guest for me, this host (see claim), and write the record."""
    with locks.bundle(run_dir, guest), faults_of(guest):
        try:
            current = read(bundle_path, guest)
        except BadOwnerRecord:
            if not take_over:
                raise
            current = None
        record = claim(guest, current, me, now(), promote=promote, take_over=take_over)
        write(bundle_path, record)
    return record


def give_back(run_dir: Path, bundle_path: Path, guest: str) -> Owner | None:
    """Release this host's claim; the record written, or None when there was none."""
    me = this_host()
    with locks.bundle(run_dir, guest), faults_of(guest):
        record = release(read(bundle_path, guest), me, now())
        if record is not None:
            write(bundle_path, record)
    return record


def release_or_say(
    run_dir: Path, bundle_path: Path, guest: str, say: Callable[[str], None]
) -> None:
    """give_back for a guest that is off whatever happens here: a bundle that cannot
    be written now (gone, read-only) keeps this host's claim, and that is said."""
    try:
        give_back(run_dir, bundle_path, guest)
    except VmbundleError as exc:
        say(f"{guest}: the owner record stays claimed: {str(exc).splitlines()[0]}")
