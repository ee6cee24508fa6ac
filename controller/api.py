"""The local API: HTTP on a UNIX socket only root can open, for the CLI.

  GET  /                        the controller itself (passes, QMP sessions, serial consoles)
  GET  /guests                  every guest, as `vmbundle list --json`, plus QMP and serial
  GET  /guests/{name}           `vmbundle status --json` fields, plus the live run state
  POST /guests/{name}/qmp       {"execute": CMD, "arguments": {...}}: one command
                                through the controller's session (one at a time per guest)
  POST /guests/{name}/config    {"set": ["ram=4G", ...]}: `vmbundle set`; a running guest
                                is refreshed, and the answer says what went live and what waits
  POST /guests/{name}/start     {"fmri": F, "pid": N}: from the start method, what its
                                start needs (vmbundle.guest.handoff), config/bundle read by
                                the controller; 409 with
                                "handoff": false when the method must boot the guest itself,
                                422 with "exit": the method's exit code when the start is refused
  GET  /guests/{name}/screenshot[?width=N]   PNG of the screen
  GET  /events[?guest=NAME]     one JSON object a line, as they happen
  GET  /metrics                 Prometheus text
  GET  /problems                bundles the controller will not import, and why

Every error is a JSON object {"error": "<one line>"} with a status that says
whose fault it was: 400 the request, 404 no such guest, 409 the guest is not in
a state to do it, 422 QEMU or the configuration refused, 504 QEMU did not answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import os
import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import web

from vmbundle.adapters import proc, smf
from vmbundle.controller import metrics
from vmbundle.controller.daemon import Controller
from vmbundle.controller.session import CommandFailed, GuestSession, NotConnected
from vmbundle.errors import ConfigError, NoSuchGuest, UsageError, VmbundleError
from vmbundle.guest import handoff, screenshot
from vmbundle.memory import ledger as memory_ledger
from vmbundle.ops import edit
from vmbundle.ops import memory as memory_ops
from vmbundle.ops import status as status_ops
from vmbundle.qemu.qmp import run_state_of
from vmbundle.vm.model import NAME_PATTERN

COMMAND = re.compile(r"[a-z][a-z0-9_-]{0,63}")
MAX_COMMAND_TIMEOUT = 120.0
MAX_WIDTH = 4096
# Commands that would break the controller's own session.
REFUSED_COMMANDS = {"qmp_capabilities"}

CONTROLLER_KEY: web.AppKey[Controller] = web.AppKey("controller", Controller)


def _error(status: int, line: str) -> web.Response:
    return web.json_response({"error": line}, status=status)


def name_of(request: web.Request) -> str:
    name = request.match_info["name"]
    if re.fullmatch(NAME_PATTERN, name) is None:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"{name[:64]!r}: not a guest name"}),
            content_type="application/json",
        )
    return name


def session_of(ctl: Controller, name: str) -> GuestSession:
    s = ctl.sessions.get(name)
    if s is None:
        raise Refused(
            409, f"{name}: not running, so there is no QMP session; start it: vmbundle start {name}"
        )
    return s


class Refused(Exception):
    def __init__(self, status: int, line: str) -> None:
        super().__init__(line)
        self.status = status
        self.line = line


async def qmp(s: GuestSession, command: str, args: dict[str, Any] | None, timeout: float) -> Any:
    try:
        return await s.execute(command, args, timeout)
    except NotConnected:
        raise Refused(409, f"{s.name}: the QMP session is reconnecting; try again") from None
    except CommandFailed as exc:
        raise Refused(422, f"{s.name}: QMP {command}: {exc.desc}") from None
    except TimeoutError:
        raise Refused(504, f"{s.name}: QMP {command} did not answer within {timeout:g}s") from None


@web.middleware
async def errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)  # type: ignore[no-any-return]
    except Refused as exc:
        return _error(exc.status, exc.line)
    except NoSuchGuest as exc:
        return _error(404, str(exc))
    except VmbundleError as exc:
        return _error(409, str(exc))


async def about(request: web.Request) -> web.Response:
    ctl = request.app[CONTROLLER_KEY]
    return web.json_response(
        {
            "pid": os.getpid(),
            "started": ctl.started,
            "passes": ctl.passes,
            "sessions": sorted(n for n, s in ctl.sessions.items() if s.connected),
            "serial": sorted(n for n, c in ctl.serials.items() if c.connected),
            "problems": len(ctl.problems),
        }
    )


def _live(ctl: Controller, name: str) -> dict[str, Any]:
    s = ctl.sessions.get(name)
    serial = ctl.serials.get(name)
    out: dict[str, Any] = {"serial": serial is not None and serial.connected}
    if s is None:
        return {"attached": False, "run_state": None, "preserved": None, **out}
    return {"attached": s.connected, "run_state": s.run_state, "preserved": s.preserved, **out}


async def guests(request: web.Request) -> web.Response:
    ctl = request.app[CONTROLLER_KEY]
    rows = await asyncio.to_thread(status_ops.rows, ctl.settings, lambda _line: None)
    out = [{**r.to_json(), "controller": _live(ctl, r.name)} for r in rows]
    return web.json_response(out)


async def guest(request: web.Request) -> web.Response:
    ctl = request.app[CONTROLLER_KEY]
    name = name_of(request)
    doc = await asyncio.to_thread(status_ops.status, ctl.settings, name)
    s = ctl.sessions.get(name)
    if s is not None and s.connected:
        with contextlib.suppress(Refused):
            s.run_state = run_state_of(await qmp(s, "query-status", None, 5.0))
    doc["controller"] = _live(ctl, name)
    return web.json_response(doc)


MAX_ASSIGNMENTS = 64


async def change_config(ctl: Controller, name: str, body: Any) -> dict[str, Any]:
    """`vmbundle set` for the API and the web console: the same edit and refresh."""
    assignments = body.get("set") if isinstance(body, dict) else None
    if (
        not isinstance(assignments, list)
        or not 0 < len(assignments) <= MAX_ASSIGNMENTS
        or not all(isinstance(a, str) for a in assignments)
    ):
        raise Refused(
            400,
            f'{name}: the body must be JSON like {{"set": ["ram=4G"]}}: '
            f"1 to {MAX_ASSIGNMENTS} KEY=VALUE strings",
        )
    try:
        done = await asyncio.to_thread(edit.set_keys, ctl.settings, name, assignments)
    except (ConfigError, UsageError) as exc:
        raise Refused(422, str(exc)) from None
    r = done.refreshed
    return {
        "guest": done.name,
        "saved": True,
        "refreshed": None
        if r is None
        else {"fmri": r.fmri, "finished": r.finished, "live": r.live, "pending": r.pending},
    }


async def json_or_none(request: web.Request) -> Any:
    """The request's JSON body; None when it is not JSON (the caller says what it wants)."""
    try:
        return await request.json()
    except ValueError:
        return None


