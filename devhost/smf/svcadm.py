"""svcadm(8): ask the restarter for administrative actions on service instances.

As on illumos (usr/src/cmd/svc/svcadm/svcadm.c, synch.c), svcadm only writes the
repository: general/enabled or general_ovr/enabled for enable and disable, a
timestamp under restarter_actions for everything else. The restarter acts on
them; `-s` watches the restarter's state until the instance gets there or
cannot without an administrator.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from devhost.getopt import BAD, getopt
from devhost.smf import contracts, notify, repository
from devhost.smf.fmri import STARTD_FMRI, Fmri, FmriError, file_path, parse
from devhost.smf.repository import Doc, Pgs, Repository
from devhost.smf.startd import daemon

EXIT_OK, EXIT_FATAL, EXIT_USAGE = 0, 1, 2
EXIT_SVC_FAILURE, EXIT_DEP_FAILURE = 3, 4

USAGE = """\
Usage: svcadm [-S <state>] [-v] [-Z | -z zone] [cmd [args ... ]]

\tsvcadm enable [-rst] [<service> ...]\t- enable and online service(s)
\tsvcadm disable [-c comment] [-st] [<service> ...]\t- disable and offline service(s)
\tsvcadm restart [-d] [<service> ...]\t- restart specified service(s)
\tsvcadm refresh [<service> ...]\t\t- re-read service configuration
\tsvcadm mark [-It] <state> [<service> ...] - set maintenance state
\tsvcadm clear [<service> ...]\t\t- clear maintenance state
\tsvcadm milestone [-d] <milestone>\t- advance to a service milestone

\tServices can be specified using an FMRI, abbreviation, or fnmatch(7)
\tpattern, as shown in these examples for svc:/network/smtp:sendmail

