"""A devhost with only SMF: a state directory, the tool scripts and a running
restarter, for the restarter's and svcadm's conformance tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import textwrap
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from devhost import tools
from devhost.smf import contracts, notify, repository
from devhost.smf.fmri import Fmri, parse
from devhost.smf.repository import Repository
from devhost.smf.startd import daemon
from devhost.smf.startd.instance import log_path

PropSpec = dict[str, tuple[str, list[str]]]  # prop -> (type, values)


@attrs.frozen
class Dep:
    """A dependency property group."""

    name: str
    entities: tuple[str, ...]
    grouping: str = "require_all"
    restart_on: str = "none"
    type: str = "service"


@attrs.define
class SmfHost:
    state: Path

    @property
    def bin(self) -> Path:
        return tools.bin_dir(self.state)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "PATH": f"{self.bin}:{os.environ.get('PATH', '/usr/bin:/bin')}"}

    @property
    def repo(self) -> Repository:
        return Repository(self.state)

    def run(
        self, *argv: str, check: bool = True, timeout: float = 60, stdin: Any = subprocess.DEVNULL
    ) -> subprocess.CompletedProcess[str]:
        """Run a command with the devhost's tools first on PATH."""
        proc = subprocess.run(
            list(argv), env=self.env, capture_output=True, text=True, timeout=timeout, stdin=stdin
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {proc.returncode}\n{proc.stdout}{proc.stderr}"
            )
        return proc

    # --- services --------------------------------------------------------------------------

    def script(self, name: str, body: str) -> Path:
        """An executable sh script in the state directory."""
        path = self.state / name
        path.write_text("#!/bin/sh\n" + textwrap.dedent(body).lstrip("\n"))
        path.chmod(0o755)
        return path

    def add(
        self,
        fmri: str,
        start: str = ":true",
        stop: str | None = ":kill",
        refresh: str | None = None,
        *,
        enabled: bool = True,
        timeout: int = 10,
        duration: str | None = None,
        startd: PropSpec | None = None,
        deps: tuple[Dep, ...] = (),
        pgs: dict[str, tuple[str, PropSpec]] | None = None,
        method_props: dict[str, PropSpec] | None = None,
        env: dict[str, dict[str, str]] | None = None,
        workdir: dict[str, str] | None = None,
        raw: bool = False,
    ) -> Fmri:
        """Create a service with one instance: by `svccfg import` of a manifest
        written for it, or (raw) straight into the repository, for properties a
        manifest cannot say. env (method -> NAME -> value) and workdir (method ->
        directory) make a method_context."""
        f = parse(fmri)
        methods = {"start": start, "stop": stop, "refresh": refresh}
        startd = dict(startd or {})
        if duration is not None:
            startd["duration"] = ("astring", [duration])
        if not raw:
            context: dict[str, dict[str, Any]] = {"env": env or {}, "workdir": workdir or {}}
            xml = manifest_xml(f, methods, enabled, timeout, startd, deps, pgs or {}, context)
            path = self.state / f"{f.service.replace('/', '-')}-{f.instance}.xml"
            path.write_text(xml)
            self.run(str(self.bin / "svccfg"), "import", str(path))
            return f
        assert not env and not workdir, "a method_context needs a manifest"
        with self.repo.edit() as doc:
            repository.add_instance(doc, f)
            svc = repository.service(doc, f)
            assert svc is not None
            spgs = svc["pgs"]
            for name, exec_ in methods.items():
                if exec_ is None:
                    continue
                _prop(spgs, name, "exec", "astring", [exec_], "method")
                _prop(spgs, name, "timeout_seconds", "count", [str(timeout)], "method")
                _prop(spgs, name, "type", "astring", ["method"], "method")
                for prop, (ptype, values) in (method_props or {}).get(name, {}).items():
                    _prop(spgs, name, prop, ptype, values, "method")
            for prop, (ptype, values) in startd.items():
                _prop(spgs, "startd", prop, ptype, values, "framework")
            for dep in deps:
                _prop(spgs, dep.name, "grouping", "astring", [dep.grouping], "dependency")
                _prop(spgs, dep.name, "restart_on", "astring", [dep.restart_on], "dependency")
                _prop(spgs, dep.name, "type", "astring", [dep.type], "dependency")
                _prop(spgs, dep.name, "entities", "fmri", list(dep.entities), "dependency")
            for pgname, (pgtype, props) in (pgs or {}).items():
                for prop, (ptype, values) in props.items():
                    _prop(spgs, pgname, prop, ptype, values, pgtype)
            inst = repository.entity(doc, f)
            assert inst is not None
            _prop(inst["pgs"], "general", "enabled", "boolean", [str(enabled).lower()], "framework")
            repository.take_snapshot(doc, f, "running")
        notify.nudge(self.state)
        return f

    def setprop(self, fmri: str | Fmri, pg: str, prop: str, ptype: str, values: list[str]) -> None:
        """Change an editing property of the service, as svccfg setprop does."""
        f = parse(fmri) if isinstance(fmri, str) else fmri
        with self.repo.edit() as doc:
            svc = repository.service(doc, f)
            assert svc is not None
            group = svc["pgs"].setdefault(pg, repository.new_pg("application"))
            group["props"][prop] = {"type": ptype, "values": values}

    # --- looking -----------------------------------------------------------------------------

    def props(self, fmri: str | Fmri, pg: str = "restarter") -> dict[str, list[str]]:
        f = parse(fmri) if isinstance(fmri, str) else fmri
        node = repository.entity(self.repo.read(), f)
        assert node is not None, f"no instance {f}"
        group = node["pgs"].get(pg, {"props": {}})
        return {name: list(p["values"]) for name, p in group["props"].items()}

    def state_of(self, fmri: str | Fmri) -> str | None:
        values = self.props(fmri).get("state")
        return values[0] if values else None

    def wait_state(
        self, fmri: str | Fmri, state: str, timeout: float = 10, settled: bool = True
    ) -> None:
        """Wait until the instance is in state (and not transitioning, if settled)."""
        deadline = time.monotonic() + timeout
        while True:
            p = self.props(fmri)
            if p.get("state") == [state] and (not settled or p.get("next_state") == ["none"]):
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{fmri} is {p.get('state')}/{p.get('next_state')}, not {state}\n"
                    f"--- instance log\n{self.log(fmri)}--- restarter log\n{self.daemon_log()}"
                )
            time.sleep(0.02)

    def wait_for(self, what: str, predicate: Any, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{self.daemon_log()}")
            time.sleep(0.02)

    def wait_looked(self, timeout: float = 10) -> None:
        """Wait until the restarter has made a whole pass over the instances that
        began after this call, so that what it would do about anything done before
        (start, stop, go to maintenance) it has begun: a test can then assert that
        nothing happened. Nudged, so that it takes milliseconds, not a poll second."""
        target = daemon.passes(self.state) + 2
        deadline = time.monotonic() + timeout
        nudged_at = -1
        while (done := daemon.passes(self.state)) < target:
            if done != nudged_at:
                notify.nudge(self.state)
                nudged_at = done
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the restarter made {done} passes, not {target}\n{self.daemon_log()}"
                )
            time.sleep(0.005)

    def log(self, fmri: str | Fmri) -> str:
        f = parse(fmri) if isinstance(fmri, str) else fmri
        path = log_path(self.state, f)
        return path.read_text() if path.exists() else ""

    def log_lines(self, fmri: str | Fmri) -> list[str]:
        """svc.startd's own lines in the instance log, without their time stamps."""
        return [
            stamp_text(line)
            for line in self.log(fmri).splitlines()
            if line.startswith("[ ") and line.endswith(" ]")
        ]

    def daemon_log(self) -> str:
        path = daemon.log_file(self.state)
        return path.read_text() if path.exists() else ""

    def contract(self, fmri: str | Fmri) -> int:
        return int(self.props(fmri)["contract"][0])

    def members(self, fmri: str | Fmri) -> list[int]:
        return contracts.processes(self.state, self.contract(fmri))

    def svcadm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.bin / "svcadm"), *args, check=check)


