"""VNC display numbers: unique among running guests, taken without races.

One table per host (`<run_dir>/displays.json`), changed only under a flock. An
entry belongs to a guest and to the process that took it (a start method or
`vmbundle run`); it is stale, and its display free again, once that process has
ended and the guest's QEMU is not running, which is how a display left behind
by a crashed guest comes back.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path

from vmbundle.atomic import write_atomic
from vmbundle.errors import VmbundleError
from vmbundle.guest.process import pid_alive
from vmbundle.locks import exclusive

TABLE = "displays.json"
LOCK = "displays.lock"
BASE_PORT = 5900

Table = dict[int, dict[str, object]]


def _read(run_dir: Path) -> Table:
    try:
        raw = json.loads((run_dir / TABLE).read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return {int(k): v for k, v in raw.items() if isinstance(v, dict) and k.isdigit()}


def _write(run_dir: Path, table: Table) -> None:
    write_atomic(
        run_dir / TABLE,
        json.dumps({str(k): v for k, v in sorted(table.items())}).encode(),
        durable=False,
    )


def port_free(listen: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in listen else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((listen, port))
        except OSError:
            return False
    return True


def _live(entry: dict[str, object], guest_running: Callable[[str], bool]) -> bool:
    owner = entry.get("owner")
    guest = entry.get("guest")
    if isinstance(owner, int) and pid_alive(owner):
        return True
    return isinstance(guest, str) and guest_running(guest)


def allocate(
    run_dir: Path,
    guest: str,
    first: int,
    last: int,
    listen: str,
    guest_running: Callable[[str], bool],
    owner: int | None = None,
) -> int:
    """A display for guest, owned by process owner (by default this one) until
    the guest's QEMU runs."""
    owner = os.getpid() if owner is None else owner
    run_dir.mkdir(parents=True, exist_ok=True)
    with exclusive(run_dir / LOCK):
        table = {n: e for n, e in _read(run_dir).items() if _live(e, guest_running)}
        for n, e in table.items():
            if e.get("guest") == guest:
                e["owner"] = owner
                _write(run_dir, table)
                return n
        for n in range(first, last + 1):
            if n not in table and port_free(listen, BASE_PORT + n):
                table[n] = {"guest": guest, "owner": owner}
                _write(run_dir, table)
                return n
    raise VmbundleError(
        f"{guest}: no free VNC display from {first} to {last}; "
        "stop a guest or widen display.first/display.last"
    )


def release(run_dir: Path, guest: str) -> None:
    with exclusive(run_dir / LOCK):
        table = _read(run_dir)
        kept = {n: e for n, e in table.items() if e.get("guest") != guest}
        if kept != table:
            _write(run_dir, kept)


def held(run_dir: Path) -> dict[int, str]:
    """Display -> guest, as the table has them (stale entries included)."""
    return {n: str(e.get("guest")) for n, e in _read(run_dir).items()}
