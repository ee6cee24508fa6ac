"""The web console in real Chromium (Debian's, driven by Playwright), against the real
controller on a devhost and the real test guest: log in, the list with the guest's
thumbnail, the noVNC console (typing, paste as keystrokes), the serial console, and a
stop from the list. The screenshots it takes are kept in its output directory."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from support.service_host import ServiceHost, service_host

from vmbundle.adapters import controller_api
from vmbundle.errors import VmbundleError

pytestmark = [pytest.mark.qemu, pytest.mark.zfs]

OUT = Path(os.environ.get("VMBUNDLE_TEST_OUTPUT", "/tmp/vmbundle-test-output")) / "web_console"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As root in a closed network: no sandbox, and nothing that calls out to Google.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "olga-pass-1234"
GUEST = "web1"
# The test guest paints white on VGA blue (tests/guest/init).
VGA_BLUE = (0, 0, 170)


@pytest.fixture(scope="module")
def host(zfs_pool: object) -> Iterator[ServiceHost]:
    with service_host() as h:
        h.wait_controller()
        yield h


def blue_share(png: bytes) -> float:
    """How much of a picture is the test guest's banner blue."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20) or []
    blue = sum(
        n for n, c in colours if all(abs(a - b) < 40 for a, b in zip(c, VGA_BLUE, strict=True))
    )
    return blue / (image.width * image.height)