async def config(request: web.Request) -> web.Response:
    ctl = request.app[CONTROLLER_KEY]
    name = name_of(request)
    return web.json_response(await change_config(ctl, name, await json_or_none(request)))


async def qmp_command(request: web.Request) -> web.Response:
    ctl = request.app[CONTROLLER_KEY]
    name = name_of(request)
    try:
        body = await request.json()
    except ValueError:
        return _error(400, f'{name}: the body must be JSON like {{"execute": "query-status"}}')
    if not isinstance(body, dict) or not isinstance(body.get("execute"), str):
        return _error(400, f'{name}: the body must be an object with "execute": a command name')
    command = body["execute"]
    args = body.get("arguments")
    if COMMAND.fullmatch(command) is None or command in REFUSED_COMMANDS:
        return _error(400, f"{name}: {command[:64]!r}: not a QMP command this API passes on")
    if args is not None and not isinstance(args, dict):
        return _error(400, f'{name}: "arguments" must be an object')
    timeout = body.get("timeout", 10)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout <= MAX_COMMAND_TIMEOUT
    ):
        return _error(
            400,
            f'{name}: "timeout" must be seconds, more than 0 and at most {MAX_COMMAND_TIMEOUT:g}',
        )
    result = await qmp(session_of(ctl, name), command, args, float(timeout))
    return web.json_response({"return": result})


async def screen(request: web.Request) -> web.Response:
    ctl = request.app[CONTROLLER_KEY]
    name = name_of(request)
    width: int | None = None
    if "width" in request.query:
        text = request.query["width"]
        if not text.isdigit() or not 1 <= int(text) <= MAX_WIDTH:
            return _error(
                400,
                f"{name}: width={text[:16]!r}: must be a number of pixels from 1 to {MAX_WIDTH}",
            )
        width = int(text)
    png = await screenshot_png(ctl, name, width)
    return web.Response(body=png, content_type="image/png")


async def screenshot_png(ctl: Controller, name: str, width: int | None) -> bytes:
    s = session_of(ctl, name)
    # A private file in the guest's run directory, never a predictable path in /tmp.
    fd, dump = tempfile.mkstemp(prefix="screendump-", suffix=".ppm", dir=s.run.dir)
    os.close(fd)
    try:
        await qmp(s, "screendump", {"filename": dump}, 10.0)
        return await asyncio.to_thread(_png, Path(dump), width, s.screens)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dump)


