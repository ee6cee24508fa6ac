"""The web console's JSON API and its console WebSocket (aiohttp, in the controller).

  GET  /                              the guest list (pages/index.html); /console/{name},
                                       /serial/{name}: a guest's screen and serial console
  POST /api/login                      {"user", "password"} -> session cookie + {"csrf"}
  POST /api/logout
  GET  /api/session                    who is logged in: {"user", "role", "csrf", "may"},
                                       or {"user": null}
  GET  /api/guests                     (viewer) the guests, as the local API lists them
  GET  /api/guests/{name}              (viewer) one guest, as `vmbundle status --json`
  GET  /api/problems                   (viewer) bundles the controller will not import
  GET  /api/guests/{name}/thumbnail    (viewer) PNG, 320 wide, only of a running guest
  POST /api/guests/{name}/{start|stop|poweroff|reset}   (operator) through SMF or QMP
  POST /api/guests/{name}/console      (viewer) -> {"ticket", "url", "view_only"}
  GET  /ws/console/{name}?ticket=...   the guest's VNC stream (noVNC), one ticket each
  POST /api/guests/{name}/serial       (viewer) -> {"ticket", "url", "read_only"}
  GET  /ws/serial/{name}?ticket=...    the guest's serial console: binary frames of its
                                       scrollback (the last REPLAY_BYTES), then its live
                                       output; what the browser sends is typed on it
                                       when the user may "type" (operator), else dropped
  GET  /metrics                        (admin, or [web] metrics_token as a Bearer token)

The console's client-to-guest half goes through controller.rfb: every client is
shared (two may watch one guest), and a user who may not "type" (a viewer) gets a
view-only console, whose keys, mouse and clipboard are dropped here, server-side.

Every request but login needs the session cookie; every POST needs the session's
CSRF token in the X-CSRF-Token header; every action is logged with the user.
aiohttp checks no Origin, so the WebSocket's must be the page's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from vmbundle.controller import api
from vmbundle.controller.daemon import Controller
from vmbundle.controller.rfb import ClientStream, RfbRefused
from vmbundle.controller.serial import CLOSED, DROPPED, REPLAY_BYTES, SerialConsole
from vmbundle.controller.sessions import LoginRefused, Session, Sessions
from vmbundle.controller.tickets import Grant, TicketRefused, Tickets
from vmbundle.controller.vnc_target import one_time_password, password_commands, vnc_target
from vmbundle.errors import VmbundleError
from vmbundle.guest.display import BASE_PORT
from vmbundle.ops import lifecycle
from vmbundle.users import User

COOKIE = "vmbundle_session"
CSRF_HEADER = "X-CSRF-Token"
THUMBNAIL_WIDTH = 320
ACTIONS = ("start", "stop", "poweroff", "reset")
# What the pages ask before they offer a button.
PAGE_ACTIONS = (*ACTIONS, "console", "serial", "type", "metrics", "display")

PAGES = Path(__file__).resolve().parent / "pages"
# Served from the npm packages scripts/setup-host installs (npm ci in pages/).
VENDOR = {
    "novnc": PAGES / "node_modules/@novnc/novnc",
    "xterm": PAGES / "node_modules/@xterm/xterm",
    "xterm-addon-fit": PAGES / "node_modules/@xterm/addon-fit",
}
# The pages load only their own scripts, styles and images, and talk only to this
# origin (WebSockets included); no page may frame them.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# The guest's VNC stream is read up to this much at a time, each read sent as one
# WebSocket message; asyncio pauses the socket only past twice this much unread. At
# asyncio's 64 KiB every 256 KiB read went out as four messages, the socket paused and
# resumed along the way: bench/console.py measured 1.76 ms of CPU a MB proxied then,
# 0.95 ms now (websockify 1.11).
GUEST_READ = 1 << 20

SESSIONS_KEY: web.AppKey[Sessions] = web.AppKey("sessions", Sessions)
TICKETS_KEY: web.AppKey[Tickets] = web.AppKey("tickets", Tickets)
SECURE_KEY: web.AppKey[bool] = web.AppKey("secure", bool)


def _session(request: web.Request, action: str) -> Session:
    s = request.app[SESSIONS_KEY].get(request.cookies.get(COOKIE))
    if s is None:
        raise api.Refused(401, "log in first: POST /api/login")
    if request.method == "POST" and not Sessions.csrf_ok(s, request.headers.get(CSRF_HEADER)):
        raise api.Refused(403, f"the {CSRF_HEADER} header must carry this session's token")
    if not s.user.may(action):
        raise api.Refused(403, f"{s.user.name} ({s.user.role}) may not {action}")
    return s


def _log(request: web.Request, user: User, action: str, **fields: Any) -> None:
    request.app[api.CONTROLLER_KEY].log.info("web.action", user=user.name, action=action, **fields)


async def login(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not all(
        isinstance(body.get(k), str) for k in ("user", "password")
    ):
        raise api.Refused(400, 'the body must be {"user": NAME, "password": PASSWORD}')
    address = request.remote or "unknown"
    try:
        s = request.app[SESSIONS_KEY].login(body["user"], body["password"], address)
    except LoginRefused as exc:
        request.app[api.CONTROLLER_KEY].log.warning(
            "web.login_refused", user=body["user"][:64], address=address
        )
        headers = {"Retry-After": str(int(exc.retry_after) + 1)} if exc.retry_after else {}
        return web.json_response(
            {"error": str(exc)}, status=429 if exc.retry_after else 401, headers=headers
        )
    _log(request, s.user, "login", address=address)
    response = web.json_response({"user": s.user.name, "role": s.user.role, "csrf": s.csrf})
    response.set_cookie(
        COOKIE, s.id, httponly=True, samesite="Strict", secure=request.app[SECURE_KEY], path="/"
    )
    return response


async def logout(request: web.Request) -> web.Response:
    s = _session(request, "list")
    request.app[SESSIONS_KEY].logout(s.id)
    _log(request, s.user, "logout")
    response = web.json_response({})
    response.del_cookie(COOKIE, path="/")
    return response


async def whoami(request: web.Request) -> web.Response:
    # Asked by every page as it loads: no session is an answer here, not an error.
    s = request.app[SESSIONS_KEY].get(request.cookies.get(COOKIE))
    if s is None:
        return web.json_response({"user": None})
    may = {a: s.user.may(a) for a in PAGE_ACTIONS}
    listen = request.app[api.CONTROLLER_KEY].settings.vnc_listen
    return web.json_response(
        {
            "user": s.user.name,
            "role": s.user.role,
            "csrf": s.csrf,
            "may": may,
            "display_listen": listen,
        }
    )


async def guests(request: web.Request) -> web.Response:
    _session(request, "list")
    return await api.guests(request)


async def guest(request: web.Request) -> web.Response:
    _session(request, "list")
    return await api.guest(request)


async def problems(request: web.Request) -> web.Response:
    _session(request, "list")
    return await api.problems(request)


async def metrics(request: web.Request) -> web.Response:
    token = request.app[api.CONTROLLER_KEY].settings.web_metrics_token
    offered = request.headers.get("Authorization", "")
    if not (
        token is not None
        and offered.startswith("Bearer ")
        and hmac.compare_digest(offered[7:].encode(), token.encode())
    ):
        _session(request, "metrics")
    return await api.metrics_text(request)


def _page(file: str) -> Any:
    async def serve(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(PAGES / file, headers=PAGE_HEADERS)

    return serve


async def asset(request: web.Request) -> web.StreamResponse:
    """One file of pages/static or of an npm package in VENDOR, never above either."""
    package, path = request.match_info["package"], request.match_info["path"]
    base = PAGES / "static" if package == "static" else VENDOR.get(package)
    if base is None:
        raise api.Refused(404, f"{package[:32]!r}: no such asset package")
    if not base.is_dir():
        raise api.Refused(
            503, f"{package}: not installed here; run scripts/setup-host (npm ci in {PAGES})"
        )
    file = (base / path).resolve()
    if not file.is_relative_to(base.resolve()) or not file.is_file():
        raise api.Refused(404, f"{path[:64]!r}: no such file in {package}")
    return web.FileResponse(file, headers=PAGE_HEADERS)


async def thumbnail(request: web.Request) -> web.StreamResponse:
    _session(request, "thumbnail")
    ctl = request.app[api.CONTROLLER_KEY]
    name = api.name_of(request)
    png = await api.screenshot_png(ctl, name, THUMBNAIL_WIDTH)
    return web.Response(body=png, content_type="image/png", headers={"Cache-Control": "no-store"})


async def action(request: web.Request) -> web.Response:
    verb = request.match_info["action"]
    if verb not in ACTIONS:
        raise api.Refused(404, f"{verb[:32]!r}: not an action; one of {', '.join(ACTIONS)}")
    s = _session(request, verb)
    ctl = request.app[api.CONTROLLER_KEY]
    name = api.name_of(request)
    _log(request, s.user, verb, vm=name)
    try:
        if verb == "start":
            await asyncio.to_thread(lifecycle.start, ctl.settings, name, wait=False)
        elif verb in ("stop", "poweroff"):
            # SMF owns the state: its stop method quits QEMU, so that is no crash to restart.
            force_in = ctl.settings.run_dir if verb == "poweroff" else None
            await asyncio.to_thread(lifecycle.stop, name, wait=False, force_in=force_in)
        else:
            await api.session_of(ctl, name).execute("system_reset")
    except VmbundleError as exc:
        raise api.Refused(409, str(exc)) from None
    return web.json_response({"done": verb, "guest": name})


async def config(request: web.Request) -> web.Response:
    """An administrator's `vmbundle set` from the page: the same edit and refresh."""
    s = _session(request, "configure")
    ctl = request.app[api.CONTROLLER_KEY]
    name = api.name_of(request)
    _log(request, s.user, "configure", vm=name)
    return web.json_response(await api.change_config(ctl, name, await api.json_or_none(request)))


