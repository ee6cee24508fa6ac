"""The controller's serial console (vmbundle.controller.serial), with a UNIX socket
server standing in for QEMU's serial chardev: the fan-out to subscribers and to the
local fan-out socket, input to the guest, a slow subscriber dropped, the bounded
scrollback a new console goes on from, and reconnecting while QEMU lives."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import structlog
from support.fake_serial import FakeQemu

from vmbundle.controller import serial as serial_mod
from vmbundle.controller.serial import SerialConsole, Subscriber
from vmbundle.guest.rundir import RunPaths


@pytest.fixture
def run() -> Iterator[RunPaths]:
    # Short: UNIX socket paths must stay under 108 bytes, and pytest's are long.
    top = Path(tempfile.mkdtemp(prefix="vmbs", dir="/tmp"))
    paths = RunPaths.for_guest(top, "g1")
    paths.dir.mkdir(mode=0o700)
    yield paths
    shutil.rmtree(top, ignore_errors=True)


async def until(what: str, predicate: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.01)


@asynccontextmanager
async def console(
    run: RunPaths, pid: int | None = None, **options: int
) -> AsyncIterator[tuple[SerialConsole, FakeQemu]]:
    qemu = FakeQemu(run.serial)
    await qemu.start()
    c = SerialConsole("g1", run, pid or os.getpid(), structlog.get_logger("test"), **options)
    c.start()
    try:
        await qemu.connected()
        await until("attached", lambda: c.connected)
        await until("the shared socket", run.serial_shared.exists)
        yield c, qemu
    finally:
        await c.close()
        await qemu.close()


async def read_until(reader: asyncio.StreamReader, wanted: bytes) -> bytes:
    got = bytearray()
    while wanted not in got:
        data = await asyncio.wait_for(reader.read(65536), 10)
        assert data, f"EOF before {wanted!r}; got {bytes(got)!r}"
        got += data
    return bytes(got)


async def take(sub: Subscriber, size: int) -> bytes:
    got = bytearray()
    while len(got) < size:
        data = await asyncio.wait_for(sub.get(), 10)
        assert data is not None
        got += data
    return bytes(got)


def go(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


def test_every_subscriber_and_shared_client_sees_the_same_bytes_and_input_reaches_qemu(
    run: RunPaths,
) -> None:
    async def test() -> None:
        async with console(run) as (c, qemu):
            assert oct(run.serial_shared.stat().st_mode & 0o777) == "0o600"
            _, one = c.subscribe()
            _, two = c.subscribe()
            r1, w1 = await asyncio.open_unix_connection(str(run.serial_shared))
            r2, w2 = await asyncio.open_unix_connection(str(run.serial_shared))
            await until("two shared clients", lambda: len(c._subscribers) == 4)
            lines = b"".join(b"line %d\r\n" % i for i in range(1000))
            await qemu.say(lines)
            assert await take(one, len(lines)) == lines
            assert await take(two, len(lines)) == lines
            assert await read_until(r1, b"line 999\r\n") == lines
            assert await read_until(r2, b"line 999\r\n") == lines
            w1.write(b"poweroff\n")
            await w1.drain()
            await until("typed", lambda: qemu.received == b"poweroff\n")
            assert c.write(b"reboot\n")
            await until("typed", lambda: qemu.received == b"poweroff\nreboot\n")
            # A client that shuts its writing half still watches.
            w2.write_eof()
            await qemu.say(b"after\n")
            assert await read_until(r2, b"after\n") == b"after\n"
            w1.close()
            w2.close()
        # Closed: the shared socket is gone, its clients and subscribers ended.
        assert not run.serial_shared.exists()
        assert await one.get() == b"after\n"
        assert await one.get() is None and one.ended == serial_mod.CLOSED

    go(test)


def test_a_slow_subscriber_is_dropped_and_never_holds_back_the_guest_or_the_others(
    run: RunPaths,
) -> None:
    async def test() -> None:
        async with console(run, subscriber_bytes=64 << 10) as (c, qemu):
            _, fast = c.subscribe()
            _, slow = c.subscribe()
            # A shared client that never reads: the socket's buffers fill, then its queue.
            _, stuck = await asyncio.open_unix_connection(str(run.serial_shared))
            await until("the shared client", lambda: len(c._subscribers) == 3)
            chunk = os.urandom(8 << 10)
            count = 512  # 4 MiB
            reading = asyncio.create_task(take(fast, len(chunk) * count))
            for _ in range(count):
                await qemu.say(chunk)
            assert await reading == chunk * count
            assert slow.ended == serial_mod.DROPPED and await slow.get() is None
            await until("the stuck client dropped", lambda: c.dropped == 2)
            assert len(c._subscribers) == 1
            stuck.close()

    go(test)


def test_the_scrollback_is_bounded_0600_and_a_new_console_goes_on_from_it(run: RunPaths) -> None:
    keep, slack = 16 << 10, 4 << 10

    async def test() -> None:
        sent = bytearray()
        async with console(run, keep=keep, slack=slack) as (c, qemu):
            _, sub = c.subscribe()
            for i in range(3000):
                line = b"boot line %05d\r\n" % i
                sent += line
                await qemu.say(line)
                size = run.serial_log.stat().st_size if run.serial_log.exists() else 0
                assert size <= keep + slack
            await take(sub, len(sent))
            assert oct(run.serial_log.stat().st_mode & 0o777) == "0o600"
            kept = run.serial_log.read_bytes()
            assert keep <= len(kept) <= keep + slack
            assert bytes(sent).endswith(kept)
            assert not list(run.dir.glob(".serial.log*")), "no temporary file left"
        # A controller started again: the scrollback is there, and goes on.
        async with console(run, keep=keep, slack=slack) as (c, qemu):
            past, sub = c.subscribe(replay=1000)
            assert len(past) <= 1000 and past.startswith(b"boot line ")
            assert bytes(sent).endswith(past)
            await qemu.say(b"after the restart\r\n")
            assert await take(sub, 19) == b"after the restart\r\n"
            past, _ = c.subscribe(replay=keep)
            assert past.endswith(b"boot line 02999\r\nafter the restart\r\n")
            assert run.serial_log.read_bytes().endswith(past)

    go(test)


def test_it_reconnects_while_qemu_lives_and_ends_when_it_is_gone(run: RunPaths) -> None:
    async def test() -> None:
        qemu_proc = subprocess.Popen(["sleep", "60"])
        try:
            async with console(run, pid=qemu_proc.pid) as (c, qemu):
                _, sub = c.subscribe()
                qemu.hang_up()
                await qemu.connected()
                await until("attached again", lambda: c.connected and c.connects == 2)
                await qemu.say(b"still here\n")
                assert await take(sub, 11) == b"still here\n"
                qemu_proc.kill()  # only the process this test started
                qemu_proc.wait()
                qemu.hang_up()
                assert c._task is not None
                await asyncio.wait_for(c._task, 10)
                assert not c.connected and qemu.connects == 2
        finally:
            if qemu_proc.poll() is None:
                qemu_proc.kill()
                qemu_proc.wait()

    go(test)


def test_a_console_never_writes_into_the_next_boots_directory(run: RunPaths) -> None:
    async def test() -> None:
        async with console(run) as (c, qemu):
            await qemu.say(b"first boot\n")
            await until("kept", lambda: len(c.scrollback) == 11)
            # The stop method removes the directory, the next start makes a new one.
            shutil.rmtree(run.dir)
            run.dir.mkdir(mode=0o700)
            await qemu.say(b"x" * (c._keep + c._slack))
            await until("kept", lambda: len(c.scrollback) == c._keep)
            assert list(run.dir.iterdir()) == []

    go(test)
