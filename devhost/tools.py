"""The emulated illumos commands of one devhost, as small scripts in `<state>/bin`.

Each script has the devhost's state directory written into it, so devhosts with
different --state directories run side by side, each with its own tools first on
PATH (`eval "$(devhost env --state DIR)"`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# command -> module whose main(argv, state_dir) -> int implements it
TOOLS = {
    "svccfg": "devhost.smf.svccfg",
    "svcadm": "devhost.smf.svcadm",
    "svcs": "devhost.smf.svcs",
    "svcprop": "devhost.smf.svcprop",
    "kstat": "devhost.kernel.kstat",
    "mdb": "devhost.kernel.mdb",
    "pagesize": "devhost.kernel.pagesize",
    "hostid": "devhost.kernel.hostid",
}

_SCRIPT = """#!{python}
import sys
from pathlib import Path
from {module} import main
sys.exit(main(sys.argv[1:], Path({state!r})))
"""


def bin_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "bin"


def install(state_dir: Path) -> Path:
    """Write (or rewrite) the tool scripts for state_dir; their directory."""
    out = bin_dir(state_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, module in TOOLS.items():
        path = out / name
        text = _SCRIPT.format(
            python=sys.executable, module=module, state=str(Path(state_dir).absolute())
        )
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
    return out
