"""The emulated illumos commands of one devhost, as small scripts in `<state>/bin`.

Each script has the devhost's state directory written into it, so devhosts with
different --state directories run side by side, each with its own tools first on
PATH (`eval "$(devhost env --state DIR)"`).

An opt-in timing log, for benchmarks that want to know how much of their time went
to the emulation (on illumos these are C programs that take a millisecond or two):
with DEVHOST_TOOL_LOG=FILE in a tool's environment, or, for tools the restarter's
methods run (their environment is svc.startd's, which passes nothing else on), the
path FILE written in `<state>/tool-log.path`, every tool run appends to FILE one
JSON line, in a single O_APPEND write:

    {"tool": "svcprop", "argv": ARGV, "start": T0, "end": T1, "pid": PID, "ppid": PPID}

The whole argv and the parent's pid say which caller ran which command (the
controller's kstat reads, a stop method's own), when a storm is taken apart.

start and end are wall-clock seconds (time.time()) from the script's first line to
the end of its main(); the interpreter's own start before that line and its exit
after are not in it. Off (neither set), a tool pays one failed open.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from _typeshed import StrPath

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

LOG_ENV = "DEVHOST_TOOL_LOG"
LOG_PATH_FILE = "tool-log.path"

# -I -S: a tool starts in about half the time without site's work (the .pth
# files, the editable installs' finders), and no PYTHON* variable of its
# caller's environment can change what it imports; the paths it needs are
# written in. The state directory is a str: nothing a tool imports on its way
# imports pathlib (with fnmatch and urllib.parse, 8 ms of every tool run).
_SCRIPT = """#!{python} -IS
import time
start = time.time()
import sys
sys.path[:0] = {paths!r}
from devhost.tools import run
sys.exit(run({name!r}, {module!r}, {state!r}, start))
"""


def bin_dir(state_dir: StrPath) -> Path:
    from pathlib import Path

    return Path(state_dir) / "bin"


def install(state_dir: StrPath) -> Path:
    """Write (or rewrite) the tool scripts for state_dir; their directory."""
    from pathlib import Path

    out = bin_dir(state_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, module in TOOLS.items():
        path = out / name
        text = _SCRIPT.format(
            python=sys.executable,
            paths=_import_paths(),
            name=name,
            module=module,
            state=str(Path(state_dir).absolute()),
        )
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
    return out


def _import_paths() -> list[str]:
    """What a tool imports from: this checkout's devhost package, and the
    installed packages of the interpreter that installs the tools (attrs)."""
    import sysconfig

    here = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    paths = sysconfig.get_paths()
    return list(dict.fromkeys([here, paths["purelib"], paths["platlib"]]))


def run(name: str, module: str, state_dir: StrPath, start: float) -> int:
    """What the tool script for name does: module's main on the arguments, timed into
    the log when there is one to write."""
    main = importlib.import_module(module).main
    log = log_path(state_dir)
    if log is None:
        status: int = main(sys.argv[1:], state_dir)
        return status
    try:
        status = main(sys.argv[1:], state_dir)
        return status
    finally:
        _append(log, name, start)


def log_path(state_dir: StrPath) -> str | None:
    """Where this tool run is to log its time: $DEVHOST_TOOL_LOG, else the path in
    `<state>/tool-log.path`; None when neither says (logging off)."""
    path = os.environ.get(LOG_ENV)
    if path:
        return path
    try:
        with open(os.path.join(state_dir, LOG_PATH_FILE)) as f:
            return f.read().strip() or None
    except FileNotFoundError:
        return None


def _append(log: str, name: str, start: float) -> None:
    import json
    import time

    end = time.time()
    line = json.dumps(
        {
            "tool": name,
            "argv": sys.argv,
            "start": start,
            "end": end,
            "pid": os.getpid(),
            "ppid": os.getppid(),
        }
    )
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)
