"""Process contracts, emulated: a contract is a directory and a holder process.

illumos puts every method in a process contract, which follows processes
however they fork, daemonize or call setsid. Linux has no such thing, so each
contract gets a small *holder* (devhost/smf/startd/holder.py) that makes itself
a child subreaper and then forks the method: every process the method leaves
behind is a descendant of the holder, or is reparented to it when its parent
dies. The contract's members are the holder's descendants.

    <state>/smf/contracts/next          the last contract id allocated
    <state>/smf/contracts/<ctid>/
        contract.json   fmri, method name, the method's exec spec (daemon)
        holder          "pid starttime" of the holder (holder)
        method.pid      the method process (holder)
        method.status   its raw wait status once it is reaped (holder)
        event.<n>       "signal|core PID SIG": a member killed by a signal (holder)
        empty           the holder saw its last child go, and exits (holder)
        abandoned       the restarter let go of the contract (restarter)

A contract exists while its directory does. The holder outlives the restarter,
so a restarted restarter finds its contracts again here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import attrs

HOLDER_SCRIPT = Path(__file__).parent / "startd" / "holder.py"


def root(state_dir: Path) -> Path:
    return Path(state_dir) / "smf" / "contracts"


# --- /proc ---------------------------------------------------------------------------


@attrs.frozen
class ProcStat:
    pid: int
    ppid: int
    state: str
    starttime: int
    comm: str


def proc_stat(pid: int) -> ProcStat | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm is in parentheses and may itself hold spaces or parentheses.
    lpar, rpar = raw.index("("), raw.rindex(")")
    fields = raw[rpar + 2 :].split()
    return ProcStat(
        pid=pid, ppid=int(fields[1]), state=fields[0], starttime=int(fields[19]),
        comm=raw[lpar + 1 : rpar],
    )  # fmt: skip


def _all_stats() -> Iterator[ProcStat]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = proc_stat(int(entry.name))
            if st is not None:
                yield st


def descendants(pid: int) -> list[int]:
    """Every live process below pid (zombies excluded), in no particular order."""
    children: dict[int, list[int]] = {}
    for st in _all_stats():
        if st.state != "Z":
            children.setdefault(st.ppid, []).append(st.pid)
    out: list[int] = []
    todo = list(children.get(pid, ()))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def alive(pid: int, starttime: int) -> bool:
    """pid is still the process that had this start time, and not a zombie."""
    st = proc_stat(pid)
    return st is not None and st.starttime == starttime and st.state != "Z"


# --- one contract -----------------------------------------------------------------------


@attrs.define
class Contract:
    ctid: int
    dir: Path

    @property
    def exists(self) -> bool:
        return self.dir.is_dir()

    def info(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.dir / "contract.json").read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data

    @property
    def fmri(self) -> str:
        return str(self.info().get("fmri", ""))

    @property
    def method(self) -> str:
        return str(self.info().get("method", ""))

    def holder(self) -> tuple[int, int] | None:
        try:
            pid, start = (self.dir / "holder").read_text().split()
        except (FileNotFoundError, ValueError):
            return None
        return int(pid), int(start)

    def holder_alive(self) -> bool:
        h = self.holder()
        return h is not None and alive(*h)

    def members(self) -> list[int]:
        """The processes in the contract: the holder's descendants."""
        h = self.holder()
        if h is None or not alive(*h):
            return []
        return descendants(h[0])

    def is_empty(self) -> bool:
        """No process is left in the contract. The holder exits, writing `empty`,
        as soon as it has no child left, so its liveness is the answer."""
        if (self.dir / "empty").exists() or not self.exists:
            return True
        h = self.holder()
        if h is None:
            # The holder writes its file once the method is forked; until then
            # the contract is starting, unless the holder died at birth.
            return self._holder_never_came()
        return not alive(*h)

    def _holder_never_came(self) -> bool:
        try:
            age = time.time() - (self.dir / "contract.json").stat().st_mtime
        except FileNotFoundError:
            return True
        return age > 30

    def method_pid(self) -> int | None:
        try:
            return int((self.dir / "method.pid").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def method_status(self) -> int | None:
        """The method's raw wait status once it has exited."""
        try:
            return int((self.dir / "method.status").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def events(self) -> list[tuple[Path, str, int, int]]:
        """Unconsumed member events: (file, "signal"|"core", pid, signal)."""
        out = []
        for path in sorted(self.dir.glob("event.*"), key=lambda p: int(p.suffix[1:])):
            try:
                kind, pid, sig = path.read_text().split()
            except (FileNotFoundError, ValueError):
                continue
            out.append((path, kind, int(pid), int(sig)))
        return out

    def kill(self, sig: int) -> int:
        """Send sig to every member; the number signalled."""
        n = 0
        for pid in self.members():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
                n += 1
        return n

    @property
    def abandoned(self) -> bool:
        return (self.dir / "abandoned").exists()

    def abandon(self) -> None:
        """Let go of the contract: it disappears once its processes are gone."""
        if not self.exists:
            return
        if self.holder_alive():
            with contextlib.suppress(FileNotFoundError):
                (self.dir / "abandoned").touch()
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


# --- the store -------------------------------------------------------------------------


class ContractStore:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.root = root(state_dir)

    def get(self, ctid: int) -> Contract:
        return Contract(ctid, self.root / str(ctid))

    def all(self) -> list[Contract]:
        if not self.root.is_dir():
            return []
        return sorted(
            (self.get(int(p.name)) for p in self.root.iterdir() if p.name.isdigit()),
            key=lambda c: c.ctid,
        )

    def allocate(self) -> int:
        """A new contract id; the counter survives restarts of the restarter."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / "next", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.read(fd, 64).decode().strip()
            ctid = (int(raw) if raw.isdigit() else 0) + 1
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, f"{ctid}\n".encode())
            return ctid
        finally:
            os.close(fd)

    def create(
        self, fmri: str, method: str, spec: dict[str, Any], stderr: int | None = None
    ) -> tuple[Contract, subprocess.Popen[bytes]]:
        """Allocate a contract and start its holder, which runs the method in it.
        The holder's own complaints go to stderr (None: ours)."""
        ctid = self.allocate()
        contract = self.get(ctid)
        contract.dir.mkdir(parents=True)
        info = {"ctid": ctid, "fmri": fmri, "method": method, "created": time.time(), "spec": spec}
        tmp = contract.dir / ".contract.json"
        tmp.write_text(json.dumps(info))
        tmp.replace(contract.dir / "contract.json")
        # -I -S: the holder is stdlib only, and starting it fast keeps methods fast.
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(HOLDER_SCRIPT), str(contract.dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
            close_fds=True,
        )
        return contract, proc

    def sweep(self) -> None:
        """Forget abandoned contracts whose processes are all gone."""
        for contract in self.all():
            if contract.abandoned and not contract.holder_alive():
                shutil.rmtree(contract.dir, ignore_errors=True)


def wait_empty(contracts: Iterable[Contract], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    pending = list(contracts)
    while pending:
        pending = [c for c in pending if not c.is_empty()]
        if not pending:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def kill_all(state_dir: Path, grace: float = 5.0) -> None:
    """SIGTERM every process in every contract, then SIGKILL what is left."""
    store = ContractStore(state_dir)
    contracts = store.all()
    for c in contracts:
        c.kill(signal.SIGTERM)
    if not wait_empty(contracts, grace):
        for c in contracts:
            c.kill(signal.SIGKILL)
        wait_empty(contracts, 5.0)


def processes(state_dir: Path, ctid: int) -> list[int]:
    """The pids in contract ctid (for `svcs -p`); empty when it has none or is gone."""
    return sorted(ContractStore(state_dir).get(ctid).members())
