"""A stand-in for QEMU's serial chardev in unit tests of the controller's serial console."""

from __future__ import annotations

import asyncio
from pathlib import Path


class FakeQemu:
    """QEMU's serial chardev: a server socket; what the guest writes goes to the
    client of the moment, what the client sends is kept."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.received = bytearray()
        self.connects = 0
        self._writer: asyncio.StreamWriter | None = None
        self._server: asyncio.Server | None = None
        self._connected = asyncio.Event()

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._client, str(self.path))

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connects += 1
        self._writer = writer
        self._connected.set()
        while data := await reader.read(4096):
            self.received += data
        writer.close()

    async def connected(self) -> None:
        await asyncio.wait_for(self._connected.wait(), 10)

    async def say(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write(data)
        await self._writer.drain()

    def hang_up(self) -> None:
        assert self._writer is not None
        self._writer.close()
        self._writer = None
        self._connected.clear()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._server is not None:
            self._server.close()
