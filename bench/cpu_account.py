"""Where a storm's CPU went: the host's busy CPU-seconds over a window (from
/proc/stat), split by who spent them, from /proc/PID/stat of every process at
both ends of the window.

On two cores a storm cannot end sooner than its CPU-seconds over two, so this
says how much of a ratio is simply work, and whose. A process that ended
inside the window is counted through its parent (cutime/cstime, once reaped):
a start method through its contract holder, the controller's tools through the
controller, the bench's svcadm through the bench.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

TICK = os.sysconf("SC_CLK_TCK")


class Proc(NamedTuple):
    started: int  # clock ticks since boot: tells a reused pid apart
    own: int  # utime + stime, ticks
    children: int  # cutime + cstime: reaped descendants, ticks
    kind: str


def kind_of(pid: int, comm: str) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return comm
    words = b" ".join(argv)
    if comm.startswith("qemu-system"):
        return "QEMU"
    if b"holder.py" in words:
        return "holder"
    if b"vmbundle-controller" in words or b"vmbundle.controller" in words:
        return "controller"
    if b"startd" in words:
        return "restarter"
    if comm == "zfs-fuse":
        return "zfs-fuse"
    if pid == os.getpid():
        return "bench"
    return "other"


def snapshot() -> dict[int, Proc]:
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        f = raw[raw.rindex(")") + 2 :].split()
        # fields after comm: state=0 ... utime=11 stime=12 cutime=13 cstime=14 starttime=19
        own, children = int(f[11]) + int(f[12]), int(f[13]) + int(f[14])
        out[pid] = Proc(int(f[19]), own, children, kind_of(pid, comm))
    return out


def host_busy() -> int:
    """Busy ticks of all CPUs since boot (everything but idle and iowait)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4]


class Window:
    """Begin before the storm; end() right as it is done."""

    def __init__(self) -> None:
        self.busy = host_busy()
        self.procs = snapshot()

    def end(self) -> dict[str, float]:
        """Seconds of CPU by kind ("start methods": the holders' reaped children;
        "host": the host's whole busy time, every CPU)."""
        busy = host_busy() - self.busy
        now = snapshot()
        spent: dict[str, float] = {}
        for pid, p in now.items():
            before = self.procs.get(pid)
            if before is not None and before.started != p.started:
                before = None
            own = p.own - (before.own if before else 0)
            children = p.children - (before.children if before else 0)
            spent[p.kind] = spent.get(p.kind, 0.0) + own / TICK
            child_kind = {
                "holder": "start methods",
                "controller": "controller's tools",
                "bench": "bench's svcadm",
                "restarter": "restarter's children",
            }.get(p.kind, f"{p.kind}'s children")
            if children:
                spent[child_kind] = spent.get(child_kind, 0.0) + children / TICK
        spent["host"] = busy / TICK
        return spent


def report(spent: list[dict[str, float]], wall_s: float, cores: int) -> list[str]:
    """Lines: the median of each kind over the windows."""
    kinds = sorted({k for s in spent for k in s if k != "host"})

    def median(k: str) -> float:
        values = sorted(s.get(k, 0.0) for s in spent)
        return values[(len(values) - 1) // 2]

    host = median("host")
    lines = [
        f"  CPU: {host:.2f} s busy on {cores} cores in {wall_s:.2f} s "
        f"(at least {host / cores:.2f} s of wall time on {cores} cores)"
    ]
    counted = 0.0
    for k in sorted(kinds, key=lambda k: -median(k)):
        v = median(k)
        if v >= 0.005:
            counted += v
            lines.append(f"    {k:<22} {v:6.2f} s")
    lines.append(
        f"    {'not counted':<22} {host - counted:6.2f} s  (ended and not yet reaped, kernel)"
    )
    return lines


# The devhost's emulation of illumos: svc.startd and its contracts (on illumos
# the kernel's, no process), and the svc*, kstat and mdb tools (C programs of a
# millisecond or two there) that the controller and the bench run. The
# controller's children also count its qemu-img runs, real ones: about 6 ms a
# start, which this leaves out with the rest.
EMULATION = ("restarter", "restarter's children", "holder", "controller's tools", "bench's svcadm")


def without_emulation(spent: list[dict[str, float]]) -> float:
    """The median over the windows of the host's busy CPU-seconds less the
    emulation's: what the product and QEMU (and zfs-fuse, the kernel) spent."""
    left = sorted(s["host"] - sum(s.get(k, 0.0) for k in EMULATION) for s in spent)
    return left[(len(left) - 1) // 2]
