"""`devhost up|down|status|env`: bring a simulated illumos host up and down.

`up` is a boot: the kernel (physical memory, the ARC as arc_init() leaves it) is
written afresh, the pool is created or imported again, the run directory starts
empty, non-persistent SMF properties are dropped and the restarter starts.
`down` is a shutdown: the restarter stops every instance (stop methods, then
contracts killed) and exits, the pool is exported, and zfs-fuse stops if this
code started it and no pool is left. Devhosts with different state directories
are independent.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from devhost import tools, zfspool
from devhost.kernel import arc
from devhost.smf.startd import daemon as startd

MARKER = "devhost.json"  # present while the devhost is up
CONFIG = "vmbundle.toml"

# QEMU refuses UNIX socket paths of 108 bytes or more; the longest guest name is 63.
_LONGEST_GUEST = "g" * 63


class DevhostError(Exception):
    pass


def default_state_dir() -> Path:
    env = os.environ.get("DEVHOST_STATE")
    # Short on purpose: the run directory beneath it holds QEMU's sockets.
    return Path(env) if env else Path(f"/var/tmp/devhost-{os.getuid()}")


# --- pieces -------------------------------------------------------------------------


def run_dir_for(state_dir: Path) -> Path:
    """`<state>/run`, or a short directory under /tmp when that would make a
    guest's socket paths too long."""
    from vmbundle.guest.rundir import RunPaths

    preferred = state_dir / "run"
    if not RunPaths.for_guest(preferred, _LONGEST_GUEST).too_long():
        return preferred
    return Path("/tmp") / f"dh-{zfspool.pool_for(state_dir).name[2:]}"


def machine_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def parse_bytes(text: str) -> int:
    """Bytes from "16G", "512M" or a plain number."""
    from vmbundle.units import parse_size

    if text.isdigit():
        return int(text)
    try:
        return parse_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: not a size like 16G, 512M or 1048576"
        ) from None


def _fresh_run_dir(state_dir: Path) -> Path:
    run_dir = run_dir_for(state_dir)
    link = state_dir / "run"
    _remove_run_dir(state_dir)
    run_dir.mkdir(mode=0o755, parents=True)
    if run_dir != link:
        link.symlink_to(run_dir)
    return run_dir


def _remove_run_dir(state_dir: Path) -> None:
    # Like /var/run, which is swap-backed on illumos: nothing in it outlives a boot.
    link = state_dir / "run"
    run_dir = run_dir_for(state_dir)
    if link.is_symlink():
        link.unlink()
    if run_dir.is_dir() and not run_dir.is_symlink():
        shutil.rmtree(run_dir)


