"""HTTP to the running controller, on its UNIX socket (stdlib only, so the CLI
needs no aiohttp to talk to it)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vmbundle.adapters.smf import CONTROLLER
from vmbundle.errors import VmbundleError

if TYPE_CHECKING:
    import http.client


class ControllerDown(VmbundleError):
    """No controller answers on the socket."""


class Refused(VmbundleError):
    """The controller answered with an error; its line is the message."""

    def __init__(self, status: int, line: str, answer: dict[str, Any] | None = None) -> None:
        super().__init__(line)
        self.status = status
        self.answer = answer or {}
        """The error's JSON object, for the fields beside its line."""
        if status == 404:
            self.exit_code = 1


def _unix_socket(path: Path, timeout: float | None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        sock.close()
        raise _down(path, exc.strerror or type(exc).__name__) from None
    except PermissionError:
        sock.close()
        raise VmbundleError(f"{path}: only root may talk to the controller") from None
    except BaseException:
        sock.close()
        raise
    return sock


def _down(path: Path, why: str) -> ControllerDown:
    return ControllerDown(
        f"the vmbundle controller is not running ({path}: {why}); "
        f"enable it: svcadm enable {CONTROLLER}"
    )


def _no_answer(why: object) -> VmbundleError:
    return VmbundleError(f"the vmbundle controller did not answer: {why}")


def _refused(status: int, text: bytes) -> Refused:
    try:
        answer = json.loads(text)
        line = str(answer["error"])
    except (ValueError, KeyError, TypeError):
        answer, line = None, f"the controller answered {status}: {text[:200]!r}"
    return Refused(status, line, answer if isinstance(answer, dict) else None)


def _open(
    path: Path, method: str, target: str, body: Any, timeout: float | None
) -> http.client.HTTPResponse:
    """The answer, when successful."""
    # Here, not at the top: the start method's quick path uses this module
    # without it (post_quick), and http.client with the email parser it imports
    # costs that path some 20 ms.
    import http.client

    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    conn = http.client.HTTPConnection("localhost", timeout=timeout)
    try:
        # HTTPConnection uses a socket already there rather than connecting by TCP.
        conn.sock = _unix_socket(path, timeout)
        conn.request(method, target, body=data, headers=headers)
        response = conn.getresponse()
    except VmbundleError:
        conn.close()
        raise
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        raise _no_answer(exc) from None
    if response.status >= 400:
        text = response.read()
        conn.close()
        raise _refused(response.status, text)
    return response


def post_quick(path: Path, target: str, body: Any, timeout: float) -> Any:
    """post_json without http.client, for the start method's quick path: one
    HTTP/1.1 request with `Connection: close`, the answer read to its end (the
    controller's JSON answers carry a Content-Length)."""
    data = json.dumps(body).encode()
    head = (
        f"POST {target} HTTP/1.1\r\nHost: localhost\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    chunks = []
    try:
        with _unix_socket(path, timeout) as sock:
            sock.sendall(head + data)
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except OSError as exc:
        raise _no_answer(exc) from None
    if not chunks:  # a controller that ended (a restart, a kill) while it held the request
        raise _no_answer("it closed the connection")
    status, text = _parse_answer(b"".join(chunks))
    if status >= 400:
        raise _refused(status, text)
    return json.loads(text)


def _parse_answer(raw: bytes) -> tuple[int, bytes]:
    """(status, body) of one HTTP/1.1 answer with a Content-Length."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    status_line, *fields = head.split(b"\r\n")
    parts = status_line.split(b" ", 2)
    length = None
    for field in fields:
        key, _, value = field.partition(b":")
        if key.strip().lower() == b"content-length":
            length = value.strip()
    if not sep or len(parts) < 2 or not parts[1].isdigit() or length is None:
        raise VmbundleError(f"the vmbundle controller's answer is not understood: {raw[:200]!r}")
    if not length.isdigit() or len(body) < int(length):
        raise VmbundleError("the vmbundle controller's answer was cut short")
    return int(parts[1]), body[: int(length)]


def request(path: Path, method: str, target: str, body: Any = None, timeout: float = 60.0) -> bytes:
    """The body of a successful answer; ControllerDown or Refused otherwise."""
    response = _open(path, method, target, body, timeout)
    try:
        return response.read()
    finally:
        response.close()


def get_json(path: Path, target: str, timeout: float = 60.0) -> Any:
    return json.loads(request(path, "GET", target, timeout=timeout))


def post_json(path: Path, target: str, body: Any, timeout: float = 130.0) -> Any:
    return json.loads(request(path, "POST", target, body, timeout=timeout))


def stream_lines(path: Path, target: str) -> Iterator[dict[str, Any]]:
    """One JSON object per line of a streamed answer, until the controller ends it."""
    response = _open(path, "GET", target, None, None)
    try:
        for line in response:
            if line.strip():
                yield json.loads(line)
    finally:
        response.close()
