"""smf install: write this installation's manifests and import them with svccfg."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from vmbundle.adapters import smf
from vmbundle.atomic import write_atomic
from vmbundle.cli.common import host_config
from vmbundle.errors import VmbundleError
from vmbundle.service import manifests
from vmbundle.service.manifests import Installation


def _config_in_use(args: argparse.Namespace) -> Path | None:
    """The host configuration this command runs with, which the methods must read
    too; absolute, since svc.startd starts methods in another directory."""
    named = args.config or os.environ.get("VMBUNDLE_CONFIG")
    return Path(named).absolute() if named else None


def _installation(args: argparse.Namespace) -> Installation:
    method, controller = manifests.installed_commands()
    for command in (method, controller):
        # A manifest naming a missing command would only fail at the first start.
        if not os.access(command, os.X_OK):
            raise VmbundleError(
                f"{command}: not installed; install the vmbundle package (pip install .) "
                "with the interpreter that runs this command"
            )
    return Installation(method=method, controller=controller, config=_config_in_use(args))


def install(args: argparse.Namespace) -> int:
    # Loading the configuration also refuses to record a missing or broken one.
    host = host_config(args)
    inst = _installation(args)
    directory = Path(args.dir).absolute() if args.dir else host.manifest_dir
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VmbundleError(
            f"{directory}: cannot create the manifest directory: {exc.strerror}"
        ) from None
    written: list[Path] = []
    for name in manifests.MANIFESTS:
        path = directory / name
        try:
            write_atomic(path, manifests.manifest(name, inst).encode(), mode=0o644)
        except OSError as exc:
            raise VmbundleError(f"{path}: cannot write the manifest: {exc.strerror}") from None
        print(f"wrote {path}")
        written.append(path)
    if args.no_import:
        return 0
    for path in written:
        smf.import_manifest(str(path))
        print(f"imported {path}")
    return 0


def cmd_smf(args: argparse.Namespace) -> int:
    if args.smf_command == "install":
        return install(args)
    raise VmbundleError(f"smf {args.smf_command}: unknown subcommand")
