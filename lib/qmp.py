"""Short QMP sessions on a guest's control monitor, for the CLI and the methods.

QEMU serves one client per monitor and a second client hangs without a greeting,
so sessions on control.qmp take control.lock first, and every connect and
command has a deadline. The controller holds the other monitor (controller.qmp).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from qemu.qmp import QMPClient, QMPError

from vmbundle.errors import VmbundleError
from vmbundle.locks import exclusive
from vmbundle.rundir import RunPaths

T = TypeVar("T")

Session = Callable[[QMPClient], Awaitable[T]]


async def _session(path: str, fn: Session[T], timeout: float) -> T:
    client = QMPClient("vmbundle")
    try:
        await asyncio.wait_for(client.connect(path), timeout)
        return await asyncio.wait_for(fn(client), timeout)
    finally:
        with contextlib.suppress(EOFError, OSError, QMPError):
            await client.disconnect()


def with_control(run: RunPaths, fn: Session[T], timeout: float = 10.0) -> T:
    """Run fn with a connected client on the guest's control monitor."""
    with exclusive(run.control_lock, timeout):
        try:
            return asyncio.run(_session(str(run.control_qmp), fn, timeout))
        except TimeoutError:
            raise VmbundleError(f"{run.dir.name}: QMP did not answer within {timeout:g}s") from None
        except (QMPError, OSError) as exc:
            raise VmbundleError(f"{run.dir.name}: QMP: {exc}") from None


def execute(
    run: RunPaths, command: str, arguments: dict[str, Any] | None = None, timeout: float = 10.0
) -> Any:
    """One QMP command on the control monitor; its return value."""

    async def call(client: QMPClient) -> Any:
        return await client.execute(command, arguments)

    return with_control(run, call, timeout)
