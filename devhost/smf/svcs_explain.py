"""svcs(1) -x: explain.c. Why instances are not running, from their restarter state
and, for an offline instance waiting for its dependencies, from the states of those
dependencies (determine_causes, print_dependency_reasons). Imported only for -x."""

from __future__ import annotations

import os
import sys

from devhost.smf import repository as repo
from devhost.smf.fmri import STARTD_FMRI, file_path
from devhost.smf.repository import Doc
from devhost.smf.svcs_common import (
    EXIT_FATAL,
    MAX_STATE,
    MSG_BASE,
    Inst,
    long_time,
    parse_time,
    warn,
)
from devhost.smf.svcs_deps import dependency_groups, prop_values

# illumos's strsignal() texts, by signal name (the restarter records Linux numbers).
SIGNAL_TEXT = {
    "SIGHUP": "Hangup",
    "SIGINT": "Interrupt",
    "SIGQUIT": "Quit",
    "SIGILL": "Illegal Instruction",
    "SIGTRAP": "Trace/Breakpoint Trap",
    "SIGABRT": "Abort",
    "SIGFPE": "Arithmetic Exception",
    "SIGKILL": "Killed",
    "SIGBUS": "Bus Error",
    "SIGSEGV": "Segmentation Fault",
    "SIGSYS": "Bad System Call",
    "SIGPIPE": "Broken Pipe",
    "SIGALRM": "Alarm Clock",
    "SIGTERM": "Terminated",
    "SIGUSR1": "User Signal 1",
    "SIGUSR2": "User Signal 2",
    "SIGCHLD": "Child Status Changed",
    "SIGPWR": "Power-Fail/Restart",
    "SIGWINCH": "Window Size Change",
    "SIGURG": "Urgent Socket Condition",
    "SIGPOLL": "Pollable Event",
    "SIGSTOP": "Stopped (signal)",
    "SIGTSTP": "Stopped (user)",
    "SIGCONT": "Continued",
    "SIGTTIN": "Stopped (tty input)",
    "SIGTTOU": "Stopped (tty output)",
    "SIGVTALRM": "Virtual Timer Expired",
    "SIGPROF": "Profiling Timer Expired",
    "SIGXCPU": "Cpu Limit Exceeded",
    "SIGXFSZ": "File Size Limit Exceeded",
}

SMF_EXIT_ERR_FATAL = 95
SMF_EXIT_ERR_CONFIG = 96


def signal_text(signo: int) -> str | None:
    import signal

    try:
        name = signal.Signals(signo).name
    except ValueError:
        return None
    return SIGNAL_TEXT.get(name)


def method_failure(waitstatus: int, aux_state: str) -> tuple[str, str]:
    """The Reason line for a failed method and its message code, from the raw wait
    status the restarter recorded (explain.c print_method_failure)."""
    repeated = aux_state == "fault_threshold_reached"
    how: str | None = None
    if waitstatus != 0:
        if waitstatus & 0x7F == 0:  # exited
            code = (waitstatus >> 8) & 0xFF
            if code == SMF_EXIT_ERR_CONFIG:
                how = "exited with $SMF_EXIT_ERR_CONFIG"
            elif code == SMF_EXIT_ERR_FATAL:
                how = "exited with $SMF_EXIT_ERR_FATAL"
            else:
                how = f"exited with status {code}"
        elif waitstatus & 0x7F != 0x7F:  # killed by a signal
            sig = waitstatus & 0x7F
            text = signal_text(sig)
            if waitstatus & 0x80:
                how = f"dumped core on {text} ({sig})" if text else f"dumped core signal {sig}"
            else:
                how = f"died on {text} ({sig})" if text else f"died on signal {sig}"
    if how is None:
        reason = "Method failed repeatedly." if repeated else "Method failed."
        return f"Reason: {reason}", "SMF-8000-8Q"
    if repeated:
        return f"Reason: Start method failed repeatedly, last {how}.", "SMF-8000-KS"
    return f"Reason: Start method {how}.", "SMF-8000-KS"


