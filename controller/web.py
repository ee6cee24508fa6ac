"""The web console's JSON API and its console WebSocket (aiohttp, in the controller).

  POST /api/login                      {"user", "password"} -> session cookie + {"csrf"}
  POST /api/logout
  GET  /api/guests                     (viewer) the guests, as the local API lists them
  GET  /api/guests/{name}/thumbnail    (viewer) PNG, 320 wide, only of a running guest
  POST /api/guests/{name}/{start|stop|poweroff|reset}   (operator) through SMF or QMP
  POST /api/guests/{name}/console      (operator) -> {"ticket", "url"}
  GET  /ws/console/{name}?ticket=...   the guest's VNC stream (noVNC), one ticket each
  POST /api/guests/{name}/serial       (viewer) -> {"ticket", "url"}
  GET  /ws/serial/{name}?ticket=...    the guest's serial console: binary frames of its
                                       scrollback (the last REPLAY_BYTES), then its live
                                       output; what the browser sends is typed on it
                                       when the user may "type" (operator), else dropped

Every request but login needs the session cookie; every POST needs the session's
CSRF token in the X-CSRF-Token header; every action is logged with the user.
aiohttp checks no Origin, so the WebSocket's must be the page's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from vmbundle.controller import api
from vmbundle.controller.daemon import Controller
from vmbundle.controller.serial import CLOSED, DROPPED, REPLAY_BYTES, SerialConsole
from vmbundle.controller.sessions import LoginRefused, Session, Sessions
from vmbundle.controller.tickets import Grant, TicketRefused, Tickets
from vmbundle.errors import VmbundleError
from vmbundle.ops import lifecycle
from vmbundle.users import User

COOKIE = "vmbundle_session"
CSRF_HEADER = "X-CSRF-Token"
THUMBNAIL_WIDTH = 320
ACTIONS = ("start", "stop", "poweroff", "reset")

SESSIONS_KEY: web.AppKey[Sessions] = web.AppKey("sessions", Sessions)
TICKETS_KEY: web.AppKey[Tickets] = web.AppKey("tickets", Tickets)
SECURE_KEY: web.AppKey[bool] = web.AppKey("secure", bool)


_ERRORS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    401: web.HTTPUnauthorized,
    403: web.HTTPForbidden,
    404: web.HTTPNotFound,
    409: web.HTTPConflict,
}


def _json_error(status: int, line: str) -> web.HTTPException:
    return _ERRORS[status](text=json.dumps({"error": line}), content_type="application/json")


def _session(request: web.Request, action: str) -> Session:
    s = request.app[SESSIONS_KEY].get(request.cookies.get(COOKIE))
    if s is None:
        raise _json_error(401, "log in first: POST /api/login")
    if request.method == "POST" and not Sessions.csrf_ok(s, request.headers.get(CSRF_HEADER)):
        raise _json_error(403, f"the {CSRF_HEADER} header must carry this session's token")
    if not s.user.may(action):
        raise _json_error(403, f"{s.user.name} ({s.user.role}) may not {action}")
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
        raise _json_error(400, 'the body must be {"user": NAME, "password": PASSWORD}')
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
    response = web.json_response({})
    response.del_cookie(COOKIE, path="/")
    return response


async def guests(request: web.Request) -> web.Response:
    _session(request, "list")
    return await api.guests(request)


async def thumbnail(request: web.Request) -> web.StreamResponse:
    _session(request, "thumbnail")
    ctl = request.app[api.CONTROLLER_KEY]
    name = api.name_of(request)
    png = await api.screenshot_png(ctl, name, THUMBNAIL_WIDTH)
    return web.Response(body=png, content_type="image/png", headers={"Cache-Control": "no-store"})


async def action(request: web.Request) -> web.Response:
    verb = request.match_info["action"]
    if verb not in ACTIONS:
        raise _json_error(404, f"{verb[:32]!r}: not an action; one of {', '.join(ACTIONS)}")
    s = _session(request, verb)
    ctl = request.app[api.CONTROLLER_KEY]
    name = api.name_of(request)
    _log(request, s.user, verb, vm=name)
    try:
        if verb == "start":
            await asyncio.to_thread(lifecycle.start, name, wait=False)
        elif verb == "stop":
            await asyncio.to_thread(lifecycle.stop, name, wait=False)
        else:
            session = api.session_of(ctl, name)
            command = "quit" if verb == "poweroff" else "system_reset"
            if verb == "poweroff":
                # SMF owns the state: disable first, so the quit is not a crash to restart.
                await asyncio.to_thread(lifecycle.disable, session.fmri)
            else:
                await session.execute(command)
    except VmbundleError as exc:
        raise _json_error(409, str(exc)) from None
    return web.json_response({"done": verb, "guest": name})


async def console_ticket(request: web.Request) -> web.Response:
    s = _session(request, "console")
    name = api.name_of(request)
    api.session_of(request.app[api.CONTROLLER_KEY], name)  # running, or 409
    ticket = request.app[TICKETS_KEY].issue(Grant(s.user.name, s.id, name))
    _log(request, s.user, "console", vm=name)
    return web.json_response({"ticket": ticket, "url": f"/ws/console/{name}?ticket={ticket}"})


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
    return web.json_response({"ticket": ticket, "url": f"/ws/serial/{name}?ticket={ticket}"})


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    return origin is not None and origin == f"{request.scheme}://{request.host}"


def _socket_session(request: web.Request, name: str, channel: str) -> Session:
    """The session a console or serial socket opens for: the cookie's, from this
    console's own page, with a ticket for exactly this guest and channel."""
    s = request.app[SESSIONS_KEY].get(request.cookies.get(COOKIE))
    if s is None:
        raise _json_error(401, "log in first: POST /api/login")
    if not _same_origin(request):
        raise _json_error(
            403, f"{name}: the {channel} socket must come from this console's own page"
        )
    try:
        request.app[TICKETS_KEY].redeem(
            request.query.get("ticket"), Grant(s.user.name, s.id, name, channel=channel)
        )
    except TicketRefused as exc:
        raise _json_error(403, str(exc)) from None
    return s


async def console_socket(request: web.Request) -> web.StreamResponse:
    name = api.name_of(request)
    _socket_session(request, name, "console")
    ctl = request.app[api.CONTROLLER_KEY]
    guest = api.session_of(ctl, name)
    try:
        reader, writer = await asyncio.open_unix_connection(str(guest.run.vnc_socket))
    except OSError as exc:
        raise _json_error(409, f"{name}: its VNC server does not answer: {exc.strerror}") from None
    # noVNC offers no subprotocol since 1.2; answer "binary" to one that does.
    ws = web.WebSocketResponse(protocols=("binary",), compress=False, max_msg_size=1 << 22)
    await ws.prepare(request)
    await _pump(ws, reader, writer)
    return ws


async def _pump(
    ws: web.WebSocketResponse, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    async def from_guest() -> None:
        while data := await reader.read(1 << 16):
            await ws.send_bytes(data)

    async def to_guest() -> None:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY:
                await ws.close(code=1003, message=b"binary frames only")
                return
            writer.write(msg.data)
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
            web.post("/api/login", login),
            web.post("/api/logout", logout),
            web.get("/api/guests", guests),
            web.get("/api/guests/{name}/thumbnail", thumbnail),
            web.post("/api/guests/{name}/console", console_ticket),
            web.post("/api/guests/{name}/serial", serial_ticket),
            web.post("/api/guests/{name}/{action}", action),
            web.get("/ws/console/{name}", console_socket),
            web.get("/ws/serial/{name}", serial_socket),
        ]
    )
    return application