def _png(dump: Path, width: int | None, made: dict[int | None, tuple[bytes, bytes]]) -> bytes:
    raw = dump.read_bytes()
    digest = hashlib.blake2b(raw, digest_size=16).digest()
    last = made.get(width)
    if last is not None and last[0] == digest:
        return last[1]
    image = screenshot.parse_ppm(raw)
    if width is not None:
        image = screenshot.scale(image, width)
    png = screenshot.to_png(image)
    made[width] = (digest, png)
    return png


async def events(request: web.Request) -> web.StreamResponse:
    ctl = request.app[CONTROLLER_KEY]
    guest_name = request.query.get("guest")
    if guest_name is not None and re.fullmatch(NAME_PATTERN, guest_name) is None:
        return _error(400, f"{guest_name[:64]!r}: not a guest name")
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    # A first line at once, so a client knows the stream is live.
    await response.write(json.dumps({"kind": "hello", "passes": ctl.passes}).encode() + b"\n")
    try:
        async for event in ctl.bus.stream(guest_name):
            await response.write(json.dumps(event).encode() + b"\n")
    except ConnectionResetError:  # aiohttp's "Cannot write to closing transport"
        pass  # the reader went away: its stream ends here
    return response


async def problems(request: web.Request) -> web.Response:
    ctl = request.app[CONTROLLER_KEY]
    return web.json_response(
        [{"where": k, "lines": list(v)} for k, v in sorted(ctl.problems.items())]
    )


async def metrics_text(request: web.Request) -> web.Response:
    ctl = request.app[CONTROLLER_KEY]
    families = await collect(ctl)
    return web.Response(
        text=metrics.render(families), headers={"Content-Type": metrics.CONTENT_TYPE}
    )


async def _blockstats(s: GuestSession) -> list[dict[str, Any]]:
    with contextlib.suppress(Refused):
        found = await qmp(s, "query-blockstats", None, 5.0)
        if isinstance(found, list):
            return [b for b in found if isinstance(b, dict)]
    return []


async def collect(ctl: Controller) -> list[metrics.Family]:
    seen = ctl.world
    guests_seen = dict(seen.guests) if seen else {}
    ledger = await asyncio.to_thread(memory_ledger.read, ctl.settings.run_dir)
    charges = ledger.amounts()
    pids = {n: g.record.qemu_pid for n, g in guests_seen.items() if g.record is not None}
    use = await asyncio.to_thread(proc.usage, pids.values())
    state, vcpus, ram, charge, cpu, rss = [], [], [], [], [], []
    rd_bytes, wr_bytes, rd_ops, wr_ops = [], [], [], []
    for name, g in sorted(guests_seen.items()):
        labels = {"vm": name}
        state.append(({**labels, "state": g.state}, 1.0))
        if name in charges:
            charge.append((labels, float(charges[name])))
        if g.record is not None:
            vcpus.append((labels, float(g.record.config.vcpus)))
            ram.append((labels, float(g.record.config.ram)))
            u = use.get(g.record.qemu_pid)
            if u is not None:
                cpu.append((labels, u.cpu_seconds))
                rss.append((labels, float(u.rss_bytes)))
        s = ctl.sessions.get(name)
        if s is not None and s.connected:
            for b in await _blockstats(s):
                st = b.get("stats") or {}
                dev = {**labels, "device": str(b.get("qdev") or b.get("device") or "")}
                rd_bytes.append((dev, float(st.get("rd_bytes", 0))))
                wr_bytes.append((dev, float(st.get("wr_bytes", 0))))
                rd_ops.append((dev, float(st.get("rd_operations", 0))))
                wr_ops.append((dev, float(st.get("wr_operations", 0))))
    F = metrics.Family
    out = [
        F(
            "vmbundle_guest_state",
            "gauge",
            "1 for the SMF state the guest's instance is in.",
            state,
        ),
        F("vmbundle_guest_vcpus", "gauge", "Virtual CPUs of the running guest.", vcpus),
        F("vmbundle_guest_ram_bytes", "gauge", "Memory of the running guest.", ram),
        F(
            "vmbundle_guest_charge_bytes",
            "gauge",
            "What the memory ledger charges the guest.",
            charge,
        ),
        F("vmbundle_guest_cpu_seconds_total", "counter", "CPU time of the guest's QEMU.", cpu),
        F("vmbundle_guest_rss_bytes", "gauge", "Resident memory of the guest's QEMU.", rss),
        F("vmbundle_guest_block_read_bytes_total", "counter", "Bytes read, per disk.", rd_bytes),
        F(
            "vmbundle_guest_block_written_bytes_total",
            "counter",
            "Bytes written, per disk.",
            wr_bytes,
        ),
        F("vmbundle_guest_block_read_ops_total", "counter", "Read operations, per disk.", rd_ops),
        F("vmbundle_guest_block_write_ops_total", "counter", "Write operations, per disk.", wr_ops),
    ]
    with contextlib.suppress(VmbundleError, OSError):
        mem = await asyncio.to_thread(memory_ops.report, ctl.settings)
        arc = mem["arc"]
        out += [
            F("vmbundle_arc_size_bytes", "gauge", "ZFS ARC size.", [({}, float(arc["size"]))]),
            F(
                "vmbundle_arc_target_bytes",
                "gauge",
                "ZFS ARC target (c).",
                [({}, float(arc["target"]))],
            ),
            F(
                "vmbundle_arc_max_bytes",
                "gauge",
                "ZFS ARC maximum (c_max).",
                [({}, float(arc["max"]))],
            ),
            F(
                "vmbundle_memory_headroom_bytes",
                "gauge",
                "Memory left for more guests.",
                [({}, float(mem["headroom"]))],
            ),
        ]
    counts = sorted(ctl.bus.counts.items())
    out += [
        F(
            "vmbundle_controller_events_total",
            "counter",
            "Events the controller handled, by kind.",
            [({"kind": k}, float(v)) for k, v in counts],
        ),
        F(
            "vmbundle_controller_passes_total",
            "counter",
            "Reconcile passes.",
            [({}, float(ctl.passes))],
        ),
        F(
            "vmbundle_controller_problems",
            "gauge",
            "Bundles reported and left alone.",
            [({}, float(len(ctl.problems)))],
        ),
    ]
    return out