class XInst:
    """An instance as explain.c loads it (only those with a complete restarter group)."""

    def __init__(self, i: Inst) -> None:
        self.i = i
        self.fmri = i.fmri
        direct = i.direct
        self.state = (i.value(direct, "restarter", "state", "astring") or "")[:MAX_STATE]
        self.next_state = (i.value(direct, "restarter", "next_state", "astring") or "")[:MAX_STATE]
        stamp = i.value(direct, "restarter", "state_timestamp", "time")
        self.stime = 0 if stamp is None else (parse_time(stamp) or (0, 0))[0]
        self.aux_state = (
            i.value(direct, "restarter", "auxiliary_state", "astring") or "invalid_aux_state"
        )
        waitstatus = i.value(direct, "restarter", "start_method_waitstatus", "integer")
        self.waitstatus = int(waitstatus) if waitstatus is not None else 0
        self.aux_fmri = i.value(direct, "restarter", "auxiliary_fmri", "astring")
        perm = i.value(i.current, "general", "enabled", "boolean") == "true"
        temp = i.enabled("general_ovr")
        self.enabled = perm if temp is None else temp
        self.temporary = temp is not None and temp != perm
        self.restarter = i.value(i.current, "general", "restarter", "astring") or STARTD_FMRI
        self.dependencies: list[tuple[str, str, list[str]]] = []  # (grouping, type, fmris)
        self.causes: list[XInst] | None = None
        self.next_hop: dict[int, XInst] = {}  # id(cause) -> the dependency it came through
        self.baddeps: list[str] = []
        self.impact_dependents: list[XInst] = []
        self.impact: list[XInst] | None = None
        self.active = False
        self.restarter_bad = ""  # "", "invalid" or "absent"
        self.summary: str | None = None

    @property
    def running(self) -> bool:
        return self.state in ("online", "degraded")


def _complete_restarter(i: Inst) -> bool:
    return all(
        i.value(i.direct, "restarter", p, t) is not None
        for p, t in (("state", "astring"), ("next_state", "astring"), ("state_timestamp", "time"))
    )


