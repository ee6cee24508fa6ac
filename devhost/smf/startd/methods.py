"""Turning a method property group into something to exec: `%` token expansion
(startd/expand.c), the special methods `:true` and `:kill`, and the method
context (librestart's restarter_get_method_context, startd/env.c's set_smf_env).
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from devhost import tools
from devhost.smf.fmri import STARTD_FMRI, Fmri
from devhost.smf.repository import Pgs
from devhost.smf.startd.config import single, values

DEFAULT_PATH = "/usr/sbin:/usr/bin"
SHELL_METACHARS = ";&()|^<>\n \t\\\"'`"


class TokenError(Exception):
    """A % token could not be expanded; the text is what startd logs after the colon."""


# Looks up a property spec ("pg/prop", "prop" or a property FMRI) to its values,
# or None when there is no such property.
PropertyLookup = Callable[[str], "list[str] | None"]


def quote_for_shell(text: str) -> str:
    return "".join("\\" + c if c in SHELL_METACHARS else c for c in text)


def expand_tokens(exec_string: str, fmri: Fmri, method: str, lookup: PropertyLookup) -> str:
    """Expand %-tokens as expand_method_tokens does; raises TokenError."""
    out: list[str] = []
    i = 0
    while True:
        j = exec_string.find("%", i)
        if j < 0:
            out.append(exec_string[i:])
            return "".join(out)
        out.append(exec_string[i:j])
        if j + 1 == len(exec_string):
            return "".join(out)  # a lone trailing % is dropped
        token = exec_string[j + 1]
        if token == "%":
            out.append("%")
            i = j + 2
            continue
        if token == "s":
            out.append(fmri.service)
        elif token == "i":
            out.append(fmri.instance or "")
        elif token == "f":
            out.append(str(fmri))
        elif token == "m":
            out.append(method)
        elif token == "r":
            out.append("svc.startd")
        elif token == "{":
            close = exec_string.find("}", j + 2)
            if close < 0:
                raise TokenError("parse error")
            inner = exec_string[j + 2 : close]
            sep = " "
            if inner[-1:] in (",", ":"):
                sep, inner = inner[-1], inner[:-1]
            found = lookup(inner)
            if found is None:
                raise TokenError(f'property "{inner}" not found')
            out.append(sep.join(quote_for_shell(v) for v in found))
            i = close + 1
            continue
        else:
            raise TokenError("unknown method token")
        i = j + 2


def kill_signal(method: str) -> int | None:
    """The signal of a `:kill [-SIG]` method (restarter_is_kill_method), else None."""
    m = re.fullmatch(r":kill(?:\s+-(\w+))?\s*", method)
    if m is None:
        return None
    name = m.group(1)
    if name is None:
        return int(signal.SIGTERM)
    if name.isdigit():
        return int(name)
    try:
        return int(signal.Signals["SIG" + name.upper()])
    except KeyError:
        return None


def is_null_method(method: str) -> bool:
    return method.strip() == ":true"


# --- method context ------------------------------------------------------------------------


class ContextError(Exception):
    """The method context cannot be built; the text is logged to the instance log."""


@attrs.frozen
class MethodContext:
    env: dict[str, str]
    cwd: str
    credentials: dict[str, Any] | None  # uid, gid, groups; None: run as the restarter
    notes: list[str]  # warnings startd writes into the instance log before the exec


def _ctx(view: Pgs, method: str, prop: str) -> list[str] | None:
    """A context property from the method's group, else from method_context."""
    for pg in (method, "method_context"):
        found = values(view, pg, prop)
        if found is not None:
            return found
    return None


def _lookup_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except KeyError:
        raise ContextError(f'Could not find user "{name}".') from None


def _lookup_group(name: str) -> int:
    try:
        return int(name) if name.isdigit() else grp.getgrnam(name).gr_gid
    except KeyError:
        raise ContextError(f'Could not find group "{name}".') from None


def _credentials(view: Pgs, method: str) -> tuple[pwd.struct_passwd, dict[str, Any] | None]:
    # Credentials apply only when use_profile is set (svccfg writes it for every
    # method_credential); without it the method runs with the restarter's ids.
    if single(view, method, "use_profile") is None and (
        "method_context" not in view or single(view, "method_context", "use_profile") is None
    ):
        return pwd.getpwuid(os.getuid()), None
    user = (_ctx(view, method, "user") or [":default"])[0]
    who = _lookup_user("0" if user in (":default", "") else user)
    group = (_ctx(view, method, "group") or [":default"])[0]
    gid = who.pw_gid if group in (":default", "") else _lookup_group(group)
    supp = (_ctx(view, method, "supp_groups") or [":default"])[0]
    if supp in (":default", ""):
        groups = os.getgrouplist(who.pw_name, gid)
    else:
        groups = [_lookup_group(g) for g in supp.replace(",", " ").split()]
    if os.getuid() != 0:
        # Only root may change ids; an unprivileged devhost runs methods as itself.
        return pwd.getpwuid(os.getuid()), None
    return who, {"uid": who.pw_uid, "gid": gid, "groups": groups}


def method_context(
    view: Pgs, fmri: Fmri, method: str, state_dir: Path, base_env: dict[str, str]
) -> MethodContext:
    """The environment, working directory and ids a method runs with."""
    who, creds = _credentials(view, method)
    notes: list[str] = []
    env: dict[str, str] = {
        "SMF_FMRI": str(fmri),
        "SMF_METHOD": method,
        "SMF_RESTARTER": STARTD_FMRI,
        "SMF_ZONENAME": "global",
        # illumos starts from PATH=/usr/sbin:/usr/bin; the devhost's tools come first
        # so that methods find the emulated svcadm, svcprop, kstat...
        "PATH": f"{tools.bin_dir(state_dir)}:{DEFAULT_PATH}",
    }
    # What init's environment (/etc/default/init) would give: the zone and locale.
    for name, value in base_env.items():
        if name == "TZ" or name == "LANG" or name.startswith("LC_"):
            env[name] = value
    for entry in _ctx(view, method, "environment") or []:
        name, eq, value = entry.partition("=")
        if not eq or not name:
            notes.append(f'Invalid environment variable "{entry}".')
            continue
        if name.startswith("SMF_"):
            notes.append(f'Invalid environment variable "{entry}"; "SMF_" prefix is reserved.')
            continue
        if name == "PATH":
            value = f"{tools.bin_dir(state_dir)}:{value}"
        elif name in env and not name.startswith("SMF_"):
            notes.append(f'Ignoring duplicate environment variable "{name}={env[name]}".')
        env[name] = value
    wd = _ctx(view, method, "working_directory")
    uses_context = "method_context" in view or any(
        single(view, method, p) is not None
        for p in ("use_profile", "environment", "working_directory", "user", "group")
    )
    if wd is not None and wd and wd[0] not in (":default", ":home"):
        cwd = wd[0]
    elif uses_context:
        cwd = who.pw_dir or "/"
    else:
        cwd = "/"  # no method context at all: init's context
    return MethodContext(env=env, cwd=cwd, credentials=creds, notes=notes)