def wait_for(what: str, predicate: Any, timeout: float = 120, step: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(step)
    return result


@pytest.fixture(scope="module")
def running_guest(host: ServiceHost) -> str:
    host.add_user("olga", "operator", PASSWORD)
    host.create_test_guest(GUEST)
    host.vmbundle("start", GUEST, "--wait")
    # Ready once the banner is on the screen (the controller's own screendump).

    def banner() -> bool:
        try:
            png = controller_api.request(
                host.api, "GET", f"/guests/{GUEST}/screenshot?width=320", timeout=10
            )
        except VmbundleError:  # not attached yet
            return False
        return blue_share(png) > 0.5

    wait_for("the test guest's banner on its screen", banner, timeout=180, step=1)
    return GUEST


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def knock_off_other_vnc_clients(vnc_socket: Path) -> None:
    """An RFB 3.8 client with security None whose ClientInit asks for exclusive use."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(vnc_socket))
        f = s.makefile("rwb")
        assert f.read(12) == b"RFB 003.008\n"
        f.write(b"RFB 003.008\n")
        f.flush()
        count = f.read(1)[0]
        assert 1 in f.read(count), "QEMU's private VNC server offers no security None"
        f.write(b"\x01")
        f.flush()
        assert f.read(4) == bytes(4)
        f.write(b"\x00")  # shared flag 0: exclusive
        f.flush()
        f.read(24)  # ServerInit: QEMU has dropped the others by now


def serial_text(page: Any) -> str:
    return str(page.evaluate("() => document.querySelector('.xterm-rows')?.innerText ?? ''"))


def log_in(browser: Any, url: str, user: str, password: str) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(url)
    page.fill("#login input[name=user]", user)
    page.fill("#login input[name=password]", password)
    page.click("#login button[type=submit]")
    page.locator(f"article[data-guest={GUEST}]").wait_for(timeout=30_000)
    return page


def test_a_viewer_sees_the_list_and_watches_the_console_without_typing(
    host: ServiceHost, running_guest: str, browser: Any
) -> None:
    host.add_user("vic", "viewer", "vic-pass-1234")
    url = host.web_url()
    page = log_in(browser, url, "vic", "vic-pass-1234")
    card = page.locator(f"article[data-guest={GUEST}]")
    card.locator(".thumb img[data-loaded]").wait_for(timeout=30_000)
    assert card.locator("button").count() == 0, "a viewer is offered no actions"
    card.locator("a .thumb").click()
    page.locator("body[data-status='connected (view only)']").wait_for(timeout=30_000)
    assert not page.is_visible("#keys") and not page.is_visible("#paste-open")
    assert not page.is_visible("#display-open"), "a viewer is offered the display's password"
    canvas = page.locator("#screen canvas")
    before = canvas.screenshot()
    canvas.click()
    page.keyboard.type("viewer was here", delay=20)
    page.keyboard.press("Enter")
    time.sleep(2)
    page.screenshot(path=str(OUT / "viewer-console.png"))
    assert canvas.screenshot() == before, "a viewer's typing reached the guest"
    page.context.close()


def test_log_in_watch_type_paste_read_serial_and_stop(
    host: ServiceHost, running_guest: str, browser: Any
) -> None:
    url = host.web_url()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    # Log in.
    page.goto(url)
    page.fill("#login input[name=user]", "olga")
    page.fill("#login input[name=password]", PASSWORD)
    page.click("#login button[type=submit]")
    card = page.locator(f"article[data-guest={GUEST}]")
    card.wait_for(timeout=30_000)
    assert "olga (operator)" in page.inner_text("#who")

    # The list: the guest, its state, and a thumbnail that shows its banner.
    thumb = card.locator(".thumb img[data-loaded]")
    thumb.wait_for(timeout=30_000)
    assert card.get_attribute("data-state") == "online"
    facts = card.inner_text()
    assert "128M" in facts and "127.0.0.1:59" in facts, facts
    png = thumb.screenshot(path=str(OUT / "list-thumbnail.png"))
    assert blue_share(png) > 0.5, "the thumbnail does not show the guest's banner"
    page.screenshot(path=str(OUT / "list.png"))

    # A click opens the console; noVNC's canvas shows the guest's screen.
    card.locator("a .thumb").click()
    page.wait_for_url(f"**/console/{GUEST}")
    page.locator("body[data-status=connected]").wait_for(timeout=30_000)
    canvas = page.locator("#screen canvas")
    canvas.wait_for()
    time.sleep(1)
    before = canvas.screenshot(path=str(OUT / "console.png"))
    assert blue_share(before) > 0.5, "the console canvas does not show the guest's screen"

    # When the connection drops while the guest runs, the page connects again by itself.
    # (A client that asks QEMU for the screen alone drops every other one.)
    knock_off_other_vnc_clients(host.guest_run(GUEST).vnc_socket)
    page.locator("body[data-connects='2'][data-status=connected]").wait_for(timeout=30_000)

    # Typed there, the text reaches the guest, which echoes it on its screen.
    canvas.click()
    page.keyboard.type("hello web", delay=40)
    time.sleep(1.5)
    typed = canvas.screenshot(path=str(OUT / "console-typed.png"))
    assert typed != before, "the screen did not change as the guest echoed the typing"
    page.keyboard.press("Enter")

    # Paste as keystrokes: the text box's text is typed into the guest.
    page.click("#paste-open")
    page.fill("#paste-text", "Pasted: 42!\n")
    page.click("#paste-send")
    time.sleep(2)
    page.screenshot(path=str(OUT / "console-pasted.png"))

    # Where a desktop VNC viewer connects, and how that display is protected.
    page.click("#display-open")
    shown = page.locator("#display-text")
    shown.wait_for(timeout=10_000)
    port = 5900 + host.record(GUEST).display  # type: ignore[operator]
    assert f":{port} (display :{port - 5900}); loopback only." in shown.inner_text()
    page.screenshot(path=str(OUT / "console-display.png"))
    page.click("#display-close")

    # The serial console shows the guest's serial lines, the typed ones among them.
    page.goto(f"{url}/serial/{GUEST}")
    page.locator("body[data-status^=connected]").wait_for(timeout=30_000)
    text = wait_for(
        "the typed and pasted lines on the serial console",
        lambda: (
            (t := serial_text(page)) and "typed hello web" in t and "typed Pasted: 42!" in t and t
        ),
        timeout=30,
    )
    assert "vmbundle-testguest: ready" in text, text
    assert "viewer was here" not in text, "a viewer's typing reached the guest"
    page.screenshot(path=str(OUT / "serial.png"))

    # Stop from the list: the guest powers off and the list shows it disabled.
    page.goto(url)
    card.locator("button[data-action=stop]").click()
    wait_for(
        "the list to show the guest disabled",
        lambda: card.get_attribute("data-state") == "disabled",
        timeout=120,
        step=0.5,
    )
    assert host.state_of(GUEST) == "disabled"
    page.screenshot(path=str(OUT / "list-stopped.png"))

    # Its console now says so, with a Start button for an operator.
    page.goto(f"{url}/console/{GUEST}")
    page.locator("body[data-status='not running']").wait_for(timeout=30_000)
    assert page.is_visible("#start")
    assert "is not running" in page.inner_text("#message-text")
    page.screenshot(path=str(OUT / "console-stopped.png"))

    assert not errors, errors
    context.close()


def test_the_pages_refuse_the_api_without_a_session(host: ServiceHost) -> None:
    url = host.web_url()
    for path in ("/api/guests", f"/api/guests/{GUEST}", "/api/problems", "/metrics"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + path, timeout=10)
        assert refused.value.code == 401, path
        assert "log in first" in json.loads(refused.value.read())["error"]