def manifest_xml(
    f: Fmri,
    methods: dict[str, str | None],
    enabled: bool,
    timeout: int,
    startd: PropSpec,
    deps: tuple[Dep, ...],
    pgs: dict[str, tuple[str, PropSpec]],
    context: dict[str, dict[str, Any]],
) -> str:
    """A service manifest (service_bundle.dtd.1) for one service and instance."""
    bundle = ET.Element("service_bundle", type="manifest", name=f.service)
    svc = ET.SubElement(bundle, "service", name=f.service, type="service", version="1")
    for dep in deps:
        d = ET.SubElement(
            svc, "dependency", name=dep.name, grouping=dep.grouping,
            restart_on=dep.restart_on, type=dep.type,
        )  # fmt: skip
        for entity in dep.entities:
            ET.SubElement(d, "service_fmri", value=entity)
    for name, exec_ in methods.items():
        if exec_ is None:
            continue
        m = ET.SubElement(
            svc, "exec_method", type="method", name=name, exec=exec_, timeout_seconds=str(timeout)
        )
        env, workdir = context["env"].get(name), context["workdir"].get(name)
        if env or workdir:
            ctx = ET.SubElement(m, "method_context")
            if workdir:
                ctx.set("working_directory", workdir)
            if env:
                envs = ET.SubElement(ctx, "method_environment")
                for var, value in env.items():
                    ET.SubElement(envs, "envvar", name=var, value=value)
    groups = dict(pgs)
    if startd:
        groups["startd"] = ("framework", startd)
    for pgname, (pgtype, props) in groups.items():
        g = ET.SubElement(svc, "property_group", name=pgname, type=pgtype)
        for prop, (ptype, values) in props.items():
            if len(values) == 1:
                ET.SubElement(g, "propval", name=prop, type=ptype, value=values[0])
            else:
                p = ET.SubElement(g, "property", name=prop, type=ptype)
                lst = ET.SubElement(p, f"{ptype}_list")
                for v in values:
                    ET.SubElement(lst, "value_node", value=v)
    ET.SubElement(svc, "instance", name=f.instance or "default", enabled=str(enabled).lower())
    ET.indent(bundle)
    return (
        '<?xml version="1.0"?>\n'
        '<!DOCTYPE service_bundle SYSTEM "/usr/share/lib/xml/dtd/service_bundle.dtd.1">\n'
        + ET.tostring(bundle, encoding="unicode")
        + "\n"
    )


