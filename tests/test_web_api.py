"""The web console's API refuses what it must (vmbundle.controller.web): no
session, no CSRF token, a role that may not, and console sockets with no ticket,
a used one, an expired one, one for another guest or channel, or from another
Origin; the serial socket replays, follows, and takes typing from an operator
only. Served by aiohttp for real, on loopback, to aiohttp's own client."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
from aiohttp import ClientSession, WSMsgType, WSServerHandshakeError
from aiohttp.test_utils import TestClient, TestServer
from support.fake_serial import FakeQemu

from vmbundle import users
from vmbundle.controller import api, web
from vmbundle.controller import tickets as ticketing
from vmbundle.controller.daemon import Controller
from vmbundle.controller.serial import SerialConsole
from vmbundle.controller.sessions import Sessions
from vmbundle.controller.tickets import Grant, Tickets
from vmbundle.guest.rundir import RunPaths
from vmbundle.settings import HostSettings
from vmbundle.users import User

FAST = {"n": 1 << 10}
ACCOUNTS = {
    "olga": User("olga", "operator", users.hash_password("operator-pass", **FAST)),
    "vic": User("vic", "viewer", users.hash_password("viewer-pass", **FAST)),
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def serve(
    tmp_path: Path, test: Callable[[TestClient[Any, Any], Tickets, Clock], Awaitable[None]]
) -> None:
    async def main() -> None:
        clock = Clock()
        ctl = Controller(HostSettings(run_dir=tmp_path / "run"), structlog.get_logger("test"))
        tickets = Tickets(b"k" * 32, clock)
        sessions = Sessions(lambda: ACCOUNTS)
        client = TestClient(TestServer(web.app(ctl, sessions, tickets, secure=False)))
        await client.start_server()
        try:
            await test(client, tickets, clock)
        finally:
            await client.close()

    logging.getLogger("aiohttp").setLevel(logging.CRITICAL)
    asyncio.run(main())


async def login(client: TestClient[Any, Any], user: str, password: str) -> str:
    r = await client.post("/api/login", json={"user": user, "password": password})
    assert r.status == 200, await r.text()
    cookie = r.cookies[web.COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    return str((await r.json())["csrf"])


def test_no_session_no_api(tmp_path: Path) -> None:
    async def test(client: TestClient[Any, Any], _t: Tickets, _c: Clock) -> None:
        for method, path in (
            ("GET", "/api/guests"),
            ("GET", "/api/guests/web01/thumbnail"),
            ("POST", "/api/guests/web01/start"),
        ):
            r = await client.request(method, path)
            assert r.status == 401
            assert (await r.json()) == {"error": "log in first: POST /api/login"}
        r = await client.post("/api/login", json={"user": "olga", "password": "wrong-pass"})
        assert r.status == 401 and web.COOKIE not in r.cookies
        r = await client.post("/api/login", data=b"not json")
        assert r.status == 400

    serve(tmp_path, test)


def test_an_action_needs_the_csrf_token_and_the_role(tmp_path: Path) -> None:
    async def test(client: TestClient[Any, Any], _t: Tickets, _c: Clock) -> None:
        csrf = await login(client, "olga", "operator-pass")
        r = await client.post("/api/guests/web01/start")
        assert r.status == 403 and "X-CSRF-Token" in (await r.json())["error"]
        r = await client.post("/api/guests/web01/start", headers={web.CSRF_HEADER: "forged"})
        assert r.status == 403
        r = await client.post("/api/guests/web01/explode", headers={web.CSRF_HEADER: csrf})
        assert r.status == 404
        client.session.cookie_jar.clear()
        csrf = await login(client, "vic", "viewer-pass")
        r = await client.post("/api/guests/web01/start", headers={web.CSRF_HEADER: csrf})
        assert r.status == 403
        assert (await r.json()) == {"error": "vic (viewer) may not start"}
        r = await client.post("/api/guests/web01/console", headers={web.CSRF_HEADER: csrf})
        assert r.status == 403

    serve(tmp_path, test)


async def _ws_status(client: TestClient[Any, Any], path: str, origin: str | None) -> int:
    headers = {"Origin": origin} if origin else {}
    try:
        ws = await client.ws_connect(path, headers=headers)
    except WSServerHandshakeError as exc:
        return exc.status
    await ws.close()
    return 101


def test_the_console_socket_needs_a_fresh_ticket_for_it_from_this_page(tmp_path: Path) -> None:
    async def test(client: TestClient[Any, Any], tickets: Tickets, clock: Clock) -> None:
        await login(client, "olga", "operator-pass")
        origin = f"http://{client.host}:{client.port}"
        (sid,) = [c.value for c in client.session.cookie_jar if c.key == web.COOKIE]
        good = Grant("olga", sid, "web01")
        path = "/ws/console/web01"
        assert await _ws_status(client, path, origin) == 403  # no ticket
        assert (
            await _ws_status(client, f"{path}?ticket={tickets.issue(good)}", "http://evil.example")
            == 403
        )
        assert await _ws_status(client, f"{path}?ticket={tickets.issue(good)}", None) == 403
        other = tickets.issue(Grant("olga", sid, "web02"))
        assert await _ws_status(client, f"{path}?ticket={other}", origin) == 403
        old = tickets.issue(good)
        clock.now += ticketing.TICKET_SECONDS + 1
        assert await _ws_status(client, f"{path}?ticket={old}", origin) == 403
        # A good ticket gets past every check; web01 is not running, so 409. Used once, it is spent.
        once = tickets.issue(good)
        assert await _ws_status(client, f"{path}?ticket={once}", origin) == 409
        assert await _ws_status(client, f"{path}?ticket={once}", origin) == 403
        # Without a session, nothing.
        async with ClientSession() as bare:
            try:
                await bare.ws_connect(
                    f"{origin}{path}?ticket={tickets.issue(good)}", headers={"Origin": origin}
                )
                raise AssertionError("connected without a session")
            except WSServerHandshakeError as exc:
                assert exc.status == 401

    serve(tmp_path, test)


def test_the_serial_socket_replays_then_follows_and_only_an_operator_types(tmp_path: Path) -> None:
    async def test(client: TestClient[Any, Any], tickets: Tickets, _c: Clock) -> None:
        ctl = client.app[api.CONTROLLER_KEY]
        top = Path(tempfile.mkdtemp(prefix="vmbw", dir="/tmp"))  # short socket paths
        run = RunPaths.for_guest(top, "web01")
        run.dir.mkdir()
        qemu = FakeQemu(run.serial)
        await qemu.start()
        serial = SerialConsole("web01", run, os.getpid(), structlog.get_logger("test"))
        ctl.serials["web01"] = serial
        serial.start()
        origin = f"http://{client.host}:{client.port}"
        try:
            await qemu.connected()
            await qemu.say(b"vmbundle-testguest: ready\r\n")
            while len(serial.scrollback) < 27:
                await asyncio.sleep(0.01)
            # A viewer watches: the scrollback, then the live output; its typing goes nowhere.
            csrf = await login(client, "vic", "viewer-pass")
            r = await client.post("/api/guests/web02/serial", headers={web.CSRF_HEADER: csrf})
            assert r.status == 409 and "not running" in (await r.json())["error"]
            r = await client.post("/api/guests/web01/serial", headers={web.CSRF_HEADER: csrf})
            assert r.status == 200
            url = (await r.json())["url"]
            assert url.startswith("/ws/serial/web01?ticket=")
            viewer = await client.ws_connect(url, headers={"Origin": origin})
            assert await viewer.receive_bytes(timeout=5) == b"vmbundle-testguest: ready\r\n"
            await viewer.send_bytes(b"poweroff\n")
            await viewer.send_str("panic\n")
            await qemu.say(b"live\r\n")
            assert await viewer.receive_bytes(timeout=5) == b"live\r\n"
            # An operator types.
            client.session.cookie_jar.clear()
            csrf = await login(client, "olga", "operator-pass")
            (sid,) = [c.value for c in client.session.cookie_jar if c.key == web.COOKIE]
            # A ticket for the screen never opens the serial console, nor the other way.
            screen = tickets.issue(Grant("olga", sid, "web01"))
            assert await _ws_status(client, f"/ws/serial/web01?ticket={screen}", origin) == 403
            r = await client.post("/api/guests/web01/serial", headers={web.CSRF_HEADER: csrf})
            ticket = (await r.json())["ticket"]
            assert await _ws_status(client, f"/ws/console/web01?ticket={ticket}", origin) == 403
            for bad_origin in ("http://evil.example", None):
                r = await client.post("/api/guests/web01/serial", headers={web.CSRF_HEADER: csrf})
                url = (await r.json())["url"]
                assert await _ws_status(client, url, bad_origin) == 403
            r = await client.post("/api/guests/web01/serial", headers={web.CSRF_HEADER: csrf})
            url = (await r.json())["url"]
            operator = await client.ws_connect(url, headers={"Origin": origin})
            assert await operator.receive_bytes(timeout=5) == (
                b"vmbundle-testguest: ready\r\nlive\r\n"
            )
            assert await _ws_status(client, url, origin) == 403, "a ticket is good once"
            await operator.send_str("reboot\n")
            await operator.send_bytes(b"poweroff\n")
            deadline = time.monotonic() + 5
            while bytes(qemu.received) != b"reboot\npoweroff\n":
                assert time.monotonic() < deadline, bytes(qemu.received)
                await asyncio.sleep(0.01)
            # The guest gone: each socket is closed.
            await serial.close()
            del ctl.serials["web01"]
            for ws in (viewer, operator):
                msg = await ws.receive(timeout=5)
                assert msg.type == WSMsgType.CLOSE
        finally:
            await serial.close()
            await qemu.close()
            shutil.rmtree(top, ignore_errors=True)

    serve(tmp_path, test)