class Explainer:
    def __init__(self, doc: Doc, out: list[str], verbose: bool, zone: str | None) -> None:
        self.doc = doc
        self.out = out
        self.verbose = verbose
        self.zone = zone
        self.insts: dict[tuple[str, str], XInst] = {}
        self.services: set[str] = set()  # services with an instance, as explain.c hashes them
        self.g_causes: list[XInst] = []
        self.first = True

    def load(self) -> None:
        for sname, svc in self.doc["services"].items():
            for iname in svc["instances"]:
                self.services.add(sname)
                i = Inst(self.doc, sname, iname)
                if "restarter" not in i.direct:
                    sys.stderr.write(
                        f'svc:/{sname}:{iname} has no "restarter" property group; ignoring.\n'
                    )
                    continue
                if not _complete_restarter(i):
                    continue
                if i.value(i.current, "general", "enabled", "boolean") is None:
                    continue
                x = XInst(i)
                if x.state == "offline" and not self.load_dependencies(x):
                    continue
                self.insts[(sname, iname)] = x

    def load_dependencies(self, x: XInst) -> bool:
        for _, pg in dependency_groups(x.i):
            grouping = x.i.single(pg, "dependency", "grouping", "astring")
            if grouping is None:
                return False
            if grouping not in ("require_all", "require_any", "optional_all", "exclude_all"):
                sys.stderr.write(f'{x.fmri} has dependency with unknown type "{grouping}".\n')
                return False
            dtype = x.i.single(pg, "dependency", "type", "astring")
            if dtype is None:
                return False
            if "entities" not in pg["props"]:
                sys.stderr.write(f"{x.fmri} has dependency without an entities property.\n")
                return False
            x.dependencies.append((grouping, dtype, prop_values(pg, "entities")))
        return True

    def get_fmri(self, fmri: str) -> tuple[str, XInst | None, list[XInst]]:
        """explain.c get_fmri(): ("" | "invalid" | "absent", the instance named, or the
        loaded instances of the service named)."""
        parsed = repo.parse_svc_fmri(fmri)
        if parsed is None or parsed.service is None:
            return "invalid", None, []
        if parsed.service not in self.services:
            return "absent", None, []
        if parsed.instance is not None:
            found = self.insts.get((parsed.service, parsed.instance))
            return ("", found, []) if found is not None else ("absent", None, [])
        return "", None, [x for (s, _), x in self.insts.items() if s == parsed.service]

    def add_causes(self, dst: XInst, src: XInst) -> bool:
        """Merge src's causes into dst's; False on a dependency cycle."""
        if not self.determine_causes(src, can_fail=True):
            sys.stderr.write(f"  {dst.fmri}\n")
            return False
        if dst not in src.impact_dependents:
            src.impact_dependents.append(dst)
        assert src.causes is not None and dst.causes is not None
        for cause in src.causes:
            if cause in dst.causes:
                continue
            dst.causes.append(cause)
            dst.next_hop[id(cause)] = src
            self.add_g_cause(cause)
        return True

    def add_g_cause(self, x: XInst) -> None:
        if x not in self.g_causes:
            self.g_causes.append(x)

    def determine_causes(self, x: XInst, can_fail: bool = False) -> bool:
        """Why x is not running (explain.c determine_causes); False on a cycle when the
        caller can take a failure."""
        if x.active:
            sys.stderr.write(f"Dependency cycle detected:\n  {x.fmri}\n")
            return not can_fail
        if x.causes is not None:
            return True
        x.causes = []
        if x.running or x.state == "uninitialized":
            x.causes.append(x)  # a running service may be excluding another
            return True
        if x.state == "maintenance":
            x.causes.append(x)
            self.add_g_cause(x)
            return True
        if x.state == "disabled":
            x.causes.append(x)
            if x.enabled:
                self.add_g_cause(x)
            return True
        if x.state != "offline":
            sys.stderr.write(f'{x.fmri} has invalid state "{x.state}".\n')
            x.causes.append(x)
            self.add_g_cause(x)
            return True
        if x.next_state != "none":
            x.causes.append(x)
            self.add_g_cause(x)
            return True
        x.active = True
        for grouping, dtype, fmris in x.dependencies:
            if dtype == "path":
                self.file_dependency(x, grouping, fmris)
            elif dtype == "service":
                if not self.service_dependency(x, grouping, fmris):
                    x.active = False
                    return not can_fail
            else:
                sys.stderr.write(f'{x.fmri} has dependency group with invalid type "{dtype}".\n')
        if not x.causes:
            if x.baddeps:
                self.add_g_cause(x)
                x.causes.append(x)
            else:
                status, restarter, _ = self.get_fmri(x.restarter)
                if x.restarter == STARTD_FMRI:
                    status, restarter = "", None  # the emulated svc.startd always runs
                if status == "" and restarter is not None and not restarter.running:
                    if not self.add_causes(x, restarter):
                        x.active = False
                        return not can_fail
                else:
                    x.restarter_bad = status
                    x.causes.append(x)
                    self.add_g_cause(x)
        x.active = False
        return True

    def service_dependency(self, x: XInst, grouping: str, fmris: list[str]) -> bool:
        """One service dependency group; False on a cycle."""
        resolved: list[tuple[str, str, XInst | None, list[XInst]]] = []
        for fmri in fmris:
            status, inst, members = self.get_fmri(fmri)
            if status == "invalid":
                sys.stderr.write(f'{x.fmri} has invalid dependency "{fmri}".\n')
                continue
            resolved.append((fmri, status, inst, members))

        def blocked_by(targets: list[XInst]) -> bool:
            return all(self.add_causes(x, t) for t in targets)

        if grouping == "require_any":
            for _, status, inst, members in resolved:
                if status == "absent":
                    continue
                if any(t.running for t in ([inst] if inst else members)):
                    return True
            for fmri, status, inst, members in resolved:
                if status == "absent":
                    x.baddeps.append(fmri)
                    continue
                targets = [inst] if inst else members
                if not blocked_by([t for t in targets if not t.running]):
                    return False
            return True
        for fmri, status, inst, members in resolved:
            if status == "absent":
                if grouping == "require_all":
                    x.baddeps.append(fmri)
                continue
            targets = [inst] if inst else members
            if grouping == "require_all":
                if inst is None and any(t.running for t in targets):
                    continue
                blocking = [t for t in targets if not t.running]
            elif grouping == "optional_all":
                blocking = [
                    t for t in targets if t.enabled and not (t.running or t.state == "maintenance")
                ]
            else:  # exclude_all
                blocking = [t for t in targets if t.running]
            if not blocked_by(blocking):
                return False
        return True

    def file_dependency(self, x: XInst, grouping: str, fmris: list[str]) -> None:
        missing: list[str] = []
        any_present = False
        for fmri in fmris:
            path = file_path(fmri)
            if path is None:
                sys.stderr.write(f'{x.fmri} has invalid dependency "{fmri}".\n')
                continue
            present = os.path.exists(path)
            if grouping in ("require_all", "optional_all"):
                if not present:
                    x.baddeps.append(fmri)
            elif grouping == "exclude_all":
                if present:
                    x.baddeps.append(fmri)
            elif present:
                any_present = True
            else:
                missing.append(fmri)
        if grouping == "require_any" and not any_present:
            x.baddeps.extend(reversed(missing))

    def determine_impact(self, x: XInst) -> bool:
        if x.active:
            sys.stderr.write(f"Dependency cycle detected:\n  {x.fmri}\n")
            return False
        if x.impact is not None:
            return True
        x.impact = []
        x.active = True
        for dependent in x.impact_dependents:
            if not self.determine_impact(dependent):
                sys.stderr.write(f"  {x.fmri}\n")
                return False
            if dependent not in x.impact:
                x.impact.append(dependent)
            for further in dependent.impact or []:
                if further not in x.impact:
                    x.impact.append(further)
        x.active = False
        return True

    def summary(self, x: XInst) -> str:
        if x.summary is not None:
            return x.summary
        if x.running:
            text = "is running."
        elif x.state == "uninitialized":
            text = "is uninitialized."
        elif x.state == "disabled":
            text = "is temporarily disabled." if x.temporary else "is disabled."
        elif x.state == "offline":
            if x.baddeps:
                text = "has missing dependencies."
            elif x.next_state == "online":
                text = "is starting."
            else:
                text = "is offline."
        elif x.state == "maintenance":
            text = {
                "administrative_request": "was taken down for maintenace by an administrator.",
                "dependency_cycle": "completed a dependency cycle.",
                "fault_threshold_reached": "is not running because a method failed repeatedly.",
                "invalid_dependency": "has an invalid dependency.",
                "invalid_restarter": "has an invalid restarter.",
                "method_failed": "is not running because a method failed.",
                "none": "is not running for an unknown reason.",
                "restarting_too_quickly": "was restarting too quickly.",
            }.get(x.aux_state, "requires maintenance.")
        else:
            text = "is in an invalid state."
        x.summary = text
        return text

    def see(self, code: str) -> None:
        self.out.append(f"   See: {MSG_BASE}{code}\n")

    def dependency_reasons(self, x: XInst) -> None:
        assert x.causes is not None
        if not x.baddeps and len(x.causes) == 1 and x.causes[0] is x:
            if x.restarter_bad == "invalid":
                self.out.append(f'Reason: Restarter "{x.restarter}" is invalid.\n')
                self.see("SMF-8000-2A")
            elif x.restarter_bad == "absent":
                self.out.append(f'Reason: Restarter "{x.restarter}" does not exist.\n')
                self.see("SMF-8000-3P")
            else:
                self.out.append("Reason: Unknown.\n")
                self.see("SMF-8000-AR")
            return
        for fmri in x.baddeps:
            self.out.append(f"Reason: Dependency {fmri} is absent.\n")
            self.see("SMF-8000-E2")
        for cause in x.causes:
            if cause is x:
                break
            if cause.running:
                self.out.append(f"Reason: Service {cause.fmri} is running.\n")
                code = "SMF-8000-FJ"
            else:
                line = f"Reason: Service {cause.fmri} {self.summary(cause)}"
                if len(line) <= 80:
                    self.out.append(line + "\n")
                else:
                    self.out.append(
                        f"Reason: Service {cause.fmri}\n        {self.summary(cause)}\n"
                    )
                code = "SMF-8000-GE"
            self.see(code)
            if self.verbose:
                self.out.append(f"  Path: {x.fmri}\n")
                indent = 1
                hop = x.next_hop.get(id(cause))
                while hop is not None:
                    self.out.append(f"{'':6}  {'':{indent * 2}}{hop.fmri}\n")
                    indent += 1
                    if hop is cause:
                        break
                    hop = hop.next_hop.get(id(cause))

    def reasons(self, x: XInst) -> None:
        code: str | None = None
        if x.state == "online":
            return
        if x.state == "uninitialized":
            if x.restarter == STARTD_FMRI:
                self.out.append(
                    f"Reason: Restarter {x.restarter} has not initialized service state.\n"
                )
                code = "SMF-8000-4D"
            else:
                status, rinst, _ = self.get_fmri(x.restarter)
                if status == "absent":
                    self.out.append(f'Reason: Restarter "{x.restarter}" does not exist.\n')
                    code = "SMF-8000-3P"
                elif status != "ok" or rinst is None:
                    self.out.append(f'Reason: Restarter "{x.restarter}" is invalid.\n')
                    code = "SMF-8000-2A"
                elif rinst.running:
                    self.out.append(
                        f"Reason: Restarter {x.restarter} has not initialized service state.\n"
                    )
                    code = "SMF-8000-4D"
                else:
                    self.out.append(f"Reason: Restarter {x.restarter} is not running.\n")
                    code = "SMF-8000-5H"
        elif x.state == "disabled":
            if x.temporary:
                self.out.append("Reason: Temporarily disabled by an administrator.\n")
                code = "SMF-8000-1S"
            else:
                self.out.append("Reason: Disabled by an administrator.\n")
                code = "SMF-8000-05"
        elif x.state == "maintenance":
            aux = x.aux_state
            if aux == "administrative_request":
                self.out.append("Reason: Maintenance requested by an administrator.\n")
                code = "SMF-8000-63"
            elif aux == "dependency_cycle":
                self.out.append("Reason: Completes a dependency cycle.\n")
                code = "SMF-8000-HP"
            elif aux in ("fault_threshold_reached", "method_failed"):
                line, code = method_failure(x.waitstatus, aux)
                self.out.append(line + "\n")
            elif aux == "service_request":
                if x.aux_fmri:
                    self.out.append(f'Reason: Maintenance requested by "{x.aux_fmri}"\n')
                    parsed = repo.parse_svc_fmri(x.aux_fmri)
                    if parsed is not None and parsed.service and parsed.instance:
                        other = self.insts.get((parsed.service, parsed.instance))
                        if other is not None:
                            self.logs(other.i)
                else:
                    self.out.append("Reason: Maintenance requested by another service.\n")
                code = "SMF-8000-R4"
            elif aux == "invalid_dependency":
                self.out.append("Reason: Has invalid dependency.\n")
                code = "SMF-8000-JA"
            elif aux == "invalid_restarter":
                self.out.append(f'Reason: Restarter "{x.restarter}" is invalid.\n')
                code = "SMF-8000-2A"
            elif aux == "restarting_too_quickly":
                self.out.append("Reason: Restarting too quickly.\n")
                code = "SMF-8000-L5"
            elif aux == "none":
                self.out.append(f"Reason: Restarter {x.restarter} gave no explanation.\n")
                code = "SMF-8000-9C"
            else:
                self.out.append("Reason: Unknown.\n")
                code = "SMF-8000-AR"
        elif x.state == "offline":
            if x.next_state == "online":
                self.out.append("Reason: Start method is running.\n")
                code = "SMF-8000-C4"
            elif x.next_state == "none":
                self.dependency_reasons(x)
                return
            else:
                self.out.append(f"Reason: Transitioning to state {x.next_state}.\n")
                code = "SMF-8000-PH"
        elif x.state == "degraded":
            self.out.append("Reason: Degraded by an administrator.\n")
            code = "SMF-8000-DX"
        else:
            self.out.append(f"Reason: Not in valid state ({x.state}).\n")
            code = "SMF-8000-N3"
        self.see(code)

    def logs(self, i: Inst) -> None:
        for prop in ("alt_logfile", "logfile"):
            value = i.value(i.direct, "restarter", prop, "astring")
            if value is not None:
                self.out.append(f"   See: {value}\n")

    def print_service(self, x: XInst) -> None:
        if not self.first:
            self.out.append("\n")
        self.first = False
        name = x.i.common_name(x.i.current) or "?"
        self.out.append(f"{x.fmri} ({name})\n")
        if self.zone is not None:
            self.out.append(f"  Zone: {self.zone}\n")
        self.out.append(f" State: {x.state} since {long_time(x.stime)}\n")
        self.reasons(x)
        self.logs(x.i)
        self.determine_impact(x)
        impact = x.impact or []
        if not impact:
            self.out.append(
                "Impact: None.\n" if x.running else "Impact: This service is not running.\n"
            )
        elif len(impact) == 1:
            self.out.append(
                "Impact: 1 dependent service is not running:\n"
                if self.verbose
                else "Impact: 1 dependent service is not running.  (Use -v for list.)\n"
            )
        else:
            self.out.append(
                f"Impact: {len(impact)} dependent services are not running:\n"
                if self.verbose
                else f"Impact: {len(impact)} dependent services are not running.  "
                "(Use -v for list.)\n"
            )
        if self.verbose:
            for dependent in impact:
                self.out.append(f"        {dependent.fmri}\n")

    def run(self, operands: list[str]) -> int:
        self.load()
        for x in self.insts.values():
            self.determine_causes(x)
        if operands:
            walked = repo.walk(self.doc, operands, missing_instance=True)
            for msg in walked.errors:
                warn(msg)
            for match in walked.matches:
                assert match.instance is not None
                found = self.insts.get((match.service, match.instance))
                if found is not None:
                    self.print_service(found)
            return EXIT_FATAL if walked.errors else 0
        for x in self.g_causes:
            self.determine_impact(x)
        ordered = sorted(self.g_causes, key=lambda x: -len(x.impact or []))
        for x in ordered:
            self.print_service(x)
        return 0
