"""The standard services a fresh devhost starts with.

Manifests name illumos's milestones and early services in their dependencies;
on a devhost there is nothing behind them, so they are seeded as online,
transient instances whose methods are `:true`. The names are those of
illumos-gate (the timeout-override list in startd/restarter.c and the
milestones in svcadm.c); Solaris 11's svc:/system/zfs/* services do not
exist on illumos and are not seeded.
"""

from __future__ import annotations

from pathlib import Path

from devhost.smf import repository
from devhost.smf.fmri import STARTD_FMRI, Fmri, parse
from devhost.smf.repository import Doc, Repository
from devhost.smf.startd.instance import timestamp

STANDARD = (
    STARTD_FMRI,
    "svc:/milestone/devices:default",
    "svc:/milestone/single-user:default",
    "svc:/milestone/multi-user:default",
    "svc:/milestone/multi-user-server:default",
    "svc:/milestone/network:default",
    "svc:/milestone/name-services:default",
    "svc:/milestone/sysconfig:default",
    "svc:/system/filesystem/root:default",
    "svc:/system/filesystem/usr:default",
    "svc:/system/filesystem/minimal:default",
    "svc:/system/filesystem/local:default",
    "svc:/system/device/local:default",
    "svc:/system/manifest-import:default",
    "svc:/system/identity:node",
    "svc:/system/identity:domain",
    "svc:/network/loopback:default",
    "svc:/network/physical:default",
    "svc:/network/initial:default",
    "svc:/network/service:default",
)


def marker(state_dir: Path) -> Path:
    return Path(state_dir) / "smf" / "seeded"


def _seed_one(doc: Doc, fmri: Fmri, now: str) -> None:
    if repository.entity(doc, fmri) is not None:
        return
    svc = repository.add_service(doc, fmri)
    pgs = svc["pgs"]
    repository.set_prop(pgs, "startd", "duration", "astring", ["transient"], pg_type="framework")
    for method in ("start", "stop"):
        repository.set_prop(pgs, method, "exec", "astring", [":true"], pg_type="method")
        repository.set_prop(pgs, method, "timeout_seconds", "count", ["0"], pg_type="method")
        repository.set_prop(pgs, method, "type", "astring", ["method"], pg_type="method")
    inst = repository.add_instance(doc, fmri)
    repository.set_prop(inst["pgs"], "general", "enabled", "boolean", ["true"], pg_type="framework")
    for name, value in (
        ("state", "online"),
        ("next_state", "none"),
        ("auxiliary_state", "none"),
    ):
        repository.set_prop(
            inst["pgs"], "restarter", name, "astring", [value],
            pg_type="framework", nonpersistent=True,
        )  # fmt: skip
    repository.set_prop(
        inst["pgs"], "restarter", "state_timestamp", "time", [now],
        pg_type="framework", nonpersistent=True,
    )  # fmt: skip
    repository.take_snapshot(doc, fmri, "running")
    repository.take_snapshot(doc, fmri, "start")


def seed(state_dir: Path) -> bool:
    """Seed the standard services once per state directory; whether it did."""
    if marker(state_dir).exists():
        return False
    now = timestamp()
    with Repository(state_dir).edit() as doc:
        for text in STANDARD:
            _seed_one(doc, parse(text), now)
    marker(state_dir).write_text("")
    return True