async def desktop_display(request: web.Request) -> web.Response:
    """Where a desktop VNC viewer connects to a running guest, how that display is
    protected, and its password (an operator's: it opens the guest's console)."""
    s = _session(request, "display")
    ctl = request.app[api.CONTROLLER_KEY]
    name = api.name_of(request)
    guest = api.session_of(ctl, name)  # running, or 409
    record = guest.record
    if record.display is None:
        raise api.Refused(409, f"{name}: has no desktop display (vnc.enabled, or no TCP display)")
    password = None
    with contextlib.suppress(FileNotFoundError):
        password = guest.run.vnc_password.read_text()
    _log(request, s.user, "display", vm=name)
    return web.json_response(
        {
            "display": record.display,
            "port": BASE_PORT + record.display,
            "protection": record.display_auth,
            "password": password,
        },
        headers={"Cache-Control": "no-store"},
    )


async def console_ticket(request: web.Request) -> web.Response:
    s = _session(request, "console")
    ctl = request.app[api.CONTROLLER_KEY]
    name = api.name_of(request)
    guest = api.session_of(ctl, name)  # running, or 409
    target = vnc_target(name, guest.record, guest.run, ctl.settings.vnc_listen)
    password = None
    if target.one_time_password:
        password = one_time_password()
        for command, arguments in password_commands(password):
            await api.qmp(guest, command, arguments, 10.0)
    ticket = request.app[TICKETS_KEY].issue(Grant(s.user.name, s.id, name))
    view_only = _view_only(s.user)
    _log(request, s.user, "console", vm=name, view_only=view_only)
    return web.json_response(
        {
            "ticket": ticket,
            "url": f"/ws/console/{name}?ticket={ticket}",
            "view_only": view_only,
            # Only for the illumos fork's display, good for one connection within 30 s.
            "password": password,
        }
    )


