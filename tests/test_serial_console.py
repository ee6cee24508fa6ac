"""The serial console through the controller, end to end on a devhost: the test
guest's lines reach two clients of the fan-out socket at once; a restarted
controller holds the serial port again and its scrollback still has the earlier
lines; the web console's /ws/serial replays the scrollback, then follows, and
types for an operator but not for a viewer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import aiohttp
import pytest
from support.service_host import VM, ServiceHost, service_host

pytestmark = [pytest.mark.qemu, pytest.mark.zfs]

CONTROLLER = "svc:/system/vmbundle/controller:default"
GUEST = "ser1"
P = "vmbundle-testguest"


@pytest.fixture(scope="module")
def host(zfs_pool: object) -> Iterator[ServiceHost]:
    with service_host() as h:
        h.wait_controller()
        yield h


def running(host: ServiceHost) -> None:
    """The test guest GUEST online and up to "ready", whichever tests ran before."""
    if not (host.roots / GUEST).exists():
        host.create_test_guest(GUEST)
    if host.state_of(GUEST) != "online":
        host.run("svcadm", "enable", "-s", f"{VM}:{GUEST}")
    scrollback = host.guest_run(GUEST).serial_log
    deadline = time.monotonic() + 120
    while not scrollback.exists() or f"{P}: ready" not in scrollback.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"the guest never said ready; {why(host)}"
        time.sleep(0.2)


def why(host: ServiceHost) -> str:
    """What the guest's instance, its scrollback and the controller's serial console say."""
    run = host.guest_run(GUEST)
    kept = run.serial_log.read_bytes()[-1000:] if run.serial_log.exists() else None
    events = [e for e in host.controller_log() if str(e.get("event")).startswith("serial")]
    return (
        f"{GUEST} is {host.state_of(GUEST)}; its log ends:\n{host.log(GUEST)[-1500:]}\n"
        f"the scrollback ends: {kept!r}\nthe controller's serial events: {events[-10:]}"
    )


def test_two_clients_see_the_same_lines_and_the_scrollback_holds_the_whole_boot(
    host: ServiceHost,
) -> None:
    host.create_test_guest(GUEST)
    host.run("svcadm", "enable", "-s", f"{VM}:{GUEST}")
    begun = time.monotonic()
    one = host.serial(GUEST)
    two = host.serial(GUEST)
    print(f"start method returned to serial attached: {time.monotonic() - begun:.3f}s")
    run = host.guest_run(GUEST)
    try:
        try:
            for c in (one, two):
                c.wait_for(f"^{P}: ready$", timeout=120)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{why(host)}") from None
        # The controller held the port before the guest's first line.
        scrollback = run.serial_log.read_text(errors="replace")
        assert scrollback[scrollback.index(P) :].startswith(f"{P}: boot kernel")
        assert oct(run.serial_log.stat().st_mode & 0o777) == "0o600"
        assert oct(run.serial_shared.stat().st_mode & 0o777) == "0o600"
        # Either client types; both see what follows, byte for byte.
        one.send("reboot")
        for c in (one, two):
            c.wait_for(rf"^{P}: rebooting \(asked\)\n(?s:.*)^{P}: ready\n", timeout=120)
        seen = []
        for c in (one, two):
            text = c.text
            begin = text.index(f"{P}: rebooting (asked)\n")
            end = text.index(f"{P}: ready\n", begin)
            seen.append(text[begin:end])
        assert seen[0] == seen[1]
        assert seen[0].count(f"{P}: boot kernel") == 1
    finally:
        one.close()
        two.close()


def test_a_restarted_controller_holds_the_serial_port_again_and_keeps_the_scrollback(
    host: ServiceHost,
) -> None:
    running(host)
    run = host.guest_run(GUEST)
    watcher = host.serial(GUEST)
    old = host.controller()["pid"]
    host.run("svcadm", "disable", "-s", CONTROLLER)
    try:
        # The fan-out socket went with the controller: its clients saw the end.
        assert watcher.ended(10), "the client never saw the end"
        assert not run.serial_shared.exists()
        # Nothing writes it now (what the guest says is lost until the controller is back).
        before = run.serial_log.read_bytes()
        assert f"{P}: ready".encode() in before
    finally:
        watcher.close()
        host.run("svcadm", "enable", "-s", CONTROLLER)
    again = host.serial(GUEST)
    try:
        assert host.controller()["pid"] != old
        assert run.serial_log.read_bytes().startswith(before)
        attached = [
            e
            for e in host.controller_log()
            if e.get("event") == "serial.attached" and e.get("vm") == GUEST
        ]
        assert attached[-1]["scrollback"] == len(before)
        # Live again: the guest's answer to a line typed through the new controller.
        again.send("reboot")
        again.wait_for(rf"^{P}: rebooting \(asked\)\n(?s:.*)^{P}: ready\n", timeout=120)
    finally:
        again.close()
    assert run.serial_log.read_bytes().startswith(before)


async def _web_session(url: str, user: str, password: str) -> tuple[aiohttp.ClientSession, str]:
    # The console is on 127.0.0.1: cookies for an IP address need an unsafe jar.
    http = aiohttp.ClientSession(url, cookie_jar=aiohttp.CookieJar(unsafe=True))
    r = await http.post("/api/login", json={"user": user, "password": password})
    assert r.status == 200, await r.text()
    return http, str((await r.json())["csrf"])


async def _open_serial(
    http: aiohttp.ClientSession, csrf: str, origin: str
) -> aiohttp.ClientWebSocketResponse:
    r = await http.post(f"/api/guests/{GUEST}/serial", headers={"X-CSRF-Token": csrf})
    assert r.status == 200, await r.text()
    return await http.ws_connect((await r.json())["url"], headers={"Origin": origin})


async def _until(ws: aiohttp.ClientWebSocketResponse, got: bytearray, wanted: bytes) -> None:
    deadline = time.monotonic() + 60
    while wanted not in got:
        left = deadline - time.monotonic()
        assert left > 0, f"no {wanted!r} on the web serial console; got {bytes(got[-2000:])!r}"
        msg = await ws.receive(timeout=left)
        assert msg.type == aiohttp.WSMsgType.BINARY, msg
        got += msg.data


def test_the_web_serial_console_replays_follows_and_types_for_an_operator_only(
    host: ServiceHost,
) -> None:
    running(host)
    host.add_user("olga", "operator", "operator-pass")
    host.add_user("vic", "viewer", "viewer-pass")
    url = host.web_url()
    origin = url.rstrip("/")
    shared = host.serial(GUEST)

    async def go() -> None:
        viewer, vcsrf = await _web_session(url, "vic", "viewer-pass")
        operator, ocsrf = await _web_session(url, "olga", "operator-pass")
        try:
            vws = await _open_serial(viewer, vcsrf, origin)
            first = await vws.receive_bytes(timeout=10)
            # The scrollback first: all of it (it is short), the whole boot, from before
            # the controller's restart too when the test before ran.
            assert first[first.index(P.encode()) :].startswith(f"{P}: boot kernel".encode())
            assert f"{P}: ready\r\n".encode() in first
            assert host.guest_run(GUEST).serial_log.read_bytes().startswith(first)
            vgot = bytearray(first)
            # What a viewer types goes nowhere.
            await vws.send_str("poweroff\n")
            await vws.send_bytes(b"poweroff\n")
            await asyncio.sleep(3)
            assert b"powering off" not in vgot
            assert host.state_of(GUEST) == "online"
            ows = await _open_serial(operator, ocsrf, origin)
            ogot = bytearray(await ows.receive_bytes(timeout=10))
            assert bytes(ogot).startswith(first), "the same scrollback, and what came since"
            await ows.send_str("poweroff\n")
            for ws, got in ((ows, ogot), (vws, vgot)):
                await _until(ws, got, f"{P}: powering off (asked)".encode())
            assert bytes(vgot).count(b"powering off") == 1
            # The guest disabled, its QEMU gone: each socket is closed.
            for ws in (vws, ows):
                while (msg := await ws.receive(timeout=60)).type == aiohttp.WSMsgType.BINARY:
                    pass
                assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
        finally:
            await viewer.close()
            await operator.close()

    try:
        asyncio.run(go())
        shared.wait_for(rf"^{P}: powering off \(asked\)$")
    finally:
        shared.close()
    deadline = time.monotonic() + 60
    while host.state_of(GUEST) != "disabled":
        assert time.monotonic() < deadline, "the guest was never disabled"
        time.sleep(0.1)
    opened = [
        e
        for e in host.controller_log()
        if e.get("event") == "web.action" and e.get("action") == "serial.open"
    ]
    assert [(e["user"], e["typing"]) for e in opened] == [("vic", False), ("olga", True)]
