"""The operations only the running controller can do, because it holds each
guest's QMP session: a screenshot, a QMP command, the stream of events. The CLI
asks the controller for them over its local API; without a controller they say
so in one line (vmbundle.adapters.controller_api.ControllerDown)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vmbundle.adapters import controller_api
from vmbundle.errors import UsageError
from vmbundle.service.controller import ControllerPaths
from vmbundle.service.state import guest_name
from vmbundle.settings import HostSettings


def _socket(settings: HostSettings) -> Path:
    return ControllerPaths.under(settings.run_dir).api_socket


def screenshot(settings: HostSettings, guest: str, width: int | None) -> bytes:
    """The guest's screen as PNG, downscaled to width pixels when given."""
    name = guest_name(guest)
    query = f"?width={width}" if width is not None else ""
    return controller_api.request(_socket(settings), "GET", f"/guests/{name}/screenshot{query}")


def qmp(
    settings: HostSettings, guest: str, command: str, arguments: Any, timeout: float = 10.0
) -> Any:
    """One QMP command through the controller's session; its return value."""
    if arguments is not None and not isinstance(arguments, dict):
        raise UsageError(
            f'{guest}: QMP arguments must be a JSON object, like \'{{"device": "cd1"}}\''
        )
    body: dict[str, Any] = {"execute": command, "timeout": timeout}
    if arguments is not None:
        body["arguments"] = arguments
    name = guest_name(guest)
    answer = controller_api.post_json(
        _socket(settings), f"/guests/{name}/qmp", body, timeout=timeout + 5
    )
    return answer.get("return")


def events(settings: HostSettings, guest: str | None) -> Iterator[dict[str, Any]]:
    """The controller's events as they happen (after its first "hello" line)."""
    query = ""
    if guest is not None:
        query = "?" + urllib.parse.urlencode({"guest": guest_name(guest)})
    for event in controller_api.stream_lines(_socket(settings), f"/events{query}"):
        if event.get("kind") != "hello":
            yield event
