"""HTTPS for the web console beyond loopback (vmbundle.controller.tls), with a
self-signed pair made by the real openssl command when none is configured."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import structlog
from aiohttp import ClientSession

from vmbundle.controller import main as controller_main
from vmbundle.controller import tls
from vmbundle.controller.daemon import Controller
from vmbundle.errors import ConfigError
from vmbundle.service.controller import ControllerPaths
from vmbundle.settings import HostSettings, parse


def test_loopback_is_plain_http() -> None:
    for address in ("127.0.0.1", "::1"):
        assert tls.context(HostSettings(web_listen=address)) is None


def test_beyond_loopback_a_self_signed_pair_is_made_once(tmp_path: Path) -> None:
    settings = HostSettings(web_listen="0.0.0.0", source=tmp_path / "vmbundle.toml")
    ctx = tls.context(settings)
    assert isinstance(ctx, ssl.SSLContext)
    cert, key = tmp_path / "web.crt", tmp_path / "web.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert b"BEGIN CERTIFICATE" in cert.read_bytes()
    made = cert.read_bytes()
    tls.context(settings)
    assert cert.read_bytes() == made, "kept, not made again"


def test_a_configured_pair_that_cannot_serve_is_one_clear_error(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("not a certificate")
    key.write_text("not a key")
    settings = HostSettings(web_listen="192.0.2.1", web_cert=cert, web_key=key)
    with pytest.raises(ConfigError, match="cannot be used for HTTPS"):
        tls.context(settings)
    with pytest.raises(ConfigError, match="give both, or neither"):
        parse({"web": {"cert": str(cert)}}, None)
    with pytest.raises(ConfigError, match=r"web\.port: must be a TCP port"):
        parse({"web": {"port": 70000}}, None)


def test_beyond_loopback_the_console_answers_https_only(tmp_path: Path) -> None:
    """Served for real on every address: plain HTTP gets no HTTP answer at all, HTTPS
    (with the self-signed pair) gets the API's refusal of a request with no session."""
    settings = HostSettings(
        web_listen="0.0.0.0", web_port=0, run_dir=tmp_path / "run", source=tmp_path / "vm.toml"
    )
    paths = ControllerPaths.under(settings.run_dir)
    paths.dir.mkdir(parents=True)

    async def main() -> None:
        ctl = Controller(settings, structlog.get_logger("test"))
        runner = await controller_main._serve_web(ctl, settings, paths)
        try:
            url = paths.web_url.read_text().strip()
            assert url.startswith("https://0.0.0.0:"), url
            port = int(url.rstrip("/").rsplit(":", 1)[1])
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /api/guests HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(4096), 10)
            writer.close()
            assert b"HTTP/" not in answer, answer
            insecure = ssl.create_default_context()
            insecure.check_hostname = False
            insecure.verify_mode = ssl.CERT_NONE
            async with (
                ClientSession() as client,
                client.get(f"https://127.0.0.1:{port}/api/guests", ssl=insecure) as r,
            ):
                assert r.status == 401
                assert "log in first" in (await r.json())["error"]
        finally:
            await runner.cleanup()

    asyncio.run(main())
