"""What the web console's WebSocket VNC proxy costs, next to a raw connection to the
same VNC server and to websockify proxying it, and what a thumbnail and the guest
list page cost the controller.

Brings up a throw-away devhost (tests/support/service_host.py: state under
/var/tmp, the manifests installed, so `vmbundle-controller` runs under SMF with its
web console on a free loopback port), adds an operator and logs in through
`POST /api/login`, boots the test guest (tests/guest/build.py, or --iso) and waits
for its "ready". Then, in one run:

1. Throughput: a small RFB 3.8 client written here (security None, shared,
   SetEncodings raw only) asks for the whole screen, non-incremental, again and
   again, one request at a time, reading every update whole; bytes a second over
   --seconds. The same client goes three ways to the same server, alternated over
   --rounds rounds (the order turning each round), medians reported:
     raw         the UNIX socket itself;
     controller  `/ws/console/NAME?ticket=` (a ticket per connection, the session
                 cookie and the page's Origin), which the controller proxies to it;
     websockify  websockify (PyPI; pyproject's `bench` extra, installed into this
                 interpreter's environment by this script when missing) started
                 here on a loopback port with --unix-target.
   Against two servers:
     a) the guest's own QEMU VNC server (RunPaths.vnc_socket). QEMU sends the
        update a request asks for on its display refresh timer (30 ms at best,
        longer while the screen stands still), not at once, so this says what a
        user gets, and the timer, not the path, sets the pace;
     b) an "instant" RFB server of this script's own (a separate process), bound
        in the socket's place for the while (QEMU's socket is renamed aside and
        back), with the same screen size, which answers each request at once:
        here the path is what limits, so this is the proxy's own cost.
   The CPU time of the proxying process over each window (the controller; the
   websockify process handling that connection) is read from /proc/PID/stat.
2. Latency: on each connection, before the throughput, --probes round trips of a
   small request and its answer: a SetEncodings naming ExtendedKeyEvent (-258),
   which QEMU acknowledges at once with a 16-byte FramebufferUpdate (a 1x1
   FramebufferUpdateRequest would wait for the refresh timer, and measure it).
   Medians and 95th percentiles over all rounds, and what each proxy adds to raw.
3. CPU: the controller's utime+stime (and its children's, once reaped) from
   /proc/PID/stat, for --thumbnails `GET /api/guests/NAME/thumbnail` of the test
   guest, divided by their number (QEMU's own CPU for the screendumps beside it);
   then, with --guests running guests (the test guest and guests without an OS,
   64M, 1 vCPU), for --refreshes refreshes of the list page, each
   `GET /api/guests` and a thumbnail of every running guest (after as many
   `GET /api/guests` alone, for the split): CPU ms a refresh, and what one
   refresh every 5 s costs as a share of one core.

It reports; it asserts nothing. Aims: the controller at least 0.8 of raw
throughput, and ahead of websockify (by more than 5 %; within 5 % is "level").
The devhost is taken down and its pool destroyed at the end. Defaults: 5 rounds
of 3 s, 200 probes, 40 thumbnails, 20 guests, 10 refreshes (3 to 4 minutes);
--quick: 2 rounds of 1 s, 50 probes, 10 thumbnails, 5 guests, 3 refreshes.

    .venv/bin/python bench/console.py [--quick] [--rounds N] [--seconds S]
                                      [--probes N] [--thumbnails N] [--guests N]
                                      [--refreshes N] [--iso PATH]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import http.client
import http.cookies
import io
import json
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol, cast

from vmbundle.controller import web as web_app
from vmbundle.guest.process import running_pid
from vmbundle.service.controller import ControllerPaths

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.serial import SerialLog
from support.service_host import VM, ServiceHost, service_host

# bench/controller.py, beside this file: /proc as it reads it.
from controller import children_of, cpu_ticks

HERE = Path(__file__).resolve().parent
AIM_RAW_RATIO = 0.8
AIM_WEBSOCKIFY_RATIO = 1.0
NOISE = 0.05  # a ratio this close to websockify's is level, not ahead or behind
REFRESH_EVERY_S = 5.0

BIN = Path(sys.executable).parent
WEBSOCKIFY = BIN / "websockify"
GUEST = "con"
TINY = "idle{:02d}"
USER = "bench"
PASSWORD = "bench-console-password"
READY = "vmbundle-testguest: ready"
PATHS = ("raw", "controller", "websockify")
TICK = os.sysconf("SC_CLK_TCK")
MB = 1e6

ENC_RAW = 0
ENC_EXT_KEY_EVENT = -258  # QEMU acknowledges a SetEncodings naming it at once
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# -- byte streams: a socket, or the RFB stream in WebSocket messages ------------------


class ByteStream(Protocol):
    def send(self, data: bytes) -> None: ...
    def read(self, n: int) -> bytes: ...
    def skip(self, n: int) -> None: ...
    def close(self) -> None: ...


class Wire:
    """A connected socket, read through a buffer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = cast(io.BufferedReader, sock.makefile("rb", buffering=1 << 18))
        self.scratch = memoryview(bytearray(1 << 20))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, n: int) -> bytes:
        data = self.file.read(n)
        if len(data) < n:
            raise EOFError("the server closed the connection")
        return data

    def readline(self) -> bytes:
        return self.file.readline(1 << 14)

    def skip(self, n: int) -> None:
        while n:
            got = self.file.readinto(self.scratch[: min(n, len(self.scratch))])
            if not got:
                raise EOFError("the server closed the connection")
            n -= got

    def close(self) -> None:
        self.file.close()
        self.sock.close()


