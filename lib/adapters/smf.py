"""Every svccfg, svcadm, svcs and svcprop command line vmbundle runs.

Checked against svcprop(1), svcs(1), svcadm(8) and svccfg(8) (see illumos.md);
devhost answers exactly these on Linux. Values cross to svccfg as double-quoted
strings and come back from svcprop backslash-escaped, so both directions are
spelled out here. This module imports nothing heavy: the start method uses it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from vmbundle.adapters.run import run_tool
from vmbundle.errors import ToolError, ToolMissing

VM_SERVICE = "svc:/system/vmbundle/vm"
CONTROLLER = "svc:/system/vmbundle/controller:default"
BUNDLE_PROPERTY = "config/bundle"

# What svcprop and svcs print when an entity or property does not exist.
_MISSING = ("Couldn't find", "doesn't match any")

# svcadm -s gave up: 3 for the instance itself (maintenance, disabled by someone
# else), 4 for its dependencies (svcadm(8)).
_SVCADM_GAVE_UP = (3, 4)


class NoSuchEntity(ToolError):
    """The service or instance a svccfg subcommand names does not exist."""


class AlreadyExists(ToolError):
    """svccfg `add` of an instance that exists already."""


class GaveUp(ToolError):
    """`svcadm -s` returned before the instance got where it was sent: it went to
    maintenance, someone else disabled it, or a dependency cannot be met."""


# The labels of a `svcs -x` block (explain.c); a line without one continues the last.
_EXPLAIN_LABELS = ("State", "Reason", "See", "Impact")


def instance_fmri(name: str) -> str:
    return f"{VM_SERVICE}:{name}"


def instance_name(fmri: str) -> str:
    """The instance part of a full instance FMRI."""
    return fmri.rsplit(":", 1)[-1]


def unescape_value(text: str) -> str:
    """One value as svcprop prints it: `""` for an empty string, and a backslash
    before each shell metacharacter (svcprop.c)."""
    if text == '""':
        return ""
    out: list[str] = []
    escaped = False
    for ch in text:
        if escaped or ch != "\\":
            out.append(ch)
            escaped = False
        else:
            escaped = True
    return "".join(out)


def quote_value(value: str) -> str:
    """A string value for a svccfg subcommand: double-quoted, \\ and \" escaped."""
    if "\n" in value:
        raise ValueError("a newline cannot cross to svccfg")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class PropertyRead:
    """`svcprop -p PG/PROP FMRI`, begun now and read later, so a caller can do
    other work (the start method imports its modules) while svcprop runs."""

    def __init__(self, fmri: str, prop: str, *, binary: str = "svcprop") -> None:
        self.argv = [binary, "-p", prop, fmri]
        try:
            self._proc: subprocess.Popen[str] | None = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        except FileNotFoundError:
            self._proc = None

    def value(self, timeout: float = 30.0) -> str | None:
        """The single value from the running snapshot; None when the property or
        the instance does not exist."""
        if self._proc is None:
            raise ToolMissing(self.argv, None, f"command not found: {self.argv[0]}")
        try:
            out, err = self._proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.communicate()
            raise ToolError(self.argv, None, f"timed out after {timeout:g}s") from None
        if self._proc.returncode != 0:
            if any(m in err for m in _MISSING):
                return None
            raise ToolError(self.argv, self._proc.returncode, err)
        return unescape_value(out.rstrip("\n"))


def get_property(fmri: str, prop: str, *, binary: str = "svcprop") -> str | None:
    return PropertyRead(fmri, prop, binary=binary).value()


def states(pattern: str = f"{VM_SERVICE}:*", *, binary: str = "svcs") -> dict[str, tuple[str, str]]:
    """FMRI -> (state, next state) for every instance matching pattern; next
    state is "-" unless the instance is moving (`svcs -H -o state,nstate,fmri`)."""
    argv = [binary, "-H", "-o", "state,nstate,fmri", pattern]
    proc = run_tool(argv, check=False, timeout=30)
    if proc.returncode != 0:
        if any(m in proc.stderr for m in _MISSING):
            return {}
        raise ToolError(argv, proc.returncode, proc.stderr)
    out: dict[str, tuple[str, str]] = {}
    for line in proc.stdout.splitlines():
        fields = line.split()
        if len(fields) == 3:
            out[fields[2]] = (fields[0], fields[1])
    return out


def explain(fmri: str, *, binary: str = "svcs") -> str:
    """`svcs -x FMRI`: why an instance is not running, as svcs words it."""
    return run_tool([binary, "-x", fmri], timeout=30).stdout


def log_file(fmri: str, *, binary: str = "svcs") -> str:
    """`svcs -L FMRI`: the instance's log file."""
    return run_tool([binary, "-L", fmri], timeout=30).stdout.strip()


