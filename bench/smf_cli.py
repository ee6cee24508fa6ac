"""How fast the emulated svcprop and svcs answer: the product polls them, so each
call should cost little more than starting Python.

Sets up a throw-away state directory, imports a manifest with a few dozen
instances through the real `svccfg`, gives every instance a restarter group, then
times `svcprop -p pg/prop FMRI` and `svcs -H -o state FMRI` through the installed
tool scripts, next to a bare `python3 -c pass` from the same interpreter.

Each is timed twice: with byte-code caching, as an installed package runs (the
untimed first run fills a private cache, PYTHONPYCACHEPREFIX, so the checkout is
left alone), and with devhost's modules compiled on every run (a copy of the
package without byte code, under PYTHONDONTWRITEBYTECODE), as in a checkout where
that variable is set. The target is for the first.

    .venv/bin/python bench/smf_cli.py [--runs N] [--instances N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devhost import tools
from devhost.smf.repository import Repository

TARGET_MS = 60.0

HEADER = (
    '<?xml version="1.0"?>\n'
    '<!DOCTYPE service_bundle SYSTEM "/usr/share/lib/xml/dtd/service_bundle.dtd.1">\n'
)


def manifest(instances: int) -> str:
    """One VM-like service with many instances, each with its own property group."""
    inst = "\n".join(
        f"""    <instance name="vm{n}" enabled="true">
      <property_group name="vm" type="application">
        <propval name="ram" type="count" value="{1024 + n}"/>
        <propval name="name" type="astring" value="guest {n}"/>
      </property_group>
    </instance>"""
        for n in range(instances)
    )
    return f"""{HEADER}<service_bundle type="manifest" name="bench">
  <service name="system/bench/vm" type="service" version="1">
    <exec_method type="method" name="start" exec="/bin/true" timeout_seconds="60"/>
    <exec_method type="method" name="stop" exec=":kill" timeout_seconds="60"/>
    <property_group name="vm" type="application">
      <propval name="ram" type="count" value="512"/>
      <propval name="cpus" type="count" value="2"/>
    </property_group>
{inst}
  </service>
</service_bundle>
"""


def play_restarter(state: Path) -> None:
    """Write an online restarter group for every instance, as svc.startd would."""
    now = f"{time.time():.6f}"
    with Repository(state).edit() as doc:
        for svc in doc["services"].values():
            for ctid, inst in enumerate(svc["instances"].values(), start=1):
                inst["pgs"]["restarter"] = {
                    "type": "framework",
                    "nonpersistent": True,
                    "props": {
                        "state": {"type": "astring", "values": ["online"]},
                        "next_state": {"type": "astring", "values": ["none"]},
                        "state_timestamp": {"type": "time", "values": [now]},
                        "contract": {"type": "count", "values": [str(ctid)]},
                    },
                }


def cached_env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def uncached_env(scratch: Path) -> dict[str, str]:
    """devhost imported from a byte-code-free copy that stays so; the standard
    library keeps its own cache."""
    src = Path(tools.__file__).parent
    shutil.copytree(src, scratch / "devhost", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPYCACHEPREFIX"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(scratch), env.get("PYTHONPATH")]))
    return env


def median_ms(argv: list[str], runs: int, env: dict[str, str]) -> tuple[float, str]:
    """Median wall time of running argv, and its output (from an untimed first run)."""
    first = subprocess.run(argv, capture_output=True, text=True, check=True, env=env)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True, env=env)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), first.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--instances", type=int, default=40)
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="smfbench"))
    try:
        bin_dir = tools.install(state)
        path = state / "bench.xml"
        path.write_text(manifest(args.instances))
        subprocess.run([str(bin_dir / "svccfg"), "import", str(path)], check=True)
        play_restarter(state)
        fmri = f"svc:/system/bench/vm:vm{args.instances // 2}"

        cases = [
            ("python3 -c pass", [sys.executable, "-c", "pass"]),
            ("svcprop -p vm/ram FMRI", [str(bin_dir / "svcprop"), "-p", "vm/ram", fmri]),
            ("svcs -H -o state FMRI", [str(bin_dir / "svcs"), "-H", "-o", "state", fmri]),
        ]
        cached = cached_env(state / "pycache")
        fresh = uncached_env(state / "src")
        print(f"{args.instances} instances, median of {args.runs} runs each ({fmri})")
        print(f"  {'':<26} {'cached':>10} {'no .pyc':>10}")
        worst = 0.0
        for label, argv in cases:
            ms, out = median_ms(argv, args.runs, cached)
            ms_fresh, _ = median_ms(argv, args.runs, fresh)
            shown = f"-> {out!r}" if out else ""
            print(f"  {label:<26} {ms:7.1f} ms {ms_fresh:7.1f} ms  {shown}")
            if label != "python3 -c pass":
                worst = max(worst, ms)
        verdict = "ok" if worst <= TARGET_MS else "OVER"
        print(f"  target {TARGET_MS:.0f} ms per tool call (cached): {verdict}")
        return 0 if worst <= TARGET_MS else 1
    finally:
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
