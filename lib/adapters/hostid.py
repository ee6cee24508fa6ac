"""hostid(1): this host's identifier, eight hex digits (`%08x` of gethostid(3C)).
The owner record names a host by it, as the node name can be shared or changed."""

from __future__ import annotations

import functools
import os
import re

from vmbundle.adapters.run import run_tool
from vmbundle.errors import ToolError

BINARY = "hostid"
HOSTID = re.compile(r"[0-9a-f]{1,16}")


def host_id(*, binary: str = BINARY) -> str:
    return _host_id(binary, os.environ.get("PATH", ""))


@functools.cache
def _host_id(binary: str, path: str) -> str:
    # Once a process: the host id is set at boot. A long-lived process (the
    # controller) would otherwise run hostid at every start it prepares.
    argv = [binary]
    out = run_tool(argv, timeout=10.0).stdout.strip().lower()
    if HOSTID.fullmatch(out) is None:
        raise ToolError(argv, 0, f"printed {out[:40]!r}, not a host id in hex")
    return out