# Starts wait on memory admission (the ARC shrinking, up to memory.shrink_timeout):
# their own threads, so a boot storm does not hold up the controller's other work.
_STARTS = ThreadPoolExecutor(max_workers=32, thread_name_prefix="start")


async def start(request: web.Request) -> web.Response:
    ctl = request.app[CONTROLLER_KEY]
    asked_at = time.monotonic()
    name = name_of(request)
    body = await json_or_none(request)
    fmri, pid = (body.get("fmri"), body.get("pid")) if isinstance(body, dict) else (None, None)
    if (
        fmri != f"{smf.VM_SERVICE}:{name}"
        or not isinstance(pid, int)
        or isinstance(pid, bool)
        or pid <= 1
    ):
        raise Refused(
            400,
            f'{name}: the body must be JSON like {{"fmri": "{smf.VM_SERVICE}:{name}", '
            '"pid": 1234}: the start method\'s own request',
        )
    if ctl.arc_view is not None:
        # The ARC is read meanwhile, kstat beside svcprop: the admission's own
        # read then finds the view fresh, or waits for this one (the view's
        # lock). Its result is not needed here.
        _STARTS.submit(ctl.arc_view.read)
    try:
        path = (await ctl.bundle_values.after(asked_at)).get(fmri)
    except VmbundleError as exc:
        return web.json_response({"error": str(exc), "handoff": False}, status=409)
    loop = asyncio.get_running_loop()
    try:
        answer = await loop.run_in_executor(
            _STARTS,
            functools.partial(handoff.plan, ctl.settings, name, fmri, path, pid, ctl.arc_view),
        )
    except handoff.NotHandedOff as exc:
        return web.json_response({"error": str(exc), "handoff": False}, status=409)
    except VmbundleError as exc:
        return web.json_response({"error": str(exc), "exit": exc.exit_code}, status=422)
    took = round((time.monotonic() - asked_at) * 1000, 1)
    ctl.log.info("start.handed_off", vm=name, fmri=fmri, pid=pid, ms=took)
    return web.json_response(answer)


def app(ctl: Controller) -> web.Application:
    application = web.Application(middlewares=[errors], client_max_size=1 << 20)
    application[CONTROLLER_KEY] = ctl
    application.add_routes(
        [
            web.get("/", about),
            web.get("/guests", guests),
            web.get("/guests/{name}", guest),
            web.post("/guests/{name}/qmp", qmp_command),
            web.post("/guests/{name}/config", config),
            web.post("/guests/{name}/start", start),
            web.get("/guests/{name}/screenshot", screen),
            web.get("/events", events),
            web.get("/metrics", metrics_text),
            web.get("/problems", problems),
        ]
    )
    return application
