"""The controller's shared read (controller/fresh_read.py): starts asking at once
share one read, and none is answered from a read begun before it asked."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from vmbundle.controller.fresh_read import FreshRead


def test_callers_asking_at_once_share_one_read_begun_after_they_asked() -> None:
    calls: list[float] = []
    release = threading.Event()

    def read() -> int:
        calls.append(time.monotonic())
        release.wait(5)
        return len(calls)

    async def test() -> None:
        shared = FreshRead(read)
        first = asyncio.create_task(shared.after(time.monotonic()))
        while not calls:
            await asyncio.sleep(0.001)
        # Asked while the first read runs: that read began before them, so they
        # share the next one.
        asked = time.monotonic()
        later = [asyncio.create_task(shared.after(asked)) for _ in range(8)]
        await asyncio.sleep(0.01)
        release.set()
        assert await first == 1
        assert await asyncio.gather(*later) == [2] * 8
        assert len(calls) == 2
        # Asking since a time before the last read began: answered from it.
        assert await shared.after(asked) == 2
        assert len(calls) == 2
        assert await shared.after(time.monotonic()) == 3

    asyncio.run(test())


def test_a_failed_read_is_its_callers_and_the_next_caller_reads_again() -> None:
    outcomes = iter([RuntimeError("svcprop failed"), 7])

    def read() -> int:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def test() -> None:
        shared = FreshRead(read)
        since = time.monotonic()
        with pytest.raises(RuntimeError, match="svcprop failed"):
            await shared.after(since)
        assert await shared.after(since) == 7

    asyncio.run(test())
