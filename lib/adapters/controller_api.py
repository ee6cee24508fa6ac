"""HTTP to the running controller, on its UNIX socket (stdlib only, so the CLI
needs no aiohttp to talk to it)."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vmbundle.adapters.smf import CONTROLLER
from vmbundle.errors import VmbundleError


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


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self._path))
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _down(path: Path, why: str) -> ControllerDown:
    return ControllerDown(
        f"the vmbundle controller is not running ({path}: {why}); "
        f"enable it: svcadm enable {CONTROLLER}"
    )


def _open(
    path: Path, method: str, target: str, body: Any, timeout: float | None
) -> http.client.HTTPResponse:
    conn = _UnixConnection(path, timeout)
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    try:
        conn.request(method, target, body=data, headers=headers)
        response = conn.getresponse()
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        conn.close()
        raise _down(path, exc.strerror or type(exc).__name__) from None
    except PermissionError:
        conn.close()
        raise VmbundleError(f"{path}: only root may talk to the controller") from None
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        raise VmbundleError(f"the vmbundle controller did not answer: {exc}") from None
    if response.status >= 400:
        text = response.read()
        conn.close()
        try:
            answer = json.loads(text)
            line = str(answer["error"])
        except (ValueError, KeyError, TypeError):
            answer, line = None, f"the controller answered {response.status}: {text[:200]!r}"
        raise Refused(response.status, line, answer if isinstance(answer, dict) else None)
    return response


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
