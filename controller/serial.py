"""One guest's serial console, for one boot, held by the controller.

QEMU serves the serial port as a UNIX server socket that takes one client at a
time (RunPaths.serial), so the controller holds it and shares it: every byte the
guest writes is appended to a scrollback in the run directory and offered to
each subscriber (the web console's serial sockets, and the clients of the local
fan-out socket RunPaths.serial_shared, for root's tools and the tests). What a
subscriber sends is written to the guest.

No one watching ever holds the guest back: the output is read as it comes, and
each subscriber has a bounded queue; one that lets SUBSCRIBER_BYTES pile up is
dropped (its connection closed), never waited for.

The scrollback (RunPaths.serial_log, 0600) keeps the last SCROLLBACK_BYTES: the
file is appended to, and once SCROLLBACK_SLACK more has come it is replaced,
atomically, by its last SCROLLBACK_BYTES; so it never holds more than their sum,
and a controller that restarts (or was killed) finds it whole and goes on from
it. Every file operation is relative to the run directory as it was opened at
start, so a console outliving its boot (the directory removed, a new one made
for the next boot) never writes into the next boot's directory.

Like the QMP session, the connection to QEMU is tried again, with backoff, while
that boot's QEMU lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

# Connecting to QEMU: as the QMP session does.
from vmbundle.controller.session import BACKOFF_FIRST, BACKOFF_MAX, CONNECT_TIMEOUT
from vmbundle.guest.process import pid_alive
from vmbundle.guest.rundir import RunPaths

SCROLLBACK_BYTES = 256 << 10
SCROLLBACK_SLACK = 64 << 10
# What the web console replays to a new viewer before the live output.
REPLAY_BYTES = 64 << 10
# Queued for one subscriber and not yet taken: more, and it is dropped.
SUBSCRIBER_BYTES = 256 << 10
# Typed ahead of what the guest takes: more is dropped.
INPUT_BYTES = 64 << 10
READ_BYTES = 1 << 14
# A connection to QEMU shorter than this is a failure, retried after the backoff.
SHORT_CONNECTION = 1.0
# At close, what each subscriber still has queued gets this long to go out.
CLOSE_SECONDS = 1.0

DROPPED = "dropped"
CLOSED = "closed"


class Scrollback:
    """The last `keep` bytes of the guest's output (up to `keep + slack`), in memory
    and in the file `name` of the directory dir_fd (None: in memory only)."""

    def __init__(self, dir_fd: int | None, name: str, log: Any, keep: int, slack: int) -> None:
        self._dir_fd = dir_fd
        self._name = name
        self._log = log
        self._keep = keep
        self._slack = slack
        self._data = bytearray()
        self._fd: int | None = None
        if dir_fd is None:
            return
        try:
            self._data += self._read()[-(keep + slack) :]
            self._fd = self._open()
        except OSError as exc:
            self._failed(exc)

    def _read(self) -> bytes:
        try:
            fd = os.open(
                self._name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._dir_fd
            )
        except FileNotFoundError:
            return b""
        with os.fdopen(fd, "rb") as f:
            return f.read()

    def _open(self) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self._name, flags, 0o600, dir_fd=self._dir_fd)
        os.fchmod(fd, 0o600)
        return fd

    def _failed(self, exc: OSError) -> None:
        # The run directory gone (the boot is over) or full: memory only from now on.
        self._log.warning("serial.scrollback_failed", error=str(exc))
        self._close_fd()

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __len__(self) -> int:
        return len(self._data)

    def tail(self, n: int) -> bytes:
        return bytes(self._data[-n:]) if n > 0 else b""

    def append(self, data: bytes) -> None:
        self._data += data
        if self._fd is not None:
            try:
                _write_all(self._fd, data)
            except OSError as exc:
                self._failed(exc)
        if len(self._data) > self._keep + self._slack:
            del self._data[: len(self._data) - self._keep]
            if self._fd is not None:
                try:
                    self._replace()
                except OSError as exc:
                    self._failed(exc)

    def _replace(self) -> None:
        """The file becomes what is in memory: a new file renamed over it."""
        tmp = f".{self._name}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o600, dir_fd=self._dir_fd)
        try:
            os.fchmod(fd, 0o600)
            _write_all(fd, bytes(self._data))
        finally:
            os.close(fd)
        os.rename(tmp, self._name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
        self._close_fd()
        self._fd = self._open()

    def close(self) -> None:
        self._close_fd()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Subscriber:
    """What one watcher has not taken yet: at most `limit` bytes, else it is dropped."""

    def __init__(self, limit: int) -> None:
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._limit = limit
        self._wake = asyncio.Event()
        self.ended: str | None = None
        """Why no more comes: DROPPED (too slow) or CLOSED (the console closed)."""
        self.dropped = asyncio.Event()

    def _offer(self, data: bytes) -> bool:
        if self._size + len(data) > self._limit:
            return False
        self._chunks.append(data)
        self._size += len(data)
        self._wake.set()
        return True

    def _end(self, why: str) -> None:
        self.ended = why
        if why == DROPPED:
            self._chunks.clear()
            self._size = 0
            self.dropped.set()
        self._wake.set()

    async def get(self) -> bytes | None:
        """All the output queued so far, at least a byte; None once it has ended
        (what was queued before a close comes first)."""
        while not self._chunks:
            if self.ended is not None:
                return None
            self._wake.clear()
            await self._wake.wait()
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._size = 0
        return data


class SerialConsole:
    def __init__(
        self,
        name: str,
        run: RunPaths,
        qemu_pid: int,
        log: Any,
        *,
        keep: int = SCROLLBACK_BYTES,
        slack: int = SCROLLBACK_SLACK,
        subscriber_bytes: int = SUBSCRIBER_BYTES,
    ) -> None:
        self.name = name
        self.run = run
        self.qemu_pid = qemu_pid
        self.log = log
        self._keep = keep
        self._slack = slack
        self._subscriber_bytes = subscriber_bytes
        self._subscribers: set[Subscriber] = set()
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._server: asyncio.Server | None = None
        self._shared_id: tuple[int, int] | None = None
        self._clients: set[asyncio.Task[Any]] = set()
        self._dir_fd: int | None = None
        self.scrollback = Scrollback(None, "", log, keep, slack)
        self.connects = 0
        self.dropped = 0
        self._input_dropped = False
        self._closed = False

    def start(self) -> None:
        try:
            self._dir_fd = os.open(self.run.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            self.log.warning("serial.scrollback_failed", error=str(exc))
        self.scrollback = Scrollback(
            self._dir_fd, self.run.serial_log.name, self.log, self._keep, self._slack
        )
        self._task = asyncio.create_task(self._run(), name=f"serial-{self.name}")

    @property
    def connected(self) -> bool:
        return self._writer is not None

    # -- subscribers ---------------------------------------------------------

    def subscribe(self, replay: int = 0) -> tuple[bytes, Subscriber]:
        """The last `replay` bytes of the scrollback (cut to whole lines) and a
        subscriber that gets everything after them, with no gap and no overlap."""
        sub = Subscriber(self._subscriber_bytes)
        if self._closed:
            sub._end(CLOSED)  # too late: this boot is over
        else:
            self._subscribers.add(sub)
        past = self.scrollback.tail(replay)
        if replay and len(self.scrollback) > replay:
            _, newline, rest = past.partition(b"\n")
            past = rest if newline else past
        return past, sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)

    def write(self, data: bytes) -> bool:
        """Send data to the guest; False when it cannot go now (no connection to
        QEMU, or the guest not taking what was sent before), and it is dropped."""
        writer = self._writer
        if writer is None or writer.is_closing():
            return False
        if writer.transport.get_write_buffer_size() + len(data) > INPUT_BYTES:
            if not self._input_dropped:
                self.log.warning("serial.input_dropped", why="the guest does not read its input")
            self._input_dropped = True
            return False
        self._input_dropped = False
        writer.write(data)
        return True

    def _output(self, data: bytes) -> None:
        self.scrollback.append(data)
        for sub in list(self._subscribers):
            if not sub._offer(data):
                self._subscribers.discard(sub)
                sub._end(DROPPED)
                self.dropped += 1
                self.log.info("serial.subscriber_dropped", queued_limit=self._subscriber_bytes)

    # -- the connection to QEMU ----------------------------------------------

    async def _run(self) -> None:
        await self._serve_shared()
        delay = BACKOFF_FIRST
        while pid_alive(self.qemu_pid):
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_unix_connection(str(self.run.serial), limit=READ_BYTES),
                    CONNECT_TIMEOUT,
                )
            except (TimeoutError, OSError) as exc:
                self.log.info("serial.connect_failed", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            self._writer = writer
            self.connects += 1
            began = time.monotonic()
            self.log.info(
                "serial.attached", connects=self.connects, scrollback=len(self.scrollback)
            )
            why = "EOF"
            try:
                while data := await reader.read(READ_BYTES):
                    self._output(data)
                    # A read returns at once while data is buffered: let the
                    # subscribers take each piece before the next, so a burst is
                    # no reason to drop one that keeps up.
                    await asyncio.sleep(0)
            except OSError as exc:
                why = str(exc) or type(exc).__name__
            finally:
                self._writer = None
                writer.close()
            self.log.info("serial.lost", error=why)
            if time.monotonic() - began < SHORT_CONNECTION:
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
            else:
                delay = BACKOFF_FIRST
        self.log.info("serial.done", why="QEMU is gone")

    # -- the local fan-out socket --------------------------------------------

    async def _serve_shared(self) -> None:
        path = self.run.serial_shared
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        try:
            self._server = await asyncio.start_unix_server(self._client, str(path))
            # Root's only (the run directory is 0700 too): it types on the guest's console.
            os.chmod(path, 0o600)
            st = os.stat(path)
            self._shared_id = (st.st_dev, st.st_ino)
        except OSError as exc:
            self.log.warning("serial.shared_failed", path=str(path), error=str(exc))

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        _, sub = self.subscribe()

        async def send(data: bytes) -> None:
            writer.write(data)
            await writer.drain()

        async def typed() -> AsyncIterator[bytes]:
            while data := await reader.read(READ_BYTES):
                yield data

        try:
            # The end of a client's input is not its end: a watcher may shut its
            # writing half and go on reading.
            await self.follow(sub, send, typed(), input_ends=False)
        finally:
            if sub.ended == DROPPED:
                writer.transport.abort()
            else:
                writer.close()
            self._clients.discard(task)

    async def follow(
        self,
        sub: Subscriber,
        send: Callable[[bytes], Awaitable[None]],
        typed: AsyncIterator[bytes],
        *,
        input_ends: bool,
    ) -> None:
        """Pass sub's output to send, and what typed yields to the guest, until the
        output ends (the console closed, sub dropped, send failed) or, with
        input_ends, the input does; then unsubscribe."""

        async def output() -> None:
            while (data := await sub.get()) is not None:
                await send(data)

        async def typing() -> None:
            async for data in typed:
                self.write(data)

        tasks = [
            asyncio.create_task(output()),
            asyncio.create_task(sub.dropped.wait()),
            asyncio.create_task(typing()),
        ]
        try:
            await asyncio.wait(
                tasks if input_ends else tasks[:2], return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            self.unsubscribe(sub)
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                    await t

    # -- the end ---------------------------------------------------------------

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except Exception as exc:  # a fault of this console must not stop the pass
                self.log.exception("serial.failed", error=str(exc))
        if self._server is not None:
            self._server.close()
            self._unlink_shared()
        for sub in list(self._subscribers):
            sub._end(CLOSED)
        self._subscribers.clear()
        if self._clients:
            # What each was given before the end still goes out, briefly.
            _, late = await asyncio.wait(set(self._clients), timeout=CLOSE_SECONDS)
            for t in late:
                t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*late, return_exceptions=True)
        self.scrollback.close()
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None

    def _unlink_shared(self) -> None:
        # Only the socket this console made: a new boot's directory may hold another.
        path = self.run.serial_shared
        with contextlib.suppress(OSError):
            st = os.stat(path)
            if (st.st_dev, st.st_ino) == self._shared_id:
                path.unlink()
