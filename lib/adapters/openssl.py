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


def vnc_x509_dir(directory: Path, host: str, address: str, *, binary: str = "openssl") -> None:
    """Write QEMU's x509 directory for a VNC server: a CA of its own (ca-cert.pem;
    its key is not kept) and a server certificate it signed (server-cert.pem,
    server-key.pem 0600). QEMU checks that the CA certificate says CA and the
    server's does not, so one self-signed certificate cannot be both."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    work = directory / ".new"
    work.mkdir(mode=0o700, exist_ok=True)
    ca_key, ca_cert = work / "ca-key.pem", work / "ca-cert.pem"
    key, csr, cert = work / "server-key.pem", work / "server.csr", work / "server-cert.pem"
    ext = work / "server.ext"
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        f"subjectAltName={_alt_names(host, address)}\n"
    )
    ca_argv = [
        binary, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
        "-days", str(DAYS), "-subj", f"/CN=vmbundle VNC CA {host}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", str(ca_key), "-out", str(ca_cert),
    ]  # fmt: skip
    csr_argv = [
        binary, "req", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256",
        "-subj", f"/CN={host}", "-keyout", str(key), "-out", str(csr),
    ]  # fmt: skip
    sign_argv = [
        binary, "x509", "-req", "-in", str(csr), "-CA", str(ca_cert),
        "-CAkey", str(ca_key), "-set_serial", "1", "-days", str(DAYS), "-sha256",
        "-extfile", str(ext), "-out", str(cert),
    ]  # fmt: skip
    old = os.umask(0o077)
    try:
        for argv in (ca_argv, csr_argv, sign_argv):
            run_tool(argv, timeout=120)
    finally:
        os.umask(old)
    os.chmod(ca_cert, 0o644)
    os.chmod(cert, 0o644)
    os.chmod(key, 0o600)
    for made in (key, cert, ca_cert):  # the CA last: its presence says the set is whole
        os.replace(made, directory / made.name)
    for left in (ca_key, csr, ext):
        left.unlink(missing_ok=True)
    work.rmdir()