def _view_only(user: User) -> bool:
    """Whether the user only watches: their console drops their keys, mouse and clipboard."""
    return not user.may("type")


def _serial_of(ctl: Controller, name: str) -> SerialConsole:
    serial = ctl.serials.get(name)
    if serial is None:
        raise api.Refused(
            409,
            f"{name}: not running, so there is no serial console; start it: vmbundle start {name}",
        )
    return serial


async def serial_ticket(request: web.Request) -> web.Response:
    s = _session(request, "serial")
    name = api.name_of(request)
    _serial_of(request.app[api.CONTROLLER_KEY], name)  # running, or 409
    ticket = request.app[TICKETS_KEY].issue(Grant(s.user.name, s.id, name, channel="serial"))
    _log(request, s.user, "serial", vm=name)
    return web.json_response(
        {
            "ticket": ticket,
            "url": f"/ws/serial/{name}?ticket={ticket}",
            "read_only": not s.user.may("type"),
        }
    )


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    return origin is not None and origin == f"{request.scheme}://{request.host}"


def _socket_session(request: web.Request, name: str, channel: str) -> Session:
    """The session a console or serial socket opens for: the cookie's, from this
    console's own page, with a ticket for exactly this guest and channel."""
    s = request.app[SESSIONS_KEY].get(request.cookies.get(COOKIE))
    if s is None:
        raise api.Refused(401, "log in first: POST /api/login")
    if not _same_origin(request):
        raise api.Refused(
            403, f"{name}: the {channel} socket must come from this console's own page"
        )
    try:
        request.app[TICKETS_KEY].redeem(
            request.query.get("ticket"), Grant(s.user.name, s.id, name, channel=channel)
        )
    except TicketRefused as exc:
        raise api.Refused(403, str(exc)) from None
    return s


