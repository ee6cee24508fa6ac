"""A guest's SMF instance and the bundle its config/bundle property names.

The instance's name is the guest's name, as is the bundle directory's; a
property that names another guest's bundle, a relative path or nothing at all
is a configuration error of the instance, reported with the svccfg line that
fixes it.
"""

from __future__ import annotations

from pathlib import Path

from vmbundle.adapters.smf import BUNDLE_PROPERTY
from vmbundle.errors import ConfigError
from vmbundle.vm.bundle import CONFIG_FILE


def _fix(fmri: str) -> str:
    return (
        f"set it with svccfg -s {fmri} setprop {BUNDLE_PROPERTY} = astring: /path/to/bundle, "
        f"then svcadm refresh {fmri}"
    )


def bundle_path(fmri: str, name: str, value: str | None) -> Path:
    """The bundle directory the instance's config/bundle value names, checked."""
    if value is None or value == "":
        raise ConfigError([f"{name}: {fmri} has no {BUNDLE_PROPERTY} property; {_fix(fmri)}"])
    path = Path(value)
    if not path.is_absolute() or ".." in path.parts:
        raise ConfigError(
            [
                f"{name}: {BUNDLE_PROPERTY} must be an absolute path without .., got {value!r}; {_fix(fmri)}"
            ]
        )
    if not (path / CONFIG_FILE).is_file():
        raise ConfigError(
            [f"{name}: {BUNDLE_PROPERTY} is {value}, which holds no {CONFIG_FILE}; {_fix(fmri)}"]
        )
    if path.name != name:
        raise ConfigError(
            [
                f"{name}: {BUNDLE_PROPERTY} is {value}, the bundle of guest {path.name!r}; "
                f"point it at a bundle named {name!r}, or import that bundle as its own "
                f"guest with vmbundle import {value}"
            ]
        )
    return path
