"""The controller's events, for `GET /events` and its own counters.

Each subscriber gets a bounded queue: a reader that falls behind loses its oldest
events rather than growing the controller.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

QUEUE_LIMIT = 1000


class EventBus:
    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self.counts: collections.Counter[str] = collections.Counter()
        self.closed = False

    def publish(self, kind: str, guest: str | None = None, **fields: Any) -> None:
        self.counts[kind] += 1
        event = {"time": round(time.time(), 3), "kind": kind, "guest": guest, **fields}
        for q in self._queues:
            if q.full():
                q.get_nowait()
            q.put_nowait(event)

    def close(self) -> None:
        """End every stream (the controller stops), so no reader holds it up."""
        self.closed = True
        for q in self._queues:
            if q.full():
                q.get_nowait()
            q.put_nowait(None)

    @contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[dict[str, Any] | None]]:
        q: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE_LIMIT)
        self._queues.add(q)
        try:
            yield q
        finally:
            self._queues.discard(q)

    async def stream(self, guest: str | None = None) -> AsyncIterator[dict[str, Any]]:
        with self.subscribe() as q:
            while not self.closed:
                event = await q.get()
                if event is None:
                    return
                if guest is None or event.get("guest") == guest:
                    yield event
