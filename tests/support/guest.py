"""The project's real test guest: a small bootable ISO built by tests/guest/build.py.

    from support.guest import test_guest_iso
    iso = test_guest_iso()   # cached under ${VMBUNDLE_CACHE:-~/.cache/vmbundle}/guest/

What the guest prints on its serial console (lines end in CRLF), what it paints on the
VGA console, how it echoes keys typed on its keyboard and how it reacts to the ACPI power
button: see tests/guest/init.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import types
from pathlib import Path

BUILDER = Path(__file__).resolve().parent.parent / "guest" / "build.py"


@functools.cache
def _builder() -> types.ModuleType:
    name = "vmbundle_testguest_build"
    spec = importlib.util.spec_from_file_location(name, BUILDER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_guest_iso() -> Path:
    """The test guest ISO for the current builder files, built first if not cached
    (a first build downloads the kernel and busybox .debs with apt: about 10 s)."""
    iso = _builder().ensure_iso()
    assert isinstance(iso, Path)
    return iso


# Not a test, despite the name (pytest collects test_* functions from test modules only,
# but say so in case this module is ever imported into one).
test_guest_iso.__test__ = False  # type: ignore[attr-defined]
