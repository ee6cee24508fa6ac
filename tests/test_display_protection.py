"""The desktop VNC display off loopback, with a real RFB handshake against the QEMU a
guest's SMF start runs (a no-OS guest on a devhost): open on loopback as before;
refused with no protection; VNC authentication with a password made at the start;
VeNCrypt with x509 sub-types only under TLS."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from support.rfb import update_request, vnc_auth_response
from support.service_host import VM, ServiceHost, service_host

pytestmark = [pytest.mark.qemu, pytest.mark.zfs]

NONE, VNC_AUTH, VENCRYPT = 1, 2, 19
X509_SUBTYPES = {260, 261, 262}  # X509None, X509Vnc, X509Plain


BASE_CONFIG: dict[Path, str] = {}


@pytest.fixture(scope="module")
def host(zfs_pool: object) -> Iterator[ServiceHost]:
    with service_host() as h:
        BASE_CONFIG[h.config] = h.config.read_text()
        yield h


def display_config(host: ServiceHost, body: str) -> None:
    """The host configuration with these [display] keys (read by each start)."""
    host.config.write_text(BASE_CONFIG[host.config] + "\n[display]\n" + body + "\n")


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, f"the server closed after {data!r}"
        data += chunk
    return data


def security_types(port: int) -> tuple[socket.socket, list[int]]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    assert recv_exact(sock, 12) == b"RFB 003.008\n"
    sock.sendall(b"RFB 003.008\n")
    count = recv_exact(sock, 1)[0]
    return sock, list(recv_exact(sock, count))


def offered(port: int) -> list[int]:
    """The security types the server offers a new client."""
    sock, types = security_types(port)
    sock.close()
    return types


def vnc_login(port: int, password: str) -> tuple[int, bytes]:
    """(SecurityResult, the ServerInit's first 4 bytes: width and height) after VNC
    auth; on success also the screen's first update is read."""
    sock, types = security_types(port)
    with sock:
        assert types == [VNC_AUTH]
        sock.sendall(bytes([VNC_AUTH]))
        challenge = recv_exact(sock, 16)
        sock.sendall(vnc_auth_response(password, challenge))
        result = struct.unpack(">I", recv_exact(sock, 4))[0]
        if result != 0:
            return result, b""
        sock.sendall(b"\x01")  # ClientInit: shared
        size = recv_exact(sock, 4)
        recv_exact(sock, 16)  # the pixel format
        recv_exact(sock, struct.unpack(">I", recv_exact(sock, 4))[0])  # the desktop's name
        width, height = struct.unpack(">HH", size)
        sock.sendall(update_request(0, 0, 0, width, height))
        kind, _, rects = struct.unpack(">BBH", recv_exact(sock, 4))
        assert (kind, rects > 0) == (0, True), "no FramebufferUpdate with the screen"
        return result, size


async def web_display(url: str, user: str, password: str) -> tuple[int, object]:
    # The console is on 127.0.0.1: cookies for an IP address need an unsafe jar.
    async with aiohttp.ClientSession(url, cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        r = await http.post("/api/login", json={"user": user, "password": password})
        assert r.status == 200, await r.text()
        r = await http.get("/api/guests/pw1/display")
        return r.status, await r.json()


def port_of(host: ServiceHost, name: str) -> int:
    return int(json.loads(host.vmbundle("status", name, "--json").stdout)["vnc_port"])


def quick_to_stop(host: ServiceHost, name: str) -> Path:
    """A guest without an OS: it ignores the power button, so its stop takes
    stop_timeout; 1 s, not the default 120."""
    bundle = host.create(name)
    host.vmbundle("set", name, "stop_timeout=1")
    return bundle


def started(host: ServiceHost, name: str) -> int:
    host.run("svcadm", "enable", "-s", f"{VM}:{name}")
    return port_of(host, name)


def test_on_loopback_nothing_changes(host: ServiceHost) -> None:
    display_config(host, 'listen = "127.0.0.1"')
    quick_to_stop(host, "lo1")
    port = started(host, "lo1")
    try:
        assert offered(port) == [NONE]
        assert "loopback only" in host.vmbundle("status", "lo1").stdout
    finally:
        host.run("svcadm", "disable", "-s", f"{VM}:lo1")


def test_off_loopback_an_unprotected_display_is_refused_at_validation_and_start(
    host: ServiceHost,
) -> None:
    display_config(host, 'listen = "127.0.0.1"')
    bundle = quick_to_stop(host, "open1")
    before = (bundle / "vm.json").read_bytes()
    display_config(host, 'listen = "0.0.0.0"')
    line = (
        "open1: vnc: the display would listen on 0.0.0.0, off loopback, with no password; "
        "give the guest one (vmbundle set open1 vnc.password=...), or in the host "
        'configuration\'s [display] set passwords = "generate" or tls = true '
        "(allow_unauthenticated = true only for a lab)"
    )
    checked = host.vmbundle("validate", "open1", check=False)
    assert checked.returncode == 1 and line in checked.stdout + checked.stderr, checked
    # Importing checks the same (a second bundle, not made an instance).
    other = host.vmbundle(
        "create", "open2", "--ram", "64M", "--vcpus", "1", "--import", check=False
    )
    assert other.returncode == 96 and line.replace("open1", "open2") in other.stderr, other
    start = host.vmbundle("start", "open1", "--wait", check=False)
    assert start.returncode != 0
    host.wait_state("open1", "maintenance")
    log = host.log("open1")
    assert line in log and "96" in log.split(line)[-1], log[-2000:]
    assert (bundle / "vm.json").read_bytes() == before
    host.run("svcadm", "disable", f"{VM}:open1")
    # For a lab: it starts, with a warning each time.
    display_config(host, 'listen = "0.0.0.0"\nallow_unauthenticated = true')
    host.vmbundle("start", "open1", "--wait")  # from maintenance, as an operator would
    port = port_of(host, "open1")
    try:
        assert offered(port) == [NONE]
        assert "with no password (allow_unauthenticated = true" in host.log("open1")
        assert "NO PASSWORD off loopback" in host.vmbundle("status", "open1").stdout
    finally:
        host.run("svcadm", "disable", "-s", f"{VM}:open1")


def test_a_password_made_at_start_guards_the_display_and_is_nowhere_else(
    host: ServiceHost,
) -> None:
    display_config(host, 'listen = "0.0.0.0"\npasswords = "generate"')
    bundle = quick_to_stop(host, "pw1")
    port = started(host, "pw1")
    try:
        password = host.vmbundle("status", "pw1", "--show-password").stdout.strip()
        assert len(password) == 8
        assert vnc_login(port, "wrong-pw")[0] == 1
        result, size = vnc_login(port, password)
        width, height = struct.unpack(">HH", size)
        assert result == 0 and width > 0 and height > 0
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
        assert password not in ps.stdout
        assert password not in (bundle / "vm.json").read_text()
        status = host.vmbundle("status", "pw1").stdout
        assert "VNC authentication, a password made at start" in status, status
        assert password not in status
        # An operator reads it in the web console, for a desktop viewer; a viewer may not.
        host.add_user("olga", "operator", "operator-pass")
        host.add_user("vic", "viewer", "viewer-pass")
        url = host.web_url()
        deadline = time.monotonic() + 60
        while (answer := asyncio.run(web_display(url, "olga", "operator-pass")))[0] == 409:
            assert time.monotonic() < deadline, answer  # until the controller holds its QMP
            time.sleep(0.5)
        assert answer == (
            200,
            {
                "display": port - 5900,
                "port": port,
                "protection": ("VNC authentication, a password made at start"),
                "password": password,
            },
        )
        assert asyncio.run(web_display(url, "vic", "viewer-pass"))[0] == 403
    finally:
        host.run("svcadm", "disable", "-s", f"{VM}:pw1")


def test_under_tls_only_vencrypt_with_x509_is_offered(host: ServiceHost) -> None:
    display_config(host, 'listen = "0.0.0.0"\ntls = true')
    quick_to_stop(host, "tls1")
    port = started(host, "tls1")
    try:
        sock, types = security_types(port)
        with sock:
            assert types == [VENCRYPT]
            sock.sendall(bytes([VENCRYPT]))
            assert recv_exact(sock, 2) == b"\x00\x02"  # VeNCrypt 0.2
            sock.sendall(b"\x00\x02")
            assert recv_exact(sock, 1) == b"\x00"
            count = recv_exact(sock, 1)[0]
            subtypes = set(struct.unpack(f">{count}I", recv_exact(sock, 4 * count)))
            assert subtypes and subtypes <= X509_SUBTYPES, subtypes
        # A client without TLS asks for plain VNC authentication, and is refused.
        sock, types = security_types(port)
        with sock:
            sock.sendall(bytes([VNC_AUTH]))
            refused = sock.recv(64)
            # SecurityResult "failed" (RFB 3.8) or the connection closed: no challenge.
            assert refused == b"" or refused[:4] == struct.pack(">I", 1), refused
        assert Path(host.config.parent / "vnc-x509" / "ca-cert.pem").is_file()
        assert (
            "TLS (x509, VeNCrypt), a password made at start"
            in host.vmbundle("status", "tls1").stdout
        )
    finally:
        host.run("svcadm", "disable", "-s", f"{VM}:tls1")