def _prop(pgs: Any, pg: str, prop: str, ptype: str, values: list[str], pgtype: str) -> None:
    repository.set_prop(pgs, pg, prop, ptype, values, pg_type=pgtype)


def stamp_text(line: str) -> str:
    """The text of a `[ Mon DD HH:MM:SS text ]` line."""
    return line[2:-2].split(None, 3)[3]


@contextlib.contextmanager
def smf_host(subdir: str | None = None) -> Iterator[SmfHost]:
    """A running restarter on a fresh state directory under /tmp (in subdir of it,
    when given: for long state paths)."""
    top = Path(tempfile.mkdtemp(prefix="dh", dir="/tmp"))
    state = top / subdir if subdir else top
    state.mkdir(parents=True, exist_ok=True)
    host = SmfHost(state)
    try:
        tools.install(state)
        daemon.spawn(state)
        yield host
    finally:
        tear_down(state)
        shutil.rmtree(top, ignore_errors=True)


def tear_down(state: Path) -> None:
    """Stop the restarter and everything it started, by pid, and remove the state."""
    try:
        daemon.shutdown(state, timeout=20)
    finally:
        pid = daemon.running_pid(state)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        contracts.kill_all(state, grace=2)
        for c in contracts.ContractStore(state).all():
            h = c.holder()
            if h is not None and contracts.alive(*h):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(h[0], signal.SIGKILL)
        shutil.rmtree(state, ignore_errors=True)
