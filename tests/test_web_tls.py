"""HTTPS for the web console beyond loopback (vmbundle.controller.tls), with a
self-signed pair made by the real openssl command when none is configured."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from vmbundle.controller import tls
from vmbundle.errors import ConfigError
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
