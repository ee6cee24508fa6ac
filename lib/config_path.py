"""Which file is the host configuration, and the one setting the start method's
quick path needs from it, the run directory, read without vmbundle.settings:
that module and what it imports (attrs, the memory policy) would cost the quick
path more than a bare QEMU takes to start."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

DEFAULT_PATH = Path("/etc/vmbundle/vmbundle.toml")
DEFAULT_RUN_DIR = Path("/var/run/vmbundle")


def chosen() -> tuple[Path, bool]:
    """($VMBUNDLE_CONFIG or the default file, whether it was named)."""
    env = os.environ.get("VMBUNDLE_CONFIG")
    return (Path(env), True) if env else (DEFAULT_PATH, False)


def run_dir() -> Path | None:
    """The run directory the host configuration gives (its `[run] dir`, or the
    default). None when the file cannot be read or the value is not an
    absolute path: vmbundle.settings.load then says what is wrong."""
    path, named = chosen()
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        return None if named else DEFAULT_RUN_DIR
    except (OSError, tomllib.TOMLDecodeError):
        return None
    run = doc.get("run", {})
    if not isinstance(run, dict):
        return None
    value = run.get("dir")
    if value is None:
        return DEFAULT_RUN_DIR
    if not isinstance(value, str) or not value.startswith("/"):
        return None
    return Path(value)
