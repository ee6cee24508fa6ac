"""The web console's API refuses what it must (vmbundle.controller.web): no
session, no CSRF token, a role that may not, and console sockets with no ticket,
a used one, an expired one, one for another guest or channel, or from another
Origin; its console socket, in front of a real QEMU's VNC server, passes an
operator's input, a viewer's screen requests only, and makes every client shared;
the serial socket replays, follows, and takes typing from an operator only.
Served by aiohttp for real, on loopback, to aiohttp's own client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import (
    ClientSession,
    ClientWebSocketResponse,
    CookieJar,
    WSCloseCode,
    WSMessage,
    WSMsgType,
    WSServerHandshakeError,
)
from aiohttp.test_utils import TestClient, TestServer
from support.fake_serial import FakeQemu
from support.rfb import cut_text, key, pointer, qemu_key, update_request, vnc_auth_response

from vmbundle import users
from vmbundle.controller import api, web
from vmbundle.controller import tickets as ticketing
from vmbundle.controller.daemon import Controller
from vmbundle.controller.policy import Reaction
from vmbundle.controller.serial import SerialConsole
from vmbundle.controller.session import GuestSession
from vmbundle.controller.sessions import Sessions
from vmbundle.controller.tickets import Grant, Tickets
from vmbundle.guest.boot_record import BootRecord
from vmbundle.guest.rundir import RunPaths
from vmbundle.settings import HostSettings
from vmbundle.users import User
from vmbundle.vm.model import MiB, VmConfig

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
    tmp_path: Path,
    test: Callable[[TestClient[Any, Any], Tickets, Clock], Awaitable[None]],
    roots: tuple[str, ...] = (),
) -> None:
    async def main() -> None:
        clock = Clock()
        settings = HostSettings(
            run_dir=tmp_path / "run", web_metrics_token=TOKEN, bundle_roots=roots
        )
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
        # A viewer may watch a console (view-only): past the role, web01 is not running.
        r = await client.post("/api/guests/web01/console", headers={web.CSRF_HEADER: csrf})
        assert r.status == 409

    serve(tmp_path, test)


def test_an_admin_edits_a_guests_config_as_vmbundle_set_does(tmp_path: Path) -> None:
    root = tmp_path / "vms"
    (root / "web01").mkdir(parents=True)
    doc = {"schema_version": 1, "name": "web01", "ram": "64M", "vcpus": 1}
    doc["uuid"] = "0f2a6d3e-5b7c-4e8f-9a1b-2c3d4e5f6a7b"
    (root / "web01" / "vm.json").write_text(json.dumps(doc))
    before = (root / "web01" / "vm.json").read_bytes()

    async def test(client: TestClient[Any, Any], _t: Tickets, _c: Clock) -> None:
        csrf = await login(client, "olga", "operator-pass")
        headers = {web.CSRF_HEADER: csrf}
        r = await client.post("/api/guests/web01/config", json={"set": ["ram=1G"]}, headers=headers)
        assert r.status == 403
        assert (await r.json()) == {"error": "olga (operator) may not configure"}
        client.session.cookie_jar.clear()
        headers = {web.CSRF_HEADER: await login(client, "ada", "admin-pass")}
        for body, status, line in (
            ({"set": "ram=1G"}, 400, 'web01: the body must be JSON like {"set": ["ram=4G"]}'),
            ({"set": ["ram=lots"]}, 422, 'web01: ram: must be a size like 20G, got "lots"'),
            ({"set": ["rma=1G"]}, 422, "web01: rma: unknown key; did you mean 'ram'?"),
        ):
            r = await client.post("/api/guests/web01/config", json=body, headers=headers)
            assert r.status == status and line in (await r.json())["error"], await r.text()
        assert (root / "web01" / "vm.json").read_bytes() == before
        r = await client.post(
            "/api/guests/web01/config", json={"set": ["ram=1G", "vcpus=2"]}, headers=headers
        )
        assert r.status == 200, await r.text()
        assert await r.json() == {"guest": "web01", "saved": True, "refreshed": None}
        saved = json.loads((root / "web01" / "vm.json").read_text())
        assert (saved["ram"], saved["vcpus"]) == ("1G", 2)

    serve(tmp_path, test, roots=(str(root),))


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


# -- the console's RFB filter, against a real QEMU -----------------------------------

QEMU = "/usr/bin/qemu-system-x86_64"
UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
FMRI = "svc:/system/vmbundle/vm:web01"


@contextlib.contextmanager
def vnc_only_qemu(run: RunPaths, vnc: str | None = None) -> Iterator[tuple[int, Path]]:
    """A real QEMU with no machine at all (about 50 ms to start): only the web
    console's VNC server and the controller's QMP monitor, in the guest's run
    directory. Its trace (stderr, unbuffered) says which input reached it and which
    VNC clients came and went."""
    run.dir.mkdir(parents=True)
    trace = run.dir / "trace.log"
    argv = [
        QEMU,
        "-machine", "none", "-nodefaults", "-display", "none",
        "-vnc", vnc or f"unix:{run.vnc_socket}",
        "-qmp", f"unix:{run.controller_qmp},server=on,wait=off",
        "-trace", "vnc_key_event_*", "-trace", "input_event_btn",
        "-trace", "vnc_client_connect", "-trace", "vnc_client_disconnect_start",
    ]  # fmt: skip
    with trace.open("wb") as out:
        qemu = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    try:
        yield qemu.pid, trace
    finally:
        qemu.terminate()
        qemu.wait(10)


async def _no_reaction(_s: GuestSession, _r: Reaction) -> None:
    """A guest with no machine never panics nor powers off."""


async def _until(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not done():
        assert time.monotonic() < deadline, f"no {what} within 10 s"
        await asyncio.sleep(0.02)


class VncViewer:
    """noVNC's side of RFB 3.8 with security None, over the console socket."""

    def __init__(self, ws: ClientWebSocketResponse) -> None:
        self.ws = ws
        self._got = bytearray()

    async def read(self, n: int) -> bytes:
        while len(self._got) < n:
            msg = await self.ws.receive(timeout=10)
            assert msg.type == WSMsgType.BINARY, msg
            self._got += msg.data
        data = bytes(self._got[:n])
        del self._got[:n]
        return data

    async def send(self, *messages: bytes) -> None:
        await self.ws.send_bytes(b"".join(messages))

    async def handshake(self) -> None:
        """Asking for the screen alone (shared flag 0), as `new RFB(..., {shared: false})` would."""
        assert await self.read(12) == b"RFB 003.008\n"
        await self.send(b"RFB 003.008\n")
        assert await self.read(2) == b"\x01\x01"  # one security type: None
        await self.send(b"\x01")
        assert await self.read(4) == bytes(4)  # SecurityResult: OK
        await self.send(b"\x00")
        server_init = await self.read(24)
        await self.read(struct.unpack(">I", server_init[20:])[0])  # the desktop's name

    async def sync(self) -> None:
        """Ask for a corner of the screen and read the answer: QEMU handles one
        client's messages in order, so it has handled all those sent before."""
        await self.send(update_request(0, 0, 0, 8, 8))
        kind, rects = struct.unpack(">BxH", await self.read(4))
        assert kind == 0  # FramebufferUpdate
        for _ in range(rects):
            _x, _y, w, h, encoding = struct.unpack(">HHHHi", await self.read(12))
            assert encoding == 0  # raw, 32 bits a pixel
            await self.read(w * h * 4)

    async def closed(self) -> WSMessage:
        while True:
            msg = await self.ws.receive(timeout=10)
            if msg.type != WSMsgType.BINARY:
                return msg


