"""The `openssl` command: a self-signed certificate for the web console, made
when none is configured and the console listens beyond loopback (openssl-req(1):
-x509 -newkey, -nodes, -subj, -addext subjectAltName). The command, not a Python
binding, so nothing with a C extension the appliance lacks is needed."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from vmbundle.adapters.run import run_tool

DAYS = 825  # the longest validity browsers accept for a server certificate


def _alt_names(host: str, address: str) -> str:
    names = [f"DNS:{host}", "DNS:localhost"]
    try:
        ipaddress.ip_address(address)
        if address not in ("0.0.0.0", "::"):
            names.append(f"IP:{address}")
    except ValueError:
        pass
    return ",".join(names)


def self_signed(cert: Path, key: Path, host: str, address: str, *, binary: str = "openssl") -> None:
    """Write a new key (0600) and its self-signed certificate for host."""
    cert.parent.mkdir(parents=True, exist_ok=True)
    tmp_key = key.with_name(f".{key.name}.new")
    tmp_cert = cert.with_name(f".{cert.name}.new")
    argv = [
        binary, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
        "-days", str(DAYS), "-subj", f"/CN={host}",
        "-addext", f"subjectAltName={_alt_names(host, address)}",
        "-keyout", str(tmp_key), "-out", str(tmp_cert),
    ]  # fmt: skip
    old = os.umask(0o077)
    try:
        run_tool(argv, timeout=120)
    finally:
        os.umask(old)
    os.chmod(tmp_key, 0o600)
    os.chmod(tmp_cert, 0o644)
    os.replace(tmp_key, key)
    os.replace(tmp_cert, cert)