class WebSocket:
    """The RFB byte stream in binary WebSocket messages (RFC 6455): the client's
    frames masked, the server's not, any frame carrying any part of the stream."""

    def __init__(self, wire: Wire, host: str, target: str, headers: dict[str, str]) -> None:
        self.wire = wire
        self.left = 0  # payload bytes not yet read of the current frame
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {target} HTTP/1.1",
            f"Host: {host}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Protocol: binary",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        wire.send(("\r\n".join(lines) + "\r\n\r\n").encode())
        status = wire.readline().decode(errors="replace").strip()
        answer = {}
        while (line := wire.readline()) not in (b"\r\n", b""):
            k, _, v = line.decode(errors="replace").partition(":")
            answer[k.strip().lower()] = v.strip()
        if not status.startswith("HTTP/1.1 101"):
            raise RuntimeError(f"{host}{target.split('?')[0]}: {status}")
        accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
        if answer.get("sec-websocket-accept") != accept:
            raise RuntimeError(f"{host}: a WebSocket handshake without the right accept key")

    def _frame(self) -> None:
        """Past the next data frame's header: self.left is its payload's length."""
        while True:
            b0, b1 = self.wire.read(2)
            length = b1 & 0x7F
            if length == 126:
                (length,) = struct.unpack(">H", self.wire.read(2))
            elif length == 127:
                (length,) = struct.unpack(">Q", self.wire.read(8))
            if b1 & 0x80:
                raise RuntimeError("the server masked a frame")
            opcode = b0 & 0x0F
            if opcode in (0x0, 0x2):  # continuation, binary
                self.left = length
                return
            payload = self.wire.read(length)
            if opcode == 0x8:
                raise EOFError(f"the server closed the WebSocket: {payload!r}")
            if opcode == 0x9:
                self._send_frame(0xA, payload)
            elif opcode != 0xA:
                raise RuntimeError(f"a frame of opcode {opcode} in an RFB stream")

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            header = bytes((0x80 | opcode, 0x80 | n))
        else:
            header = struct.pack(">BBH", 0x80 | opcode, 0x80 | 126, n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        self.wire.send(header + mask + masked)

    def send(self, data: bytes) -> None:
        self._send_frame(0x2, data)

    def read(self, n: int) -> bytes:
        parts = []
        while n:
            if not self.left:
                self._frame()
                continue
            take = min(n, self.left)
            parts.append(self.wire.read(take))
            self.left -= take
            n -= take
        return b"".join(parts)

    def skip(self, n: int) -> None:
        while n:
            if not self.left:
                self._frame()
                continue
            take = min(n, self.left)
            self.wire.skip(take)
            self.left -= take
            n -= take

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._send_frame(0x8, struct.pack(">H", 1000))
        self.wire.close()


# -- the RFB client --------------------------------------------------------------------


class Rfb:
    """An RFB 3.8 client: security None, a shared session, raw encoding only."""

    def __init__(self, stream: ByteStream) -> None:
        self.stream = stream
        version = stream.read(12)
        if not version.startswith(b"RFB 003."):
            raise RuntimeError(f"not an RFB server: {version!r}")
        stream.send(b"RFB 003.008\n")
        types = stream.read(stream.read(1)[0])
        if 1 not in types:
            raise RuntimeError(f"the server offers no security type None: {list(types)}")
        stream.send(b"\x01")
        if stream.read(4) != b"\0\0\0\0":
            raise RuntimeError("the server refused security type None")
        stream.send(b"\x01")  # ClientInit: shared
        self.width, self.height = struct.unpack(">HH", stream.read(4))
        self.bytes_per_pixel = stream.read(16)[0] // 8
        (n,) = struct.unpack(">I", stream.read(4))
        self.name = stream.read(n).decode(errors="replace")
        self.set_encodings(ENC_RAW)
        self.whole = struct.pack(">BBHHHH", 3, 0, 0, 0, self.width, self.height)

    def set_encodings(self, *encodings: int) -> None:
        self.stream.send(struct.pack(f">BxH{len(encodings)}i", 2, len(encodings), *encodings))

    def update(self) -> tuple[int, set[int]]:
        """The server's messages up to the next FramebufferUpdate, read whole: its size
        in bytes and its rectangles' encodings."""
        s = self.stream
        while True:
            kind = s.read(1)[0]
            if kind == 0:
                (rects,) = struct.unpack(">xH", s.read(3))
                size, encodings = 4, set()
                for _ in range(rects):
                    _x, _y, w, h, encoding = struct.unpack(">HHHHi", s.read(12))
                    size += 12
                    encodings.add(encoding)
                    if encoding == ENC_RAW:
                        s.skip(w * h * self.bytes_per_pixel)
                        size += w * h * self.bytes_per_pixel
                    elif encoding != ENC_EXT_KEY_EVENT:
                        raise RuntimeError(f"a rectangle in encoding {encoding}, never asked for")
                return size, encodings
            if kind == 1:  # SetColourMapEntries
                (n,) = struct.unpack(">3xH", s.read(5))
                s.skip(6 * n)
            elif kind == 3:  # ServerCutText
                (n,) = struct.unpack(">3xI", s.read(7))
                s.skip(n)
            elif kind != 2:  # Bell has no body
                raise RuntimeError(f"server message type {kind}")

    def whole_screen(self) -> int:
        """One non-incremental request for the whole screen, and its update: bytes."""
        self.stream.send(self.whole)
        return self.update()[0]

    def round_trip(self) -> float:
        """Seconds from a SetEncodings naming ExtendedKeyEvent to its acknowledgement."""
        begun = time.perf_counter()
        self.set_encodings(ENC_RAW, ENC_EXT_KEY_EVENT)
        _, encodings = self.update()
        took = time.perf_counter() - begun
        if ENC_EXT_KEY_EVENT not in encodings:
            raise RuntimeError("the server did not acknowledge ExtendedKeyEvent")
        return took


# -- the instant RFB server (its own process: --serve-rfb) ------------------------------


def serve_rfb(path: str, width: int, height: int) -> None:
    """An RFB 3.8 server on the UNIX socket path, security None, 32 bpp: it answers
    each FramebufferUpdateRequest at once with the area in raw encoding, and each
    SetEncodings naming ExtendedKeyEvent with its acknowledgement, as QEMU does."""
    stride = width * 4
    pixels = (bytes(range(256)) * (stride * height // 256 + 1))[: stride * height]
    head = struct.pack(">BxH", 0, 1)
    whole = head + struct.pack(">HHHHi", 0, 0, width, height, ENC_RAW) + pixels
    ack = head + struct.pack(">HHHHi", 0, 0, width, height, ENC_EXT_KEY_EVENT)
    pixel_format = struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
    server_init = struct.pack(">HH", width, height) + pixel_format + struct.pack(">I", 5) + b"bench"

    def area(x: int, y: int, w: int, h: int) -> bytes:
        w, h = max(0, min(w, width - x)), max(0, min(h, height - y))
        rows = (pixels[(y + r) * stride + x * 4 :][: w * 4] for r in range(h))
        return head + struct.pack(">HHHHi", x, y, w, h, ENC_RAW) + b"".join(rows)

    def client(conn: socket.socket) -> None:
        with conn, contextlib.suppress(EOFError, OSError):
            wire = Wire(conn)
            wire.send(b"RFB 003.008\n")
            wire.read(12)
            wire.send(b"\x01\x01")
            wire.read(1)
            wire.send(b"\0\0\0\0")
            wire.read(1)
            wire.send(server_init)
            while True:
                kind = wire.read(1)[0]
                if kind == 0:  # SetPixelFormat: kept as it is
                    wire.read(19)
                elif kind == 2:
                    (n,) = struct.unpack(">xH", wire.read(3))
                    if ENC_EXT_KEY_EVENT in struct.unpack(f">{n}i", wire.read(4 * n)):
                        wire.send(ack)
                elif kind == 3:
                    _inc, x, y, w, h = struct.unpack(">BHHHH", wire.read(9))
                    wire.send(whole if (x, y, w, h) == (0, 0, width, height) else area(x, y, w, h))
                elif kind in (4, 5):  # KeyEvent, PointerEvent
                    wire.read(7 if kind == 4 else 5)
                elif kind == 6:
                    (n,) = struct.unpack(">3xI", wire.read(7))
                    wire.read(n)
                else:
                    return

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(16)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=client, args=(conn,), daemon=True).start()


@contextlib.contextmanager
def instant_server(socket_path: Path, width: int, height: int) -> Iterator[None]:
    """The instant server bound at socket_path while the block runs, the socket that
    was there (QEMU's, whose listener keeps it) renamed aside and put back after."""
    aside = socket_path.with_name(socket_path.name + ".qemu")
    os.rename(socket_path, aside)
    proc: subprocess.Popen[str] | None = None
    try:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-rfb", str(socket_path), f"{width}x{height}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the instant RFB server did not start")
        yield
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        socket_path.unlink(missing_ok=True)
        os.rename(aside, socket_path)


# -- websockify --------------------------------------------------------------------------


def ensure_websockify() -> None:
    """websockify in this interpreter's environment: pyproject's `bench` extra,
    installed with pip when it is not there yet."""
    if WEBSOCKIFY.exists():
        return
    project = tomllib.loads((HERE.parent / "pyproject.toml").read_text())["project"]
    wanted = project["optional-dependencies"]["bench"]
    print(f"installing {' '.join(wanted)} (pyproject.toml's bench extra) into {sys.prefix}")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *wanted], check=True)
    if not WEBSOCKIFY.exists():
        raise RuntimeError(f"pip installed {' '.join(wanted)}, but there is no {WEBSOCKIFY}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Websockify:
    """websockify on a loopback port, proxying to a UNIX socket; it forks a process
    for each connection."""

    def __init__(self, target: Path, log: IO[bytes]) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [str(WEBSOCKIFY), f"--unix-target={target}", f"127.0.0.1:{self.port}"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"websockify never listened on 127.0.0.1:{self.port}")
            time.sleep(0.05)

    def handler(self) -> int | None:
        """The pid of the process handling the newest connection."""
        deadline = time.monotonic() + 5
        while not (kids := children_of(self.proc.pid)):
            if time.monotonic() > deadline:
                return None
            time.sleep(0.01)
        return max(kids)

    def stop(self) -> None:
        kids = children_of(self.proc.pid)
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for pid in kids:  # each handler ends with its connection; any left, by its pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


# -- the web console's API ---------------------------------------------------------------


class WebConsole:
    """The controller's web console over one keep-alive HTTP connection, logged in."""

    def __init__(self, url: str) -> None:
        self.origin = url.rstrip("/")
        self.host = self.origin.removeprefix("http://")
        address, _, port = self.host.rpartition(":")
        self.address, self.port = address, int(port)
        self.conn = http.client.HTTPConnection(address, self.port, timeout=60)
        self.cookie = ""
        self.csrf = ""

    def request(
        self, method: str, path: str, body: Any = None
    ) -> tuple[bytes, http.client.HTTPResponse]:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        if method == "POST":
            headers.update({"Content-Type": "application/json", web_app.CSRF_HEADER: self.csrf})
        self.conn.request(
            method, path, json.dumps(body or {}).encode() if method == "POST" else None, headers
        )
        response = self.conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
        return data, response

    def login(self, user: str, password: str) -> None:
        data, response = self.request("POST", "/api/login", {"user": user, "password": password})
        jar = http.cookies.SimpleCookie(response.getheader("Set-Cookie", ""))
        self.cookie = f"{web_app.COOKIE}={jar[web_app.COOKIE].value}"
        self.csrf = json.loads(data)["csrf"]

    def get(self, path: str) -> bytes:
        return self.request("GET", path)[0]

    def console(self, name: str) -> WebSocket:
        """The guest's console socket, through a fresh ticket."""
        url = json.loads(self.request("POST", f"/api/guests/{name}/console")[0])["url"]
        sock = socket.create_connection((self.address, self.port), timeout=60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return WebSocket(Wire(sock), self.host, url, {"Origin": self.origin, "Cookie": self.cookie})

    def close(self) -> None:
        self.conn.close()


# -- the bench ------------------------------------------------------------------------------


class Bench:
    def __init__(self, host: ServiceHost, log: IO[bytes]) -> None:
        self.host = host
        self.log = log
        self.run = host.guest_run(GUEST)
        self.web: WebConsole | None = None
        self.websockify: Websockify | None = None
        self.controller_pid = 0
        self.tiny: list[str] = []

    def set_up(self) -> None:
        host = self.host
        about = host.wait_controller()
        self.controller_pid = int(about["pid"])
        url_file = ControllerPaths.under(host.run_dir).web_url
        deadline = time.monotonic() + 30
        while not url_file.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the controller wrote no {url_file}")
            time.sleep(0.1)
        subprocess.run(
            [str(BIN / "vmbundle"), "user", "add", USER, "--role", "operator"],
            input=PASSWORD + "\n",
            env=host.env(),
            check=True,
            capture_output=True,
            text=True,
        )
        self.web = WebConsole(url_file.read_text().strip())
        self.web.login(USER, PASSWORD)
        host.create_test_guest(GUEST)
        host.vmbundle("set", GUEST, "stop_timeout=5")
        host.vmbundle("start", GUEST, "--wait")
        console = SerialLog(self.run.serial)
        try:
            console.wait_for(READY, timeout=240)
        finally:
            console.close()
        self.wait_sessions([GUEST])
        self.websockify = Websockify(self.run.vnc_socket, self.log)

    def wait_sessions(self, names: list[str], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while missing := set(names) - set(self.host.controller()["sessions"]):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the controller has no QMP session of {sorted(missing)}")
            time.sleep(0.2)

    # -- 1. and 2.: the three paths -------------------------------------------------

    def open(self, path: str) -> tuple[ByteStream, int | None]:
        """A connection to the guest's VNC server by path, and the pid of the process
        that proxies it (None for raw)."""
        if path == "raw":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(60)
            sock.connect(str(self.run.vnc_socket))
            return Wire(sock), None
        if path == "controller":
            assert self.web is not None
            return self.web.console(GUEST), self.controller_pid
        assert self.websockify is not None
        sock = socket.create_connection(("127.0.0.1", self.websockify.port), timeout=60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stream = WebSocket(Wire(sock), f"127.0.0.1:{self.websockify.port}", "/", {})
        return stream, self.websockify.handler()

    def trial(self, path: str, seconds: float, probes: int) -> dict[str, Any]:
        """One connection: probes round trips, then whole screens for seconds."""
        stream, proxy = self.open(path)
        try:
            rfb = Rfb(stream)
            rtts = [rfb.round_trip() for _ in range(probes)]
            for _ in range(2):
                rfb.whole_screen()
            proxy_before = cpu_ticks(proxy)[0] if proxy else 0
            client_before = time.process_time()
            begun = time.perf_counter()
            total = updates = 0
            while True:
                total += rfb.whole_screen()
                updates += 1
                elapsed = time.perf_counter() - begun
                if elapsed >= seconds:
                    break
            client = time.process_time() - client_before
            proxy_cpu = (cpu_ticks(proxy)[0] - proxy_before) / TICK if proxy else None
        finally:
            stream.close()
        return {
            "rate": total / elapsed,
            "updates": updates / elapsed,
            "rtts": rtts,
            "proxy_cpu": None if proxy_cpu is None else proxy_cpu / elapsed,
            "proxy_ms_per_mb": None if proxy_cpu is None else 1000 * proxy_cpu / (total / MB),
            "client_cpu": client / elapsed,
            "screen": (rfb.width, rfb.height, rfb.bytes_per_pixel),
        }

    def rounds(self, rounds: int, seconds: float, probes: int) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {p: [] for p in PATHS}
        for r in range(rounds):
            order = PATHS[r % 3 :] + PATHS[: r % 3]
            for path in order:
                out[path].append(self.trial(path, seconds, probes))
            print(
                f"    round {r + 1}: "
                + ", ".join(
                    f"{p} {out[p][-1]['rate'] / MB:.1f} MB/s ({out[p][-1]['updates']:.1f} updates/s)"
                    for p in PATHS
                )
            )
        return out

    # -- 3. CPU ---------------------------------------------------------------------

    def cpu(self) -> tuple[int, int]:
        own, children = cpu_ticks(self.controller_pid)
        return own, children

    def thumbnails(self, count: int) -> dict[str, float]:
        assert self.web is not None
        path = f"/api/guests/{GUEST}/thumbnail"
        qemu = running_pid(self.run)
        assert qemu is not None
        for _ in range(2):
            self.web.get(path)
        before, qemu_before = self.cpu(), cpu_ticks(qemu)[0]
        begun = time.perf_counter()
        png = b""
        for _ in range(count):
            png = self.web.get(path)
        wall = time.perf_counter() - begun
        after, qemu_after = self.cpu(), cpu_ticks(qemu)[0]
        return {
            "own_ms": 1000 * (after[0] - before[0]) / TICK / count,
            "children_ms": 1000 * (after[1] - before[1]) / TICK / count,
            "qemu_ms": 1000 * (qemu_after - qemu_before) / TICK / count,
            "wall_ms": 1000 * wall / count,
            "png_bytes": len(png),
        }

    def start_tiny(self, count: int) -> tuple[float, float]:
        """count guests without an OS running beside the test guest: the seconds to
        make and import them, and then to have them online with QMP sessions."""
        begun = time.monotonic()
        self.tiny = [TINY.format(i) for i in range(count)]
        if not self.tiny:
            return 0.0, 0.0
        for name in self.tiny:
            self.host.create(name)
            self.host.vmbundle("set", name, "stop_timeout=1")
        made = time.monotonic()
        self.host.run("svcadm", "enable", *(f"{VM}:{n}" for n in self.tiny))
        deadline = time.monotonic() + 300
        while waiting := [n for n in self.tiny if self.host.state_of(n) != "online"]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"not online 300 s after the enable: {waiting}")
            time.sleep(0.5)
        self.wait_sessions(self.tiny)
        return made - begun, time.monotonic() - made

    def list_page(self, count: int) -> dict[str, float]:
        assert self.web is not None
        web = self.web
        running = [GUEST, *self.tiny]

        def refresh() -> int:
            rows = json.loads(web.get("/api/guests"))
            for name in running:
                web.get(f"/api/guests/{name}/thumbnail")
            return len(rows)

        refresh()
        before = self.cpu()
        begun = time.perf_counter()
        for _ in range(count):
            web.get("/api/guests")
        list_wall = time.perf_counter() - begun
        middle = self.cpu()
        for _ in range(count):
            listed = refresh()
        wall = time.perf_counter() - begun - list_wall
        after = self.cpu()
        own = (after[0] - middle[0]) / TICK / count
        children = (after[1] - middle[1]) / TICK / count
        return {
            "list_own_ms": 1000 * (middle[0] - before[0]) / TICK / count,
            "list_children_ms": 1000 * (middle[1] - before[1]) / TICK / count,
            "list_wall_ms": 1000 * list_wall / count,
            "listed": listed,
            "running": len(running),
            "own_ms": 1000 * own,
            "children_ms": 1000 * children,
            "wall_ms": 1000 * wall / count,
            "core_pct": 100 * (own + children) / REFRESH_EVERY_S,
        }

    def stop_tiny(self) -> None:
        if self.tiny:
            self.host.run("svcadm", "disable", "-s", *(f"{VM}:{n}" for n in self.tiny), check=False)

    def close(self) -> None:
        if self.websockify is not None:
            self.websockify.stop()
        if self.web is not None:
            self.web.close()


# -- report -------------------------------------------------------------------------------


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarize(results: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for path, trials in results.items():
        rtts = [t for trial in trials for t in trial["rtts"]]
        row = {
            "rate": statistics.median(t["rate"] for t in trials),
            "updates": statistics.median(t["updates"] for t in trials),
            "client_cpu": statistics.median(t["client_cpu"] for t in trials),
            "rtt_median": statistics.median(rtts) if rtts else float("nan"),
            "rtt_p95": quantile(rtts, 0.95) if rtts else float("nan"),
        }
        if trials[0]["proxy_cpu"] is not None:
            row["proxy_cpu"] = statistics.median(t["proxy_cpu"] for t in trials)
            row["proxy_ms_per_mb"] = statistics.median(t["proxy_ms_per_mb"] for t in trials)
        out[path] = row
    return out


def print_paths(summary: dict[str, dict[str, float]]) -> None:
    raw = summary["raw"]
    print(
        f"    {'path':<11} {'MB/s':>7} {'updates/s':>9} {'x raw':>6}  {'rtt med':>8} "
        f"{'p95':>8} {'added':>8}  {'proxy CPU':>9} {'ms/MB':>6}  client CPU"
    )
    for path, row in summary.items():
        added = row["rtt_median"] - raw["rtt_median"]
        proxy = (
            f"{100 * row['proxy_cpu']:8.0f}% {row['proxy_ms_per_mb']:6.1f}"
            if "proxy_cpu" in row
            else f"{'-':>9} {'-':>6}"
        )
        print(
            f"    {path:<11} {row['rate'] / MB:7.1f} {row['updates']:9.1f} "
            f"{row['rate'] / raw['rate']:6.2f}  {1e6 * row['rtt_median']:6.0f}us "
            f"{1e6 * row['rtt_p95']:6.0f}us "
            f"{'-' if path == 'raw' else f'{1e6 * added:+.0f}us':>8}  {proxy}  "
            f"{100 * row['client_cpu']:.0f}%"
        )


def at_least(value: float, aim: float) -> str:
    return "met" if value >= aim else "not met"


def ahead(ratio: float) -> str:
    """Ahead of websockify by more than one run's noise, level within it, or behind."""
    if ratio > AIM_WEBSOCKIFY_RATIO + NOISE:
        return "met"
    return "level" if ratio >= AIM_WEBSOCKIFY_RATIO - NOISE else "not met"


def measure(bench: Bench, args: argparse.Namespace) -> None:
    rows: list[tuple[str, str, str, str]] = []
    print(
        f"1./2. throughput and latency: {args.rounds} rounds, each path {args.seconds:g} s of "
        f"whole-screen updates after {args.probes} round trips on one connection, "
        "the order turning"
    )
    print(f"  a) QEMU's own VNC server ({bench.run.vnc_socket})")
    results = bench.rounds(args.rounds, args.seconds, args.probes)
    qemu = summarize(results)
    width, height, bpp = results["raw"][0]["screen"]
    print(
        f"    screen {width}x{height}, {8 * bpp} bpp: {width * height * bpp / MB:.2f} MB an "
        "update, raw"
    )
    print_paths(qemu)
    print(
        "  b) an instant RFB server in the socket's place, same screen, answering each "
        "request at once"
    )
    with instant_server(bench.run.vnc_socket, width, height):
        instant = summarize(bench.rounds(args.rounds, args.seconds, args.probes))
    print_paths(instant)
    for label, s in (("QEMU's server", qemu), ("instant server", instant)):
        to_raw = s["controller"]["rate"] / s["raw"]["rate"]
        to_wsf = s["controller"]["rate"] / s["websockify"]["rate"]
        rows.append(
            (
                f"controller / raw throughput, {label}",
                f"{to_raw:.2f}",
                f">= {AIM_RAW_RATIO:g}",
                at_least(to_raw, AIM_RAW_RATIO),
            )
        )
        rows.append(
            (
                f"controller / websockify throughput, {label}",
                f"{to_wsf:.2f}",
                f"> {AIM_WEBSOCKIFY_RATIO:g}",
                ahead(to_wsf),
            )
        )
    cost = instant["controller"]["proxy_ms_per_mb"] / instant["websockify"]["proxy_ms_per_mb"]
    rows.append(
        (
            "controller / websockify CPU a MB, instant server",
            f"{cost:.2f}",
            "< 1",
            f"{instant['controller']['proxy_ms_per_mb']:.2f} and "
            f"{instant['websockify']['proxy_ms_per_mb']:.2f} ms a MB",
        )
    )
    for label, s in (("QEMU's server", qemu), ("instant server", instant)):
        raw_rtt = s["raw"]["rtt_median"]
        for path in ("controller", "websockify"):
            added = s[path]["rtt_median"] - raw_rtt
            rows.append(
                (
                    f"added latency (median), {path}, {label}",
                    f"{1e6 * added:+.0f} us",
                    "",
                    f"raw {1e6 * raw_rtt:.0f} us, {path} {1e6 * s[path]['rtt_median']:.0f} us",
                )
            )

    print(f"3. CPU: {args.thumbnails} thumbnails of {GUEST}")
    thumb = bench.thumbnails(args.thumbnails)
    print(
        f"  controller {thumb['own_ms']:.1f} ms CPU a thumbnail (children "
        f"{thumb['children_ms']:.1f} ms); QEMU {thumb['qemu_ms']:.1f} ms for its screendump; "
        f"{thumb['wall_ms']:.1f} ms each, one after another; PNG {thumb['png_bytes']} bytes"
    )
    rows.append(
        ("controller CPU a thumbnail", f"{thumb['own_ms'] + thumb['children_ms']:.1f} ms", "", "")
    )
    made, online = bench.start_tiny(args.guests - 1)
    print(
        f"  {args.guests - 1} guests without an OS (64M, 1 vCPU) beside {GUEST}: made and "
        f"imported in {made:.0f} s, online with QMP sessions {online:.0f} s after one "
        f"svcadm enable; {args.refreshes} refreshes of the list page "
        f"(GET /api/guests + {args.guests} thumbnails)"
    )
    page = bench.list_page(args.refreshes)
    print(
        f"  {page['running']:.0f} running of {page['listed']:.0f} listed: controller "
        f"{page['own_ms']:.0f} ms CPU a refresh, its children {page['children_ms']:.0f} ms; "
        f"{page['wall_ms']:.0f} ms a refresh, one request after another"
    )
    print(
        f"  of which GET /api/guests alone: controller {page['list_own_ms']:.0f} ms, its "
        f"children {page['list_children_ms']:.0f} ms ({page['list_wall_ms']:.0f} ms each)"
    )
    print(
        f"  one refresh every {REFRESH_EVERY_S:g} s: {page['core_pct']:.1f} % of one core "
        "(controller and children)"
    )
    rows.append(
        (
            f"controller CPU a list refresh, {page['running']:.0f} running",
            f"{page['own_ms'] + page['children_ms']:.0f} ms",
            "",
            f"{page['core_pct']:.1f} % of a core at one every {REFRESH_EVERY_S:g} s",
        )
    )
    print()
    print(f"{'figure':<52} {'value':>9}  {'aim':>7}  result")
    for label, value, aim, result in rows:
        print(f"{label:<52} {value:>9}  {aim:>7}  {result}")


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-rfb":
        width, height = (int(x) for x in sys.argv[3].split("x"))
        serve_rfb(sys.argv[2], width, height)
        return 0
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--quick", action="store_true", help="a short run, for development")
    parser.add_argument("--rounds", type=int, help="rounds of the three paths (default 5)")
    parser.add_argument("--seconds", type=float, help="throughput window a trial, s (default 3)")
    parser.add_argument("--probes", type=int, help="round trips a trial (default 200)")
    parser.add_argument("--thumbnails", type=int, help="thumbnails timed (default 40)")
    parser.add_argument("--guests", type=int, help="running guests on the list page (default 20)")
    parser.add_argument("--refreshes", type=int, help="list-page refreshes timed (default 10)")
    parser.add_argument(
        "--iso", type=Path, help="the test guest's ISO (default: built by tests/guest/build.py)"
    )
    args = parser.parse_args()
    quick = args.quick
    for name, full, short in (
        ("rounds", 5, 2),
        ("seconds", 3.0, 1.0),
        ("probes", 200, 50),
        ("thumbnails", 40, 10),
        ("refreshes", 10, 3),
        ("guests", 20, 5),
    ):
        if getattr(args, name) is None:
            setattr(args, name, short if quick else full)
    if min(args.rounds, args.probes, args.thumbnails, args.refreshes) < 1 or args.seconds <= 0:
        parser.error("every count must be at least 1, --seconds more than 0")
    if args.guests < 1:
        parser.error("--guests must be at least 1 (the test guest)")
    ensure_websockify()
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        host = stack.enter_context(service_host("--physmem", "16G"))
        log = stack.enter_context(open(host.state / "bench-console.log", "wb"))
        if args.iso is not None:
            shutil.copy(args.iso, host.iso_dir / "testguest.iso")
        bench = Bench(host, log)
        stack.callback(bench.close)
        stack.callback(bench.stop_tiny)
        bench.set_up()
        print(
            f"devhost {host.state}: controller pid {bench.controller_pid}, web console "
            f"{bench.web.origin if bench.web else '?'}; websockify pid "
            f"{bench.websockify.proc.pid if bench.websockify else '?'}"
        )
        measure(bench, args)
        print(f"\n(whole run {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