async def _open_console(
    stack: contextlib.AsyncExitStack, client: TestClient[Any, Any], user: str, password: str
) -> tuple[VncViewer, bool]:
    """Log in (a browser of one's own), ask for web01's console, open its socket."""
    http = await stack.enter_async_context(ClientSession(cookie_jar=CookieJar(unsafe=True)))
    r = await http.post(client.make_url("/api/login"), json={"user": user, "password": password})
    assert r.status == 200, await r.text()
    csrf = (await r.json())["csrf"]
    r = await http.post(
        client.make_url("/api/guests/web01/console"), headers={web.CSRF_HEADER: csrf}
    )
    assert r.status == 200, await r.text()
    answer = await r.json()
    ws = await http.ws_connect(
        client.make_url(answer["url"]), headers={"Origin": f"http://{client.host}:{client.port}"}
    )
    stack.push_async_callback(ws.close)
    return VncViewer(ws), answer


@pytest.mark.skipif(not os.access(QEMU, os.X_OK), reason="needs qemu-system-x86_64")
def test_a_viewer_watches_while_an_operator_types(tmp_path: Path) -> None:
    run = RunPaths.for_guest(tmp_path / "run", "web01")

    async def test(client: TestClient[Any, Any], _t: Tickets, _c: Clock) -> None:
        ctl: Controller = client.app[api.CONTROLLER_KEY]
        with vnc_only_qemu(run) as (pid, trace):
            config = VmConfig(schema_version=1, name="web01", uuid=UUID, ram=128 * MiB, vcpus=1)
            record = BootRecord(str(tmp_path / "web01"), config, "modern", pid, time.time())
            # What the controller's reconcile pass makes of a running guest.
            guest = GuestSession("web01", FMRI, run, record, _no_reaction, ctl.bus, ctl.log)
            ctl.sessions["web01"] = guest
            guest.start()
            try:
                await _until(lambda: guest.connected, "QMP session")  # QEMU is up
                async with contextlib.AsyncExitStack() as stack:
                    await _watch_and_type(stack, client, run, trace)
            finally:
                await ctl.close()

    serve(tmp_path, test)