\tsvcadm <cmd> svc:/network/smtp:sendmail
\tsvcadm <cmd> network/smtp:sendmail
\tsvcadm <cmd> network/*mail
\tsvcadm <cmd> network/smtp
\tsvcadm <cmd> smtp:sendmail
\tsvcadm <cmd> smtp
\tsvcadm <cmd> sendmail
"""

MILESTONES = (
    "svc:/milestone/single-user:default",
    "svc:/milestone/multi-user:default",
    "svc:/milestone/multi-user-server:default",
)


class Usage(Exception):
    pass


class Svcadm:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.repo = Repository(self.state_dir)
        self.verbose = False
        self.exit_status = EXIT_OK
        self.state_filter: str | None = None

    # --- messages ---------------------------------------------------------------------------

    def warn(self, text: str) -> None:
        sys.stderr.write(f"svcadm: {text}\n")

    def fatal(self, text: str) -> None:
        self.warn(text)
        self.exit_status = EXIT_FATAL

    def say(self, text: str) -> None:
        if self.verbose:
            sys.stdout.write(text + "\n")

    # --- operands (libscf's scf_walk_fmri, SCF_WALK_UNIPARTIAL | SCF_WALK_MULTIPLE) -------------

    def walk(self, operands: list[str]) -> list[Fmri]:
        """The instances the operands name, each once, in operand order.

        A full instance FMRI is taken as is; a full service FMRI stands for all
        its instances; anything else is a glob (when it has *, ? or [) or an
        abbreviation matching on element boundaries. An operand that matches
        nothing, or an abbreviation or service that matches more than one
        instance, is reported (exit 1) and skipped; the other operands still
        count (lowlevel.c scf_walk_fmri checks each pattern on its own)."""
        doc = self.repo.read()
        known = _instances(doc)
        if not operands:
            return self._by_state(doc, known)
        out: list[Fmri] = []
        for operand in operands:
            matches, kind = _match(doc, known, operand)
            if not matches:
                arg = operand
                if kind == "glob" and not (operand.startswith("*") or operand[3:4] == ":"):
                    arg = "svc:/" + operand
                self.fatal(f"Pattern '{arg}' doesn't match any instances")
                continue
            if kind in ("partial", "service") and len(matches) > 1:
                self.fatal("Partial FMRI matches multiple instances")
                continue
            out.extend(m for m in matches if m not in out)
        return self._by_state(doc, out)

    def _by_state(self, doc: Doc, fmris: list[Fmri]) -> list[Fmri]:
        if self.state_filter is None:
            return fmris
        return [f for f in fmris if _state(doc, f) == self.state_filter]

    # --- writing the repository -----------------------------------------------------------------

    def _restarter_setup(self, pgs: Pgs) -> None:
        """Tell the restarter whether the request comes from a terminal, and
        from which service (when we run inside one's contract)."""
        tty = "true" if os.isatty(0) else "false"
        _set(pgs, "restarter_actions", "auxiliary_tty", "boolean", [tty])
        if self.caller is not None:
            _set(pgs, "restarter_actions", "auxiliary_fmri", "astring", [self.caller])

    @functools.cached_property
    def caller(self) -> str | None:
        """The service whose contract we run in, looked up once for all the instances."""
        return _caller_service(self.state_dir)

    def set_enabled(
        self, fmris: list[Fmri], enable: bool, temporary: bool, comment: str | None = None
    ) -> None:
        """set_inst_enabled for each instance, all in one repository edit; then
        each one's line (-v) or error, in order."""
        missing: set[Fmri] = set()
        with self.repo.edit() as doc:
            for fmri in fmris:
                node = repository.entity(doc, fmri)
                if node is None:
                    missing.add(fmri)
                    continue
                pgs = node["pgs"]
                self._restarter_setup(pgs)
                if repository.get_values(pgs, "general", "enabled") is None:
                    # An instance without general/enabled is incomplete: disabled.
                    _set(pgs, "general", "enabled", "boolean", ["false"], persistent=True)
                value = ["true" if enable else "false"]
                if temporary:
                    _set(pgs, "general_ovr", "enabled", "boolean", value)
                else:
                    _set(pgs, "general", "enabled", "boolean", value, persistent=True)
                    _delete(pgs, "general_ovr", "enabled")
                if enable:
                    _delete(pgs, "general_ovr", "comment")
                elif comment is not None:
                    _set(pgs, "general_ovr", "comment", "astring", [comment])
        word = "enabled" if enable else "disabled"
        for fmri in fmris:
            if fmri in missing:
                self.fatal(f'No such instance "{fmri}".')
            else:
                self.say(f"{fmri} temporarily {word}." if temporary else f"{fmri} {word}.")

    def set_action(self, fmri: Fmri, action: str) -> None:
        with self.repo.edit() as doc:
            node = repository.entity(doc, fmri)
            if node is None:
                self.fatal(f'No such instance "{fmri}".')
                return
            pgs = node["pgs"]
            self._restarter_setup(pgs)
            # The request time, in the clock the restarter orders requests by.
            now = time.time_ns()
            current = repository.get_values(pgs, "restarter_actions", action)
            if not (current and current[0].lstrip("-").isdigit() and int(current[0]) > now):
                _set(pgs, "restarter_actions", action, "integer", [str(now)])
        self.say(f"Action {action} set for {fmri}.")

    # --- enable -r ----------------------------------------------------------------------------

    def enable_recursive(self, fmri: Fmri, temporary: bool) -> None:
        visited: dict[str, bool] = {}  # fmri -> still being visited (a cycle if seen again)

        def visit(text: str) -> str | None:
            """None, or why this dependency could not be followed."""
            key = text if text.startswith("svc:") else "svc:/" + text.lstrip("/")
            if key in visited:
                return "loop" if visited[key] else None
            visited[key] = True
            try:
                doc = self.repo.read()
                inst, err = _instance_of(doc, key)
                if inst is None:
                    if err is not None and err != "multiple":
                        self.fatal(err)
                    return err
                self.set_enabled([inst], True, temporary)
                view = repository.running_view(self.repo.read(), inst)
                restarter = repository.get_values(view, "general", "restarter")
                if restarter and restarter[0] and visit(restarter[0]) == "loop":
                    return "loop"
                for name, pg in sorted(view.items()):
                    if pg.get("type") != "dependency":
                        continue
                    if _single(pg, "type") != "service":
                        continue
                    grouping = _single(pg, "grouping")
                    if grouping in ("exclude_all", "optional_all"):
                        continue
                    if grouping not in ("require_all", "require_any"):
                        self.warn(f'Dependency "{name}" of "{inst}" has unknown type "{grouping}".')
                        continue
                    entities = pg["props"].get("entities")
                    if entities is None:
                        self.warn(
                            f'"{inst}" is misconfigured ("{name}" dependency lacks "entities" property.)'
                        )
                        continue
                    values = list(entities["values"])
                    if grouping == "require_any" and _multiple(doc, values):
                        print(f"{inst} requires one of:")
                        for v in values:
                            print(f"  {v}")
                        continue
                    for v in values:
                        why = visit(v)
                        if why == "loop":
                            return "loop"
                        if why == "multiple":
                            self.warn(f"{inst} depends on {v}, which has multiple instances.")
                return None
            finally:
                visited[key] = False

        if visit(str(fmri)) == "loop":
            self.warn(f"{fmri}: Dependency cycle detected.")

    # --- -s -----------------------------------------------------------------------------------

    def wait_enabled(self, fmri: Fmri) -> None:
        def check(doc: Doc) -> int | None:
            state = _state(doc, fmri)
            if state in ("online", "degraded"):
                return EXIT_OK
            if state == "maintenance":
                self.warn(f'Instance "{fmri}" is in maintenance state.')
                return EXIT_SVC_FAILURE
            if not repository.enabled(doc, fmri):
                self.warn(f'Instance "{fmri}" has been disabled by another entity.')
                return EXIT_SVC_FAILURE
            if not self.has_potential(doc, fmri, restarter_only=False):
                self.warn(f'Instance "{fmri}" has unsatisfied dependencies.')
                return EXIT_DEP_FAILURE
            return None

        self._wait(fmri, check)

    def wait_disabled(self, fmri: Fmri) -> None:
        def check(doc: Doc) -> int | None:
            if _state(doc, fmri) == "disabled":
                return EXIT_OK
            if repository.enabled(doc, fmri):
                self.warn(f'Instance "{fmri}" has been enabled by another entity.')
                return EXIT_SVC_FAILURE
            if not self.has_potential(doc, fmri, restarter_only=True):
                self.warn(f'Restarter for instance "{fmri}" is unavailable.')
                return EXIT_DEP_FAILURE
            return None

        self._wait(fmri, check)

    def _wait(self, fmri: Fmri, check: Callable[[Doc], int | None]) -> None:
        appeared = time.monotonic() + 10
        while True:
            doc = self.repo.read()
            if repository.entity(doc, fmri) is None:
                self.warn(f'No such instance "{fmri}".')
                self.exit_status = EXIT_SVC_FAILURE
                return
            if _state(doc, fmri) is None:
                # The restarter has not taken the instance in yet.
                if time.monotonic() < appeared:
                    time.sleep(0.05)
                    continue
                self.warn(f'{fmri} is misconfigured (lacks "restarter" property group).')
                self.exit_status = EXIT_SVC_FAILURE
                return
            result = check(doc)
            if result is not None:
                if result == EXIT_SVC_FAILURE or (result and self.exit_status == EXIT_OK):
                    self.exit_status = result
                return
            time.sleep(0.05)

    def has_potential(self, doc: Doc, fmri: Fmri, restarter_only: bool) -> bool:
        """synch.c has_potential: can the instance come online, as far as its
        restarter and dependencies go."""
        general = repository.editing_view(doc, fmri).get("general", {"props": {}})
        restarter = _single(general, "restarter") or STARTD_FMRI
        if not self._fmri_potential(
            doc, restarter, optional=False, exclude=False, is_restarter=True
        ):
            return False
        if restarter_only:
            return True
        for pg in repository.running_view(doc, fmri).values():
            if pg.get("type") != "dependency":
                continue
            grouping, dtype = _single(pg, "grouping"), _single(pg, "type")
            if grouping is None or dtype not in ("path", "service"):
                return True
            entities = list(pg["props"].get("entities", {"values": []})["values"])
            if grouping == "require_any":
                ok = not entities or any(self._potential(doc, e, dtype) for e in entities)
            elif grouping in ("require_all", "optional_all", "exclude_all"):
                ok = all(
                    self._potential(
                        doc, e, dtype, grouping == "optional_all", grouping == "exclude_all"
                    )
                    for e in entities
                )
            else:
                return True
            if not ok:
                return False
        return True

    def _potential(
        self,
        doc: Doc,
        entity: str,
        dtype: str | None,
        optional: bool = False,
        exclude: bool = False,
    ) -> bool:
        if dtype == "path":
            return _file_potential(entity, exclude)
        return self._fmri_potential(doc, entity, optional, exclude, is_restarter=False)

    def _fmri_potential(
        self, doc: Doc, entity: str, optional: bool, exclude: bool, is_restarter: bool
    ) -> bool:
        good = not exclude
        target = _parse(entity)
        if target is not None and target.instance is not None:
            if repository.entity(doc, target) is None:
                return (not is_restarter) and good
            # The devhost's restarter is the daemon: gone when it is not running.
            if (
                is_restarter
                and str(target) == STARTD_FMRI
                and daemon.running_pid(self.state_dir) is None
            ):
                return False
            enabled = repository.enabled(doc, target)
            return self._inst_potential(doc, target, enabled, optional, exclude) != 0
        if target is None or repository.service(doc, target) is None:
            return False if is_restarter else good
        optbad = False
        for inst in _service_instances(doc, target):
            r = self._inst_potential(doc, inst, repository.enabled(doc, inst), optional, exclude)
            if exclude:
                r = 1 if r == 0 else 0
            if r == 1:
                return good
            if optional and r == 0:
                optbad = True
        return exclude or (optional and not optbad)

    def _inst_potential(
        self, doc: Doc, fmri: Fmri, enabled: bool, optional: bool, exclude: bool
    ) -> int:
        if not enabled:
            return 2 if (optional or exclude) else 0
        state = _state(doc, fmri)
        if state is None:
            return 0
        if optional and state == "offline":
            return 2
        if state == "maintenance":
            return 2 if (optional or exclude) else 0
        if exclude:
            return 0
        if state in ("online", "degraded"):
            return 1
        return 1 if self.has_potential(doc, fmri, restarter_only=False) else 0


# --- repository helpers ------------------------------------------------------------------------


def _set(
    pgs: Pgs, pg: str, prop: str, ptype: str, values: list[str], persistent: bool = False
) -> None:
    repository.set_prop(
        pgs, pg, prop, ptype, values, pg_type="framework", nonpersistent=not persistent
    )


def _delete(pgs: Pgs, pg: str, prop: str) -> None:
    group = pgs.get(pg)
    if group is not None:
        group["props"].pop(prop, None)


def _single(pg: Pgs, prop: str) -> str | None:
    p = pg.get("props", {}).get(prop)
    if p is None or len(p["values"]) != 1:
        return None
    value: str = p["values"][0]
    return value


def _instances(doc: Doc) -> list[Fmri]:
    return [
        Fmri(sname, iname)
        for sname, svc in sorted(doc["services"].items())
        for iname in sorted(svc["instances"])
    ]


def _service_instances(doc: Doc, service: Fmri) -> list[Fmri]:
    svc = repository.service(doc, service)
    return [] if svc is None else [Fmri(service.service, i) for i in sorted(svc["instances"])]


def _state(doc: Doc, fmri: Fmri) -> str | None:
    node = repository.entity(doc, fmri)
    if node is None:
        return None
    values = repository.get_values(node["pgs"], "restarter", "state")
    return values[0] if values else None


def _parse(text: str) -> Fmri | None:
    """scf_parse_svc_fmri: optional svc:, an optional / before the service."""
    body = text.removeprefix("svc:")
    if body.startswith("//"):
        body = body[2:]
        slash = body.find("/")
        scope = body[:slash] if slash >= 0 else body
        if scope not in ("", "localhost"):
            return None
        body = body[slash:] if slash >= 0 else ""
    body = body.removeprefix("/")
    service, colon, inst = body.partition(":")
    if not service or (colon and not inst) or "/:properties" in body:
        return None
    try:
        return parse(f"svc:/{service}" + (f":{inst}" if inst else ""))
    except FmriError:
        return None


def _match(doc: Doc, known: list[Fmri], operand: str) -> tuple[list[Fmri], str]:
    """The instances one operand names, and how it named them: exact, service,
    glob or partial."""
    exact = _parse(operand)
    if exact is not None:
        if exact.instance is not None and repository.entity(doc, exact) is not None:
            return [exact], "exact"
        if exact.instance is None and repository.service(doc, exact) is not None:
            return _service_instances(doc, exact), "service"
    if any(c in operand for c in "*?["):
        pattern = operand
        if not (operand.startswith("*") or operand[3:4] == ":"):
            pattern = "svc:/" + operand
        return [f for f in known if fnmatch.fnmatchcase(str(f), pattern)], "glob"
    return [f for f in known if _partial_matches(str(f), operand)], "partial"


def _partial_matches(fmri: str, arg: str) -> bool:
    """scf_cmp_pattern for abbreviations: the first occurrence of arg must start
    on an element boundary and end at the end of the service or instance."""
    at = fmri.find(arg)
    if at < 0 or not arg:
        return False
    if at != 0 and fmri[at - 1] not in "/:" and fmri[at] != ":":
        return False
    end = at + len(arg)
    if end != len(fmri) and fmri[end] != ":" and fmri[end - 1] != ":":
        return False
    return end > 4  # never just "svc:/"


def _instance_of(doc: Doc, text: str) -> tuple[Fmri | None, str | None]:
    """get_inst_mult: the instance text names, or a service's only instance."""
    target = _parse(text)
    if target is None:
        return None, f'FMRI "{text}" is invalid.'
    if target.instance is not None:
        if repository.entity(doc, target) is None:
            return None, f'No such instance "{text}".'
        return target, None
    if repository.service(doc, target) is None:
        return None, f'No such service "{text}".'
    instances = _service_instances(doc, target)
    if not instances:
        return None, f'Service "{text}" has no instances.'
    if len(instances) > 1:
        return None, "multiple"
    return instances[0], None


def _multiple(doc: Doc, entities: list[str]) -> bool:
    count = 0
    for e in entities:
        inst, err = _instance_of(doc, e)
        if err == "multiple":
            return True
        if inst is not None:
            count += 1
    return count > 1


def _file_potential(entity: str, exclude: bool) -> bool:
    good = not exclude
    path = file_path(entity)
    if path is None:
        return good
    try:
        os.stat(path)
        return good
    except PermissionError:
        sys.stderr.write(f'svcadm: Unable to access "{path}".\n')
        return False
    except OSError:
        return not good


def _caller_service(state_dir: Path) -> str | None:
    """my_ct_name: the FMRI of the contract we run in, if a devhost method started us."""
    pid = os.getpid()
    holders: dict[int, str] = {}
    for c in contracts.ContractStore(state_dir).all():
        h = c.holder()
        if h is not None:
            holders[h[0]] = c.fmri
    for _ in range(64):
        st = contracts.proc_stat(pid)
        if st is None or st.ppid <= 1:
            return None
        if st.ppid in holders:
            return holders[st.ppid] or None
        pid = st.ppid
    return None


# --- the command -------------------------------------------------------------------------------


def _usage() -> int:
    sys.stderr.write(USAGE)
    return EXIT_USAGE


def _options(args: list[str], optstring: str) -> tuple[list[tuple[str, str]], list[str]]:
    """getopt() as svcadm and each of its subcommands parse their options, with
    opterr = 0 here (svcadm prints only its usage for a bad one): Usage on an error."""
    opts, rest = getopt("svcadm", args, optstring, report=False)
    if any(o == BAD for o, _ in opts):
        raise Usage
    return opts, rest


def main(argv: list[str], state_dir: Path) -> int:
    adm = Svcadm(state_dir)
    try:
        opts, rest = _options(argv, "S:vZz:")
    except Usage:
        return _usage()
    for o, a in opts:
        if o == "S":
            adm.state_filter = a
        elif o == "v":
            adm.verbose = True
        elif o == "z" and a != "global":
            sys.stderr.write(f"svcadm: invalid zone '{a}'\n")
            return EXIT_FATAL
    if not rest:
        return _usage()
    try:
        return _command(adm, rest[0], rest[1:])
    except Usage:
        return _usage()


def _operands(adm: Svcadm, args: list[str]) -> list[str]:
    if (not args and adm.state_filter is None) or (args and adm.state_filter is not None):
        raise Usage
    return args


def _command(adm: Svcadm, cmd: str, args: list[str]) -> int:
    if cmd == "enable":
        return _enable(adm, args)
    if cmd == "disable":
        return _disable(adm, args)
    if cmd == "restart":
        opts, args = _options(args, "d")
        fmris = adm.walk(_operands(adm, args))
        for fmri in fmris:
            if opts:
                adm.set_action(fmri, "do_dump")
            adm.set_action(fmri, "restart")
    elif cmd == "refresh":
        for fmri in adm.walk(_operands(adm, args)):
            adm.set_action(fmri, "refresh")
    elif cmd == "mark":
        return _mark(adm, args)
    elif cmd == "clear":
        return _clear(adm, args)
    elif cmd == "milestone":
        return _milestone(adm, args)
    else:
        raise Usage
    notify.nudge(adm.state_dir)
    return adm.exit_status


def _enable(adm: Svcadm, args: list[str]) -> int:
    opts, args = _options(args, "rst")
    flags = {o for o, _ in opts}
    fmris = adm.walk(_operands(adm, args))
    # svcadm.c gives scf_walk_fmri its own error for enable: an operand that
    # matches nothing is reported, the others are enabled and -s still waits for
    # them, and the exit status is then 1 whatever the wait said.
    walk_error, adm.exit_status = adm.exit_status, EXIT_OK
    if "r" in flags:
        for fmri in fmris:
            adm.enable_recursive(fmri, "t" in flags)
    elif fmris:
        adm.set_enabled(fmris, True, "t" in flags)
    status = _nudge_and_wait(adm, fmris, adm.wait_enabled if "s" in flags else None)
    return walk_error or status


def _disable(adm: Svcadm, args: list[str]) -> int:
    opts, args = _options(args, "c:st")
    flags = {o for o, _ in opts}
    comment = next((a for o, a in opts if o == "c"), None)
    # For disable the walk's error is the exit status: one that matches nothing
    # stops -s from waiting for the others (svcadm.c).
    fmris = adm.walk(_operands(adm, args))
    if fmris:
        adm.set_enabled(fmris, False, "t" in flags, comment)
    return _nudge_and_wait(adm, fmris, adm.wait_disabled if "s" in flags else None)


def _nudge_and_wait(adm: Svcadm, fmris: list[Fmri], wait: Callable[[Fmri], None] | None) -> int:
    """Tell the restarter, then (for -s) wait for each instance, unless one already failed."""
    notify.nudge(adm.state_dir)
    if wait is not None and adm.exit_status == EXIT_OK:
        for fmri in fmris:
            wait(fmri)
    return adm.exit_status


def _mark(adm: Svcadm, args: list[str]) -> int:
    opts, args = _options(args, "It")
    flags = {o for o, _ in opts}
    if len(args) < 1:
        raise Usage
    target, args = args[0], args[1:]
    if target == "degraded":
        if "t" in flags:
            sys.stderr.write("svcadm: -t may not be used with degraded.\n")
            return EXIT_USAGE
    elif target != "maintenance":
        raise Usage
    fmris = adm.walk(_operands(adm, args))
    doc = adm.repo.read()
    for fmri in fmris:
        if target == "degraded":
            state = _state(doc, fmri)
            if state is None:
                adm.fatal(f'{fmri} is misconfigured (lacks "restarter" property group).')
                continue
            if state != "online":
                adm.fatal(f'Instance "{fmri}" is not online.')
                continue
            adm.set_action(fmri, "degrade_immediate" if "I" in flags else "degraded")
        else:
            if "I" in flags:
                action = "maint_on_immtemp" if "t" in flags else "maint_on_immediate"
            else:
                action = "maint_on_temporary" if "t" in flags else "maint_on"
            adm.set_action(fmri, action)
    notify.nudge(adm.state_dir)
    return adm.exit_status


def _clear(adm: Svcadm, args: list[str]) -> int:
    operands = _operands(adm, args)
    if adm.state_filter is not None and adm.state_filter not in ("maintenance", "degraded"):
        sys.stderr.write("svcadm: State must be 'maintenance' or 'degraded'\n")
        return EXIT_FATAL
    fmris = adm.walk(operands)
    doc = adm.repo.read()
    for fmri in fmris:
        state = _state(doc, fmri)
        if state is None:
            adm.warn(f'{fmri} is misconfigured (lacks "restarter" property group).')
        elif state == "maintenance":
            adm.set_action(fmri, "maint_off")
        elif state == "degraded":
            adm.set_action(fmri, "restore")
        else:
            adm.fatal(f'Instance "{fmri}" is not in a maintenance or degraded state.')
    notify.nudge(adm.state_dir)
    return adm.exit_status


def _milestone(adm: Svcadm, args: list[str]) -> int:
    try:
        opts, args = _options(args, "d")
    except Usage:
        return _milestone_usage()
    if not args:
        return _milestone_usage()
    name = args[0]
    if name not in ("all", "none"):
        for ms in MILESTONES:
            at = ms.find(name)
            end = at + len(name)
            if at >= 0 and (at == 0 or ms[at - 1] == "/") and (end == len(ms) or ms[end] == ":"):
                name = ms
                break
        else:
            sys.stderr.write(f'"{name}" is not a valid major milestone.\n')
            return _milestone_usage()
    # Recorded as on illumos; the devhost restarter does not change milestones.
    fmri = parse(STARTD_FMRI)
    with adm.repo.edit() as doc:
        node = repository.entity(doc, fmri)
        if node is not None:
            if opts:
                _set(node["pgs"], "options", "milestone", "astring", [name], persistent=True)
                _delete(node["pgs"], "options_ovr", "milestone")
            else:
                _set(node["pgs"], "options_ovr", "milestone", "astring", [name])
    notify.nudge(adm.state_dir)
    return adm.exit_status


def _milestone_usage() -> int:
    text = (
        "Usage: svcadm milestone [-d] <milestone>\n\n"
        "\t-d\tmake the specified milestone the default for system boot\n\n"
        "\tMilestones can be specified using an FMRI or abbreviation.\n"
        "\tThe major milestones are as follows:\n\n"
        "\tall\n"
        "\tnone\n"
    )
    sys.stderr.write(text + "".join(f"\t{ms}\n" for ms in MILESTONES))
    return EXIT_USAGE
