"""smf install: write this installation's manifests and import them with svccfg."""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from vmbundle.adapters import smf
from vmbundle.atomic import write_atomic
from vmbundle.errors import VmbundleError
from vmbundle.service import manifests
from vmbundle.service.manifests import Installation
from vmbundle.settings import HostSettings


@attrs.frozen
class Written:
    path: Path
    imported: bool


def installation(config: Path | None) -> tuple[Installation, tuple[str, ...]]:
    """This installation's commands and host configuration, and the manifests it
    can install: the controller's only once its command is installed, since a
    manifest naming a missing command would fail at its first start."""
    method, controller = manifests.installed_commands()
    if not os.access(method, os.X_OK):
        raise VmbundleError(
            f"{method}: not installed; install the vmbundle package (pip install .) "
            "with the interpreter that runs this command"
        )
    names = tuple(
        n for n in manifests.MANIFESTS if n != "controller.xml" or os.access(controller, os.X_OK)
    )
    return Installation(method=method, controller=controller, config=config), names


def install(
    settings: HostSettings, config: Path | None, directory: Path | None, *, do_import: bool
) -> list[Written]:
    """Write the manifests into directory (default [smf] manifest_dir), then import them."""
    inst, names = installation(config)
    where = directory or settings.manifest_dir
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VmbundleError(
            f"{where}: cannot create the manifest directory: {exc.strerror}"
        ) from None
    paths: list[Path] = []
    for name in names:
        path = where / name
        try:
            write_atomic(path, manifests.manifest(name, inst).encode(), mode=0o644)
        except OSError as exc:
            raise VmbundleError(f"{path}: cannot write the manifest: {exc.strerror}") from None
        paths.append(path)
    if do_import:
        for path in paths:
            smf.import_manifest(str(path))
    return [Written(p, do_import) for p in paths]
