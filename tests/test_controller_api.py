"""The start method's request to the controller without http.client
(controller_api.post_quick): its answers as aiohttp, the controller's server,
writes them (a JSON answer, an error answer), and, from a bare UNIX socket
server, the faults aiohttp cannot be made to give: a controller that dies
holding the request, and an answer cut short."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from vmbundle.adapters import controller_api
from vmbundle.errors import VmbundleError


def answer(status: int, body: dict[str, object], *, short: int = 0) -> bytes:
    data = json.dumps(body).encode()
    head = (
        f"HTTP/1.1 {status} Whatever\r\nContent-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(data)}\r\nDate: now\r\n\r\n"
    ).encode()
    return head + data[: len(data) - short]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Path, list[bytes]]]:
    """(socket path, the raw answers to give in turn)."""
    path = tmp_path / "api.sock"
    answers: list[bytes] = []
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += conn.recv(4096)
                head, _, body = request.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                while len(body) < length:
                    body += conn.recv(4096)
                conn.sendall(answers.pop(0))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path, answers
    listener.close()


@pytest.fixture
def aiohttp_server(tmp_path: Path) -> Iterator[tuple[Path, list[Any]]]:
    """(socket path, the JSON bodies received) of an aiohttp server answering
    /ok with its argv and /refuse with a 422, as the controller's start does."""
    path = tmp_path / "api.sock"
    seen: list[Any] = []

    async def ok(request: web.Request) -> web.Response:
        seen.append(await request.json())
        return web.json_response({"argv": ["qemu", "-name", "a b"], "display": 3})

    async def refuse(request: web.Request) -> web.Response:
        return web.json_response({"error": "a: not enough memory", "exit": 95}, status=422)

    app = web.Application()
    app.add_routes([web.post("/ok", ok), web.post("/refuse", refuse)])
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.UnixSite(runner, str(path)).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield path, seen
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_the_answer_and_the_request(aiohttp_server: tuple[Path, list[Any]]) -> None:
    path, seen = aiohttp_server
    got = controller_api.post_quick(path, "/ok", {"fmri": "svc:/x:a", "pid": 9}, 5)
    assert got == {"argv": ["qemu", "-name", "a b"], "display": 3}
    assert seen == [{"fmri": "svc:/x:a", "pid": 9}]


def test_an_error_answer_is_refused_with_its_fields(
    aiohttp_server: tuple[Path, list[Any]],
) -> None:
    path, _ = aiohttp_server
    with pytest.raises(controller_api.Refused) as caught:
        controller_api.post_quick(path, "/refuse", {}, 5)
    assert (caught.value.status, str(caught.value)) == (422, "a: not enough memory")
    assert caught.value.answer["exit"] == 95


def test_a_controller_that_closes_without_answering_did_not_answer(
    server: tuple[Path, list[bytes]],
) -> None:
    path, answers = server
    answers.append(b"")
    with pytest.raises(VmbundleError, match="did not answer: it closed the connection"):
        controller_api.post_quick(path, "/guests/a/start", {}, 5)


def test_an_answer_cut_short_is_an_error(server: tuple[Path, list[bytes]]) -> None:
    path, answers = server
    answers.append(answer(200, {"argv": []}, short=3))
    with pytest.raises(VmbundleError, match="cut short"):
        controller_api.post_quick(path, "/guests/a/start", {}, 5)


def test_no_controller_is_controller_down(tmp_path: Path) -> None:
    with pytest.raises(controller_api.ControllerDown, match="svcadm enable"):
        controller_api.post_quick(tmp_path / "api.sock", "/guests/a/start", {}, 5)
