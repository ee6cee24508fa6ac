"""A state directory with the svccfg/svcs/svcprop scripts and no restarter, for the
conformance tests of those tools: the tests play the restarter by writing its
property group into the repository themselves."""

from __future__ import annotations

import os
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

import attrs

from devhost import tools
from devhost.smf.repository import Repository

MANIFESTS = Path(__file__).parent / "manifests"

HEADER = (
    '<?xml version="1.0"?>\n'
    '<!DOCTYPE service_bundle SYSTEM "/usr/share/lib/xml/dtd/service_bundle.dtd.1">\n'
)

RESTARTER_TYPES = {
    "state": "astring",
    "next_state": "astring",
    "state_timestamp": "time",
    "contract": "count",
    "start_pid": "count",
    "auxiliary_state": "astring",
    "logfile": "astring",
    "start_method_waitstatus": "integer",
    "start_method_timestamp": "time",
}


def bundle(body: str, name: str = "test") -> str:
    """A service_bundle manifest around body (service elements)."""
    inner = textwrap.indent(textwrap.dedent(body).strip("\n"), "  ")
    return f'{HEADER}<service_bundle type="manifest" name="{name}">\n{inner}\n</service_bundle>\n'


def simple_service(name: str, extra: str = "", enabled: str = "true") -> str:
    """A service with a default instance and trivial start/stop methods."""
    return f"""
    <service name="{name}" type="service" version="1">
      <create_default_instance enabled="{enabled}"/>
      <exec_method type="method" name="start" exec="/bin/true" timeout_seconds="30"/>
      <exec_method type="method" name="stop" exec=":true" timeout_seconds="30"/>
      {extra}
    </service>
    """


@attrs.frozen
class Cli:
    state: Path

    @property
    def repo(self) -> Repository:
        return Repository(self.state)

    def run(
        self, tool: str, *args: str, input: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run one of the installed tool scripts; times print in UTC."""
        return subprocess.run(
            [str(tools.bin_dir(self.state) / tool), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env={**os.environ, "TZ": "UTC", "LC_ALL": "C", **(env or {})},
        )

    def ok(self, tool: str, *args: str, input: str | None = None) -> str:
        """stdout of a run that must succeed silently on stderr."""
        proc = self.run(tool, *args, input=input)
        assert proc.returncode == 0 and proc.stderr == "", (
            f"{tool} {' '.join(args)} exited {proc.returncode}\n{proc.stdout}{proc.stderr}"
        )
        return proc.stdout

    def write(self, name: str, text: str) -> Path:
        path = self.state / name
        path.write_text(text)
        return path

    def import_(self, xml: str, name: str = "manifest.xml") -> Path:
        path = self.write(name, xml)
        self.ok("svccfg", "import", str(path))
        return path

    def restarter(
        self,
        fmri: str,
        state: str,
        next_state: str = "none",
        since: float | None = None,
        **extra: Any,
    ) -> None:
        """Write the restarter property group of an instance, as svc.startd would."""
        service, instance = fmri.removeprefix("svc:/").split(":")
        stamp = time.time() if since is None else since
        props: dict[str, Any] = {
            "state": state,
            "next_state": next_state,
            "state_timestamp": f"{stamp:.6f}",
            **extra,
        }
        with self.repo.edit() as doc:
            node = doc["services"][service]["instances"][instance]
            pg = node["pgs"].setdefault(
                "restarter", {"type": "framework", "nonpersistent": True, "props": {}}
            )
            for name, value in props.items():
                pg["props"][name] = {"type": RESTARTER_TYPES[name], "values": [str(value)]}

    def pgs(self, fmri: str) -> dict[str, Any]:
        """The directly attached property groups of a service or instance."""
        svc = fmri.removeprefix("svc:/")
        service, _, instance = svc.partition(":")
        node = self.repo.read()["services"][service]
        if instance:
            node = node["instances"][instance]
        result: dict[str, Any] = node["pgs"]
        return result

    def snapshots(self, fmri: str) -> dict[str, Any]:
        service, instance = fmri.removeprefix("svc:/").split(":")
        result: dict[str, Any] = self.repo.read()["services"][service]["instances"][instance][
            "snapshots"
        ]
        return result


def make_cli(tmp_path: Path) -> Cli:
    state = tmp_path / "state"
    state.mkdir()
    tools.install(state)
    return Cli(state)


DEMO = "svc:/site/demo:default"


def demo_cli(tmp_path: Path) -> Cli:
    """The emulated tools with the demo service (manifests/demo.xml) imported."""
    cli = make_cli(tmp_path)
    cli.ok("svccfg", "import", str(MANIFESTS / "demo.xml"))
    return cli
