"""The web console's API refuses what it must (vmbundle.controller.web): no
session, no CSRF token, a role that may not, and console sockets with no ticket,
a used one, an expired one, one for another guest, or from another Origin.
Served by aiohttp for real, on loopback, to aiohttp's own client."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
from aiohttp import ClientSession, WSServerHandshakeError
from aiohttp.test_utils import TestClient, TestServer

from vmbundle import users
from vmbundle.controller import tickets as ticketing
from vmbundle.controller import web
from vmbundle.controller.daemon import Controller
from vmbundle.controller.sessions import Sessions
from vmbundle.controller.tickets import Grant, Tickets
from vmbundle.settings import HostSettings
from vmbundle.users import User

FAST = {"n": 1 << 10}
ACCOUNTS = {
    "olga": User("olga", "operator", users.hash_password("operator-pass", **FAST)),
    "vic": User("vic", "viewer", users.hash_password("viewer-pass", **FAST)),
    "ada": User("ada", "admin", users.hash_password("admin-pass", **FAST)),
}
TOKEN = "scraper-token-0123456789"


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
        settings = HostSettings(run_dir=tmp_path / "run", web_metrics_token=TOKEN)
        ctl = Controller(settings, structlog.get_logger("test"))
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


def test_metrics_for_an_admin_or_the_configured_token_only(tmp_path: Path) -> None:
    async def test(client: TestClient[Any, Any], _t: Tickets, _c: Clock) -> None:
        r = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status == 200 and "# TYPE" in await r.text()
        for wrong in (f"Bearer {TOKEN}x", TOKEN, "Bearer "):
            r = await client.get("/metrics", headers={"Authorization": wrong})
            assert r.status == 401, wrong
        await login(client, "olga", "operator-pass")
        r = await client.get("/metrics")
        assert r.status == 403 and (await r.json()) == {"error": "olga (operator) may not metrics"}
        client.session.cookie_jar.clear()
        await login(client, "ada", "admin-pass")
        assert (await client.get("/metrics")).status == 200

    serve(tmp_path, test)


def test_the_session_says_what_the_pages_may_offer(tmp_path: Path) -> None:
    async def test(client: TestClient[Any, Any], _t: Tickets, _c: Clock) -> None:
        csrf = await login(client, "vic", "viewer-pass")
        me = await (await client.get("/api/session")).json()
        assert me["user"] == "vic" and me["role"] == "viewer" and me["csrf"] == csrf
        assert me["may"]["start"] is False and me["may"]["type"] is False
        r = await client.get("/")
        assert r.status == 200 and "default-src 'self'" in r.headers["Content-Security-Policy"]

    serve(tmp_path, test)


def test_assets_never_leave_their_folders(tmp_path: Path) -> None:
    async def test(client: TestClient[Any, Any], _t: Tickets, _c: Clock) -> None:
        assert (await client.get("/assets/static/common.js")).status == 200
        for path in (
            "/assets/static/../index.html",
            "/assets/static/%2e%2e/%2e%2e/web.py",
            "/assets/novnc/../../../web.py",
            "/assets/nothing/x.js",
            "/assets/static/missing.js",
        ):
            r = await client.get(path)
            assert r.status == 404, path

    serve(tmp_path, test)