def write_config(state_dir: Path, pool: zfspool.DevhostPool, run_dir: Path) -> Path:
    path = state_dir / CONFIG
    text = (
        "# Written by `devhost up`: the host configuration of this devhost.\n"
        "[bundles]\n"
        f"roots = [{json.dumps(str(pool.vms))}]\n"
        f"iso_dirs = [{json.dumps(str(pool.iso))}]\n"
        "\n[run]\n"
        f"dir = {json.dumps(str(run_dir))}\n"
        "\n[smf]\n"
        f"manifest_dir = {json.dumps(str(state_dir / 'var/svc/manifest/site/vmbundle'))}\n"
        # Any free port: devhosts run side by side; the controller says which.
        "\n[web]\n"
        "port = 0\n"
    )
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def read_marker(state_dir: Path) -> dict[str, Any] | None:
    try:
        doc: dict[str, Any] = json.loads((state_dir / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return doc


def is_up(state_dir: Path) -> bool:
    marker = read_marker(state_dir)
    if marker is None or marker.get("pool") not in zfspool.imported_pools():
        return False
    if not marker.get("smf"):
        return True  # up --no-smf
    return startd.running_pid(state_dir) is not None


# --- commands -----------------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    state_dir: Path = args.state.absolute()
    state_dir.mkdir(parents=True, exist_ok=True)
    if is_up(state_dir):
        print(f"devhost {state_dir} is already up; nothing to do")
        return 0
    smf = not args.no_smf
    previous = _previous_kernel(state_dir)
    physmem = args.physmem or (previous.physmem if previous else machine_memory())
    speed = args.arc_shrink_speed
    if speed is None:
        speed = previous.arc.shrink_speed if previous else arc.DEFAULT_SHRINK_SPEED
    kernel = arc.boot(state_dir, physmem, shrink_speed=speed)
    tools.install(state_dir)
    pool = zfspool.pool_up(state_dir, args.pool_size)
    try:
        run_dir = _fresh_run_dir(state_dir)
        config = write_config(state_dir, pool, run_dir)
        pid = None
        if smf:
            from devhost.smf.repository import Repository

            Repository(state_dir).boot()
            pid = startd.spawn(state_dir)
    except BaseException:
        zfspool.pool_down(state_dir)
        raise
    marker = {"pool": pool.name, "run_dir": str(run_dir), "smf": smf}
    marker["booted"] = kernel.boot_time
    (state_dir / MARKER).write_text(json.dumps(marker) + "\n")
    print(f"devhost {state_dir} is up")
    print(f"  pool        {pool.name}: bundles in {pool.vms}, ISOs in {pool.iso}")
    print(f"  physmem     {_gib(kernel.physmem)}; ARC c_max {_gib(kernel.arc.c_max)}")
    print(f"  restarter   {f'pid {pid}' if pid else 'none (--no-smf)'}")
    print(f"  run dir     {run_dir}")
    print(f"  config      {config}")
    print(f'Use it with: eval "$(devhost env --state {shlex.quote(str(state_dir))})"')
    if run_dir != state_dir / "run":
        print(f"  ({state_dir / 'run'} is too long for QEMU's socket paths: using {run_dir})")
    return 0


def _previous_kernel(state_dir: Path) -> arc.Kernel | None:
    try:
        return arc.read(state_dir)
    except (arc.KernelMissing, ValueError, KeyError, TypeError):
        return None


def cmd_down(args: argparse.Namespace) -> int:
    state_dir: Path = args.state.absolute()
    if not state_dir.is_dir():
        print(f"devhost {state_dir} does not exist; nothing to do")
        return 0
    if startd.running_pid(state_dir) is not None:
        startd.shutdown(state_dir)
        print("restarter: every instance stopped; the restarter exited")
    for line in zfspool.pool_down(state_dir):
        print(line)
    _remove_run_dir(state_dir)
    (state_dir / MARKER).unlink(missing_ok=True)
    print(f"devhost {state_dir} is down")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    state_dir: Path = args.state.absolute()
    marker = read_marker(state_dir)
    pool = zfspool.pool_for(state_dir)
    print(f"state       {state_dir}")
    print(f"up          {'yes' if is_up(state_dir) else 'no'}")
    pid = startd.running_pid(state_dir)
    if pid is not None:
        print(f"restarter   pid {pid}")
    elif marker is not None and not marker.get("smf"):
        print("restarter   none (--no-smf)")
    else:
        print("restarter   not running")
    health = zfspool.pool_health(pool.name)
    print(
        f"pool        {pool.name} {health or 'not imported'}" + (f", {pool.vms}" if health else "")
    )
    zfs_pid = zfspool.started_daemon_pid(state_dir)
    shared = zfspool.daemon_answers()
    if zfs_pid:
        print(f"zfs-fuse    pid {zfs_pid}, started by this devhost")
    else:
        print(f"zfs-fuse    {'running' if shared else 'not running'}")
    try:
        kernel = arc.read(state_dir)
    except arc.KernelMissing:
        print("kernel      never booted")
    else:
        now = time.time()
        a = kernel.arc
        print(f"physmem     {_gib(kernel.physmem)} ({kernel.physmem_pages} pages)")
        print(
            f"ARC         size {_gib(a.size_now(now))}, c {_gib(a.c)}, "
            f"c_min {_gib(a.c_min)}, c_max {_gib(a.c_max)}"
        )
    print(f"instances   {_instance_summary(state_dir)}")
    if marker:
        print(f"run dir     {marker.get('run_dir')}")
    return 0


def _instance_summary(state_dir: Path) -> str:
    from devhost.smf import repository

    doc = repository.Repository(state_dir).read()
    states: dict[str, int] = {}
    total = 0
    for svc in doc["services"].values():
        for inst in svc["instances"].values():
            total += 1
            values = repository.get_values(inst["pgs"], "restarter", "state")
            state = values[0] if values else "uninitialized"
            states[state] = states.get(state, 0) + 1
    detail = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    return f"{total}" + (f" ({detail})" if detail else "")


def cmd_env(args: argparse.Namespace) -> int:
    state_dir: Path = args.state.absolute()
    print(f'export PATH={shlex.quote(str(tools.bin_dir(state_dir)))}:"$PATH"')
    print(f"export VMBUNDLE_CONFIG={shlex.quote(str(state_dir / CONFIG))}")
    print(f"export DEVHOST_STATE={shlex.quote(str(state_dir))}")
    return 0


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="devhost", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    state = argparse.ArgumentParser(add_help=False)
    state.add_argument(
        "--state",
        type=Path,
        default=default_state_dir(),
        help="the devhost's state directory (default $DEVHOST_STATE or /var/tmp/devhost-UID)",
    )
    up = sub.add_parser("up", parents=[state], help="boot the devhost")
    up.add_argument("--physmem", type=parse_bytes, help="physical memory (default: this machine's)")
    up.add_argument(
        "--arc-shrink-speed",
        type=parse_bytes,
        help="bytes per second the ARC evicts towards its target; 0: never (default 2G)",
    )
    up.add_argument(
        "--pool-size",
        type=parse_bytes,
        default=zfspool.DEFAULT_POOL_SIZE,
        help="size of the sparse pool file, when it is created (default 8G)",
    )
    up.add_argument(
        "--no-smf",
        action="store_true",
        help="no restarter: kernel, tools and pool only (the svc* tools still edit the "
        "repository, but nothing acts on it)",
    )
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", parents=[state], help="shut the devhost down")
    down.set_defaults(func=cmd_down)
    status = sub.add_parser("status", parents=[state], help="what runs")
    status.set_defaults(func=cmd_status)
    env = sub.add_parser("env", parents=[state], help='shell lines for eval "$(devhost env)"')
    env.set_defaults(func=cmd_env)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.func(args)
    except (DevhostError, zfspool.ZfsError, OSError) as exc:
        print(f"devhost: {exc}", file=sys.stderr)
        return 1
    return status
