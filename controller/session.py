"""One guest's long-lived QMP session on its controller.qmp monitor, for one boot.

qemu.qmp keeps every event a listener hears in a history that is never trimmed,
and queues without bound; this session is the only consumer of the client's
built-in listener, drains it as events come and empties its history, and a new
client is made for each boot (and each reconnect), so memory stays flat however
long a guest runs. qemu.qmp does not reconnect by itself: after EOF the session
disconnects and tries again, with backoff, while that boot's QEMU lives.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from qemu.qmp import ConnectError, ExecuteError, QMPClient, QMPError

from vmbundle.controller import policy
from vmbundle.controller.bus import EventBus
from vmbundle.controller.policy import Reaction
from vmbundle.guest.boot_record import BootRecord
from vmbundle.guest.process import pid_alive
from vmbundle.guest.rundir import RunPaths
from vmbundle.qemu.qmp import run_state_of

CONNECT_TIMEOUT = 5.0
COMMAND_TIMEOUT = 10.0
BACKOFF_FIRST = 0.2
BACKOFF_MAX = 5.0

# Events that say something an operator wants in `vmbundle events`; the rest
# (RTC_CHANGE, NIC_RX_FILTER_CHANGED, ...) are only counted.
NOTABLE = {
    "SHUTDOWN",
    "RESET",
    "POWERDOWN",
    "STOP",
    "RESUME",
    "GUEST_PANICKED",
    "DEVICE_DELETED",
    "BLOCK_IO_ERROR",
    "WATCHDOG",
}

React = Callable[["GuestSession", Reaction], Awaitable[None]]


class NotConnected(Exception):
    """The session is between connections (QEMU starting, going, or busy)."""


class CommandFailed(Exception):
    def __init__(self, error_class: str, desc: str) -> None:
        super().__init__(desc)
        self.error_class = error_class
        self.desc = desc


class GuestSession:
    def __init__(
        self,
        name: str,
        fmri: str,
        run: RunPaths,
        record: BootRecord,
        react: React,
        bus: EventBus,
        log: Any,
    ) -> None:
        self.name = name
        self.fmri = fmri
        self.run = run
        self.record = record
        self.key = (record.qemu_pid, record.started)
        self._react = react
        self._bus = bus
        self.log = log.bind(vm=name, fmri=fmri, qemu_pid=record.qemu_pid)
        self._client: QMPClient | None = None
        self._lock = asyncio.Lock()
        self.run_state: str | None = None
        self.preserved: str | None = None
        # The last screenshot made at each width, by the digest of the screendump it
        # came from: a screen that has not changed costs a screendump, not a PNG.
        self.screens: dict[int | None, tuple[bytes, bytes]] = {}
        """Why the guest is kept paused (on_crash=preserve), for status."""
        self.events_seen = 0
        self.connects = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"qmp-{self.name}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._drop()

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            # disconnect() re-raises the reader's error (EOF when QEMU is gone).
            with contextlib.suppress(EOFError, OSError, QMPError, asyncio.CancelledError):
                await client.disconnect()

    async def _run(self) -> None:
        delay = BACKOFF_FIRST
        while pid_alive(self.record.qemu_pid):
            client = QMPClient(self.name)
            try:
                await asyncio.wait_for(
                    client.connect(str(self.run.controller_qmp)), CONNECT_TIMEOUT
                )
            except (TimeoutError, ConnectError, OSError) as exc:
                with contextlib.suppress(EOFError, OSError, QMPError):
                    await client.disconnect()
                self.log.info("qmp.connect_failed", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            self._client = client
            self.connects += 1
            delay = BACKOFF_FIRST
            self.log.info("qmp.attached", connects=self.connects)
            try:
                await self._settle()
                await self._listen(client)
            except (EOFError, OSError, QMPError) as exc:
                self.log.info("qmp.lost", error=str(exc) or type(exc).__name__)
            finally:
                await self._drop()
        self.log.info("qmp.done", why="QEMU is gone")

    async def _settle(self) -> None:
        """What happened while nobody listened, and how QEMU should treat a reboot."""
        cfg = self.record.config
        if policy.reboot_is_shutdown(cfg):
            with contextlib.suppress(CommandFailed):
                await self.execute("set-action", {"reboot": "shutdown"})
        status = run_state_of(await self.execute("query-status"))
        self.run_state = status
        reaction = policy.on_status(cfg, status)
        if reaction is not None and not self.run.stopping.exists():
            await self._react(self, reaction)

    async def _listen(self, client: QMPClient) -> None:
        listener = client.events
        async for message in listener:
            # The built-in listener keeps every event it ever heard.
            history = getattr(listener, "_history", None)
            if isinstance(history, list):
                history.clear()
            self.events_seen += 1
            name = str(message.get("event"))
            found = message.get("data")
            data: dict[str, Any] = dict(found) if isinstance(found, dict) else {}
            if name in ("STOP", "SHUTDOWN", "GUEST_PANICKED"):
                self.run_state = None  # asked again when someone needs it
            if name == "RESUME":
                self.run_state = "running"
            self._bus.counts[f"qmp:{name}"] += 1
            if name in NOTABLE:
                self._bus.publish("qmp", self.name, qmp_event=name, data=data)
            reaction = policy.on_event(self.record.config, name, data)
            # The stop method powered it off: that stop is SMF's, not the guest's.
            if reaction is not None and not self.run.stopping.exists():
                self.log.info("qmp.event", qmp_event=name, reaction=reaction.action)
                await self._react(self, reaction)

    async def execute(
        self,
        command: str,
        arguments: dict[str, Any] | None = None,
        timeout: float = COMMAND_TIMEOUT,
    ) -> Any:
        """One command through this session; commands of one guest go one at a time."""
        async with self._lock:
            client = self._client
            if client is None:
                raise NotConnected(self.name)
            try:
                return await asyncio.wait_for(client.execute(command, arguments), timeout)
            except ExecuteError as exc:
                raise CommandFailed(str(exc.error_class), str(exc)) from None
