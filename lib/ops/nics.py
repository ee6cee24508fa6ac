"""nic add and nic remove: a network card in vm.json, under the bundle's lock,
and live in the running guest through its refresh."""

from __future__ import annotations

from pathlib import Path

import attrs

from vmbundle import locks
from vmbundle.errors import UsageError, faults_of
from vmbundle.guest.prepare import new_mac
from vmbundle.ops import edit
from vmbundle.ops.edit import Refreshed
from vmbundle.settings import HostSettings
from vmbundle.vm import bundle, codec
from vmbundle.vm.bundle import Bundle
from vmbundle.vm.checks import check_document
from vmbundle.vm.model import Nic, NicBackend, VmConfig


@attrs.frozen
class NicChanged:
    name: str
    nic: Nic
    refreshed: Refreshed | None


def add(
    settings: HostSettings,
    guest: str,
    backend: NicBackend,
    *,
    model: str = "virtio",
    mac: str | None = None,
) -> NicChanged:
    """A new NIC (the first free netN), with its MAC chosen now so the running
    guest gets the card it will keep."""
    path = bundle.locate(settings, guest)
    name = path.name
    with locks.bundle(settings.run_dir, name), faults_of(name):
        b = bundle.load(path, settings)
        taken = {n.mac for n in b.config.nics}
        if mac is not None and mac in taken:
            raise UsageError(f"{name}: {mac} is already another NIC's MAC; give another")
        chosen = mac or new_mac()
        while chosen in taken:
            chosen = new_mac()
        nic = Nic(id=b.config.free_device_id("net"), model=model, mac=chosen, backend=backend)
        cfg = _save(path, settings, attrs.evolve(b.config, nics=(*b.config.nics, nic)))
    return NicChanged(name, nic, edit.refresh_if_running(settings, Bundle(path, cfg)))


def remove(settings: HostSettings, guest: str, nic_id: str) -> NicChanged:
    """Take a NIC out of vm.json; the running guest lets go of it live."""
    path = bundle.locate(settings, guest)
    name = path.name
    with locks.bundle(settings.run_dir, name), faults_of(name):
        b = bundle.load(path, settings)
        nic = next((n for n in b.config.nics if n.id == nic_id), None)
        if nic is None:
            ids = ", ".join(n.id for n in b.config.nics) or "none"
            raise UsageError(f"{name}: no NIC {nic_id!r}; NICs: {ids}")
        kept = tuple(n for n in b.config.nics if n.id != nic_id)
        cfg = _save(path, settings, attrs.evolve(b.config, nics=kept))
    return NicChanged(name, nic, edit.refresh_if_running(settings, Bundle(path, cfg)))


def _save(path: Path, settings: HostSettings, cfg: VmConfig) -> VmConfig:
    """cfg checked as validate checks it, then written atomically."""
    checked = check_document(codec.unstructure(cfg), path, settings)
    bundle.save(path, checked)
    return checked