def svcadm(
    subcommand: str, fmri: str, *flags: str, binary: str = "svcadm", timeout: float = 900
) -> None:
    """`svcadm SUBCOMMAND [FLAGS] FMRI`, e.g. svcadm("enable", fmri, "-s"); GaveUp
    when -s was given and the instance did not get there."""
    argv = [binary, subcommand, *flags, fmri]
    proc = run_tool(argv, timeout=timeout, check=False)
    if proc.returncode == 0:
        return
    if "-s" in flags and proc.returncode in _SVCADM_GAVE_UP:
        raise GaveUp(argv, proc.returncode, proc.stderr)
    raise ToolError(argv, proc.returncode, proc.stderr or proc.stdout)


def svccfg_script(commands: Sequence[str], *, binary: str = "svccfg") -> None:
    """Run svccfg subcommands read from standard input, in one repository session.
    svccfg stops at the first failing subcommand and exits non-zero: NoSuchEntity
    when it named something that does not exist, AlreadyExists for an `add` of an
    existing instance."""
    argv = [binary]
    script = "".join(c + "\n" for c in commands)
    proc = run_tool(argv, input_text=script, timeout=120, check=False)
    if proc.returncode == 0:
        return
    if "already exists" in proc.stderr:
        raise AlreadyExists(argv, proc.returncode, proc.stderr)
    if any(m in proc.stderr for m in _MISSING):
        raise NoSuchEntity(argv, proc.returncode, proc.stderr)
    raise ToolError(argv, proc.returncode, proc.stderr or proc.stdout)


def import_manifest(path: str, *, binary: str = "svccfg") -> None:
    """`svccfg import PATH`: validate the manifest and bring its services in."""
    run_tool([binary, "import", path], timeout=300)


def add_instance(name: str, bundle: str, *, binary: str = "svccfg") -> None:
    """A disabled instance of the vm service whose config/bundle is bundle."""
    svccfg_script(
        [
            f"select {VM_SERVICE}",
            f"add {name}",
            f"select {instance_fmri(name)}",
            "addpg config application",
            f"setprop {BUNDLE_PROPERTY} = astring: {quote_value(bundle)}",
            "addpg general framework",
            "setprop general/enabled = boolean: false",
            "refresh",
        ],
        binary=binary,
    )


def set_bundle(fmri: str, bundle: str, *, binary: str = "svccfg") -> None:
    """Point an instance at another bundle; takes effect after a refresh."""
    run_tool(
        [binary, "-s", fmri, "setprop", BUNDLE_PROPERTY, "=", "astring:", quote_value(bundle)],
        timeout=60,
    )


def delete_instance(fmri: str, *, binary: str = "svccfg") -> None:
    """`svccfg delete FMRI`: the instance goes; svccfg refuses an online one."""
    run_tool([binary, "delete", fmri], timeout=60)


def bundle_paths(pattern: str = f"{VM_SERVICE}:*", *, binary: str = "svcprop") -> dict[str, str]:
    """FMRI -> config/bundle for every instance matching pattern, in one
    `svcprop -f` call (-f labels every line with its FMRI, however many match).
    An instance without the property is left out."""
    argv = [binary, "-f", "-p", BUNDLE_PROPERTY, pattern]
    proc = run_tool(argv, check=False, timeout=30)
    # svcprop prints the instances that have the property even when it exits 1
    # for one that lacks it; only a failure with no known cause is an error.
    if proc.returncode != 0 and not any(m in proc.stderr for m in _MISSING):
        raise ToolError(argv, proc.returncode, proc.stderr)
    out: dict[str, str] = {}
    label = f"/:properties/{BUNDLE_PROPERTY} "
    for line in proc.stdout.splitlines():
        fmri, sep, rest = line.partition(label)
        _type, _, value = rest.partition(" ")
        if sep and value:
            out[fmri] = unescape_value(value)
    return out


def restarter_state(fmri: str, *, binary: str = "svcprop") -> tuple[str, str, str] | None:
    """(state, next state, state timestamp) as svc.startd recorded them, read live
    (the restarter pg is non-persistent); None when the instance does not exist
    or the restarter has not taken it in yet. The timestamp changes with every
    state change, which tells a finished restart from one not yet begun."""
    props = ("state", "next_state", "state_timestamp")
    argv = [binary, "-t", *(a for p in props for a in ("-p", f"restarter/{p}")), fmri]
    proc = run_tool(argv, check=False, timeout=30)
    if proc.returncode != 0:
        if any(m in proc.stderr for m in _MISSING):
            return None
        raise ToolError(argv, proc.returncode, proc.stderr)
    values: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        name, _, rest = line.partition(" ")
        values[name.removeprefix("restarter/")] = unescape_value(rest.partition(" ")[2])
    if any(p not in values for p in props):
        return None
    return values["state"], values["next_state"], values["state_timestamp"]


def reason(explanation: str) -> str | None:
    """The Reason of a `svcs -x` block, its continuation lines joined (several
    reasons, one per unmet dependency, are joined by "; "); None when there is
    none, as for an instance that is online."""
    reasons: list[str] = []
    inside = False
    for line in explanation.splitlines():
        text = line.strip()
        label, colon, rest = text.partition(":")
        if colon and label in _EXPLAIN_LABELS:
            inside = label == "Reason"
            if inside:
                reasons.append(rest.strip())
        elif inside and text:
            reasons[-1] += " " + text
    return "; ".join(reasons) or None