def test_the_session_says_what_the_pages_may_offer(tmp_path: Path) -> None:
    async def test(client: TestClient[Any, Any], _t: Tickets, _c: Clock) -> None:
        assert await (await client.get("/api/session")).json() == {"user": None}
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


async def _watch_and_type(
    stack: contextlib.AsyncExitStack, client: TestClient[Any, Any], run: RunPaths, trace: Path
) -> None:
    olga, answer = await _open_console(stack, client, "olga", "operator-pass")
    assert answer["view_only"] is False and answer["password"] is None
    await olga.handshake()
    await olga.send(key(1, 0x61), key(0, 0x61), qemu_key(1, 0x71, 0x10), qemu_key(0, 0x71, 0x10))
    await olga.send(pointer(1, 10, 10), pointer(0, 10, 10))
    await olga.sync()

    vic, answer = await _open_console(stack, client, "vic", "viewer-pass")
    assert answer["view_only"] is True
    # Asking for the screen alone: had that reached QEMU, it would have dropped olga.
    await vic.handshake()
    await vic.send(key(1, 0x62), key(0, 0x62), qemu_key(1, 0x77, 0x11), qemu_key(0, 0x77, 0x11))
    await vic.send(pointer(4, 20, 20), pointer(0, 20, 20), cut_text(b"rm -rf /"))
    await vic.sync()  # a screen request passes
    await olga.sync()  # olga is still there

    seen = trace.read_text()
    assert "vnc_key_event_map down 1, sym 0x61 " in seen
    assert "vnc_key_event_map down 0, sym 0x61 " in seen
    assert "vnc_key_event_ext down 1, sym 0x71, keycode 0x10 " in seen
    assert "button left, down 1" in seen and "button left, down 0" in seen
    assert "sym 0x62" not in seen and "sym 0x77" not in seen and "button right" not in seen
    assert seen.count("vnc_client_connect ") == 2 and "disconnect" not in seen

    # What the filter cannot parse closes the socket.
    await vic.send(update_request(), bytes([7]))
    closing = await vic.closed()
    assert closing.type == WSMsgType.CLOSE and closing.data == WSCloseCode.PROTOCOL_ERROR
    assert closing.extra == "client message type 7: not one the console passes"

    # QEMU does drop the others for a client that asks for the screen alone unfiltered:
    # olga stayed above because her flag and vic's arrived as 1.
    reader, writer = await asyncio.open_unix_connection(str(run.vnc_socket))
    assert await reader.readexactly(12) == b"RFB 003.008\n"
    writer.write(b"RFB 003.008\n")
    assert await reader.readexactly(2) == b"\x01\x01"
    writer.write(b"\x01")
    assert await reader.readexactly(4) == bytes(4)
    writer.write(b"\x00")
    await reader.readexactly(24)
    assert (await olga.closed()).type == WSMsgType.CLOSE
    writer.close()


def _free_display() -> int:
    for display in range(90, 100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", 5900 + display)) != 0:
                return display
    raise AssertionError("no free VNC display in 90..99")


@pytest.mark.skipif(not os.access(QEMU, os.X_OK), reason="needs qemu-system-x86_64")
def test_the_illumos_forks_display_opens_with_a_one_time_password(tmp_path: Path) -> None:
    """The fork has only the TCP display; modern QEMU's TCP display with password=on
    stands in for it here (the same QMP set_password and expire_password)."""
    run = RunPaths.for_guest(tmp_path / "run", "web01")
    display = _free_display()

    async def test(client: TestClient[Any, Any], _t: Tickets, _c: Clock) -> None:
        ctl: Controller = client.app[api.CONTROLLER_KEY]
        with vnc_only_qemu(run, f"127.0.0.1:{display},password=on") as (pid, _trace):
            config = VmConfig(schema_version=1, name="web01", uuid=UUID, ram=128 * MiB, vcpus=1)
            record = BootRecord(
                str(tmp_path / "web01"), config, "illumos-kvm", pid, time.time(), display=display
            )
            guest = GuestSession("web01", FMRI, run, record, _no_reaction, ctl.bus, ctl.log)
            ctl.sessions["web01"] = guest
            guest.start()
            try:
                await _until(lambda: guest.connected, "QMP session")
                async with contextlib.AsyncExitStack() as stack:
                    for password, result in ((None, 0), ("wrong-pw", 1)):
                        viewer, answer = await _open_console(stack, client, "olga", "operator-pass")
                        assert len(answer["password"]) == 8
                        assert await viewer.read(12) == b"RFB 003.008\n"
                        await viewer.send(b"RFB 003.008\n")
                        assert await viewer.read(2) == b"\x01\x02"  # VNC authentication only
                        await viewer.send(b"\x02")
                        challenge = await viewer.read(16)
                        await viewer.send(
                            vnc_auth_response(password or answer["password"], challenge)
                        )
                        assert struct.unpack(">I", await viewer.read(4))[0] == result
            finally:
                await ctl.close()


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