async def console_socket(request: web.Request) -> web.StreamResponse:
    name = api.name_of(request)
    s = _socket_session(request, name, "console")
    ctl = request.app[api.CONTROLLER_KEY]
    guest = api.session_of(ctl, name)
    target = vnc_target(name, guest.record, guest.run, ctl.settings.vnc_listen)
    try:
        if target.unix is not None:
            reader, writer = await asyncio.open_unix_connection(str(target.unix), limit=GUEST_READ)
        else:
            reader, writer = await asyncio.open_connection(
                target.host, target.port, limit=GUEST_READ
            )
    except OSError as exc:
        raise api.Refused(409, f"{name}: its VNC server does not answer: {exc.strerror}") from None
    # noVNC offers no subprotocol since 1.2; answer "binary" to one that does.
    ws = web.WebSocketResponse(protocols=("binary",), compress=False, max_msg_size=1 << 22)
    await ws.prepare(request)
    stream = ClientStream(view_only=_view_only(s.user))
    log = ctl.log.bind(user=s.user.name, vm=name)
    await _pump(ws, reader, writer, stream, log)
    return ws


async def _pump(
    ws: web.WebSocketResponse,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    stream: ClientStream,
    log: Any,
) -> None:
    async def from_guest() -> None:
        while data := await reader.read(GUEST_READ):
            await ws.send_bytes(data)

    async def to_guest() -> None:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY:
                await ws.close(code=1003, message=b"binary frames only")
                return
            try:
                data = stream.feed(msg.data)
            except RfbRefused as exc:
                log.warning("web.console_refused", error=str(exc))
                # A close reason is at most 123 bytes.
                reason = str(exc).encode()[:123]
                await ws.close(code=WSCloseCode.PROTOCOL_ERROR, message=reason)
                return
            if data:
                writer.write(data)
                await writer.drain()

    tasks = [asyncio.create_task(from_guest()), asyncio.create_task(to_guest())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                await t
        writer.close()
        await ws.close()


async def serial_socket(request: web.Request) -> web.StreamResponse:
    name = api.name_of(request)
    s = _socket_session(request, name, "serial")
    serial = _serial_of(request.app[api.CONTROLLER_KEY], name)
    may_type = s.user.may("type")
    ws = web.WebSocketResponse(protocols=("binary",), compress=False, max_msg_size=1 << 16)
    await ws.prepare(request)
    _log(request, s.user, "serial.open", vm=name, typing=may_type)
    past, sub = serial.subscribe(REPLAY_BYTES)

    async def send(data: bytes) -> None:
        await ws.send_bytes(data)

    async def typed() -> AsyncIterator[bytes]:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                data = msg.data
            elif msg.type == WSMsgType.TEXT:
                data = msg.data.encode()
            else:
                continue
            # Watching only: what a viewer types goes nowhere.
            if may_type:
                yield data

    try:
        if past:
            await ws.send_bytes(past)
        await serial.follow(sub, send, typed(), input_ends=True)
    except (ConnectionError, OSError):
        pass  # the browser went away
    finally:
        serial.unsubscribe(sub)
        if sub.ended == DROPPED:
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow; reconnect")
        elif sub.ended == CLOSED:
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"the guest's boot ended")
        else:
            await ws.close()
    return ws


def app(ctl: Controller, sessions: Sessions, tickets: Tickets, *, secure: bool) -> web.Application:
    application = web.Application(middlewares=[api.errors], client_max_size=1 << 16)
    application[api.CONTROLLER_KEY] = ctl
    application[SESSIONS_KEY] = sessions
    application[TICKETS_KEY] = tickets
    application[SECURE_KEY] = secure
    application.add_routes(
        [
            web.get("/", _page("index.html")),
            web.get("/console/{name}", _page("console.html")),
            web.get("/serial/{name}", _page("serial.html")),
            web.get("/assets/{package}/{path:.+}", asset),
            web.post("/api/login", login),
            web.post("/api/logout", logout),
            web.get("/api/session", whoami),
            web.get("/api/guests", guests),
            web.get("/api/problems", problems),
            web.get("/api/guests/{name}", guest),
            web.get("/api/guests/{name}/thumbnail", thumbnail),
            web.get("/api/guests/{name}/display", desktop_display),
            web.post("/api/guests/{name}/console", console_ticket),
            web.post("/api/guests/{name}/serial", serial_ticket),
            web.post("/api/guests/{name}/config", config),
            web.post("/api/guests/{name}/{action}", action),
            web.get("/ws/console/{name}", console_socket),
            web.get("/metrics", metrics),
            web.get("/ws/serial/{name}", serial_socket),
        ]
    )
    return application
