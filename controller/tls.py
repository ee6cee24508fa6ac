"""HTTPS for the web console whenever it listens beyond loopback.

On a loopback address the console is plain HTTP (only this host reaches it). On
any other address it is HTTPS only: the configured certificate and key, or a
self-signed pair made at the first start (vmbundle.adapters.openssl) and kept
beside the host configuration, so browsers can pin it once.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from pathlib import Path

from vmbundle.adapters import openssl
from vmbundle.errors import ConfigError
from vmbundle.settings import HostSettings


def loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


def pair(settings: HostSettings) -> tuple[Path, Path]:
    if settings.web_cert is not None and settings.web_key is not None:
        return settings.web_cert, settings.web_key
    return settings.config_dir / "web.crt", settings.config_dir / "web.key"


def context(settings: HostSettings) -> ssl.SSLContext | None:
    """None on loopback; otherwise a server context, the self-signed pair made if needed."""
    if loopback(settings.web_listen):
        return None
    cert, key = pair(settings)
    if settings.web_cert is None and not (cert.exists() and key.exists()):
        openssl.self_signed(cert, key, socket.getfqdn(), settings.web_listen)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            [f"web.cert {cert} / web.key {key}: cannot be used for HTTPS: {exc}"]
        ) from None
    return ctx
