"""A value read by a blocking call (a tool run), shared by every caller that
began asking no later than the read began: a boot storm's sixteen starts that
each need a read made after they asked cost one or two reads, not sixteen."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class FreshRead(Generic[T]):
    def __init__(self, read: Callable[[], T]) -> None:
        self._read = read
        self._lock = asyncio.Lock()
        self._last: tuple[float, T] | None = None  # (when the read began, its value)

    async def after(self, since: float) -> T:
        """The value as read by a call begun at or after since (a monotonic
        time), run in a thread; a read's failure is the caller's that ran it."""
        async with self._lock:
            if self._last is not None and self._last[0] >= since:
                return self._last[1]
            began = time.monotonic()
            value = await asyncio.to_thread(self._read)
            self._last = (began, value)
            return value
