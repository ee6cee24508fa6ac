"""The start method's request to the controller without http.client
(controller_api.post_quick), against a UNIX socket server that answers as
told: a JSON answer, an error answer, a controller that dies holding the
request, and one cut short."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmbundle.adapters import controller_api
from vmbundle.errors import VmbundleError


def answer(status: int, body: dict[str, object], *, short: int = 0) -> bytes:
    data = json.dumps(body).encode()
    head = (
        f"HTTP/1.1 {status} Whatever\r\nContent-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(data)}\r\nDate: now\r\n\r\n"
    ).encode()
    return head + data[: len(data) - short]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Path, list[bytes], list[bytes]]]:
    """(socket path, answers to give in turn, requests seen)."""
    path = tmp_path / "api.sock"
    answers: list[bytes] = []
    seen: list[bytes] = []
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += conn.recv(4096)
                head, _, body = request.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                while len(body) < length:
                    body += conn.recv(4096)
                seen.append(head + b"\r\n\r\n" + body)
                conn.sendall(answers.pop(0))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path, answers, seen
    listener.close()


def test_the_answer_and_the_request(server: tuple[Path, list[bytes], list[bytes]]) -> None:
    path, answers, seen = server
    answers.append(answer(200, {"argv": ["qemu", "-name", "a b"], "display": 3}))
    got = controller_api.post_quick(path, "/guests/a/start", {"fmri": "svc:/x:a", "pid": 9}, 5)
    assert got == {"argv": ["qemu", "-name", "a b"], "display": 3}
    head, _, body = seen[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /guests/a/start HTTP/1.1\r\n")
    assert b"\r\nConnection: close" in head
    assert json.loads(body) == {"fmri": "svc:/x:a", "pid": 9}


def test_an_error_answer_is_refused_with_its_fields(
    server: tuple[Path, list[bytes], list[bytes]],
) -> None:
    path, answers, _ = server
    answers.append(answer(422, {"error": "a: not enough memory", "exit": 95}))
    with pytest.raises(controller_api.Refused) as caught:
        controller_api.post_quick(path, "/guests/a/start", {}, 5)
    assert (caught.value.status, str(caught.value)) == (422, "a: not enough memory")
    assert caught.value.answer["exit"] == 95


def test_a_controller_that_closes_without_answering_did_not_answer(
    server: tuple[Path, list[bytes], list[bytes]],
) -> None:
    path, answers, _ = server
    answers.append(b"")
    with pytest.raises(VmbundleError, match="did not answer: it closed the connection"):
        controller_api.post_quick(path, "/guests/a/start", {}, 5)


def test_an_answer_cut_short_is_an_error(server: tuple[Path, list[bytes], list[bytes]]) -> None:
    path, answers, _ = server
    answers.append(answer(200, {"argv": []}, short=3))
    with pytest.raises(VmbundleError, match="cut short"):
        controller_api.post_quick(path, "/guests/a/start", {}, 5)


def test_no_controller_is_controller_down(tmp_path: Path) -> None:
    with pytest.raises(controller_api.ControllerDown, match="svcadm enable"):
        controller_api.post_quick(tmp_path / "api.sock", "/guests/a/start", {}, 5)
