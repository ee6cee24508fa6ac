"""How a guest's desktop VNC display (TCP 5900+N) is protected. Pure.

On a loopback address nothing changes: only this host reaches the port, and a
guest's own vnc.password, if it has one, is asked as before. Off loopback anyone
on the appliance's network reaches it, so a display is protected one of three
ways, or the guest does not start (exit 96, and `validate` says the same):

- TLS (`[display] tls = true`): QEMU's x509 credentials, so the server offers
  only VeNCrypt, plus a password, because VNC's own scheme alone is DES keyed by
  eight characters; the guest's vnc.password, or one generated at the start;
- a password: the guest's vnc.password, or with `[display] passwords =
  "generate"` one generated at each start, kept 0600 in the run directory and
  read by QEMU from there (a secret object), never on a command line and never
  in the bundle;
- `[display] allow_unauthenticated = true`, for labs: the start logs a warning.

The web console is not affected: in modern QEMU it reaches the guest through a
private UNIX socket (vmbundle.controller.vnc_target).
"""

from __future__ import annotations

import ipaddress
import secrets
from typing import Literal

import attrs

from vmbundle.vm.model import VmConfig

# VNC authentication uses at most 8 characters; no look-alikes (0/O, 1/l/I).
PASSWORD_LENGTH = 8
_ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

Kind = Literal["loopback", "password", "tls", "unauthenticated", "refused"]
Source = Literal["guest", "generated"]


@attrs.frozen
class DisplayPolicy:
    """The host configuration's [display] rules for desktop displays."""

    listen: str
    tls: bool = False
    generate_passwords: bool = False
    allow_unauthenticated: bool = False


@attrs.frozen
class DisplayAuth:
    kind: Kind
    password: Source | None = None
    """Where the display's password comes from; None: no password."""
    problem: str | None = None
    """kind "refused": why, and the ways to fix it, as one line after the guest's name."""

    def describe(self) -> str:
        """How `vmbundle status` says it."""
        source = {"guest": "the guest's vnc.password", "generated": "a password made at start"}
        with_password = f", {source[self.password]}" if self.password else ""
        return {
            "loopback": f"loopback only{with_password}",
            "password": f"VNC authentication{with_password}",
            "tls": f"TLS (x509, VeNCrypt){with_password}",
            "unauthenticated": "NO PASSWORD off loopback (allow_unauthenticated = true)",
            "refused": "refused",
        }[self.kind]


def is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


def decide(cfg: VmConfig, policy: DisplayPolicy) -> DisplayAuth:
    """How cfg's desktop display is protected under policy."""
    own: Source | None = "guest" if cfg.vnc.password is not None else None
    if is_loopback(policy.listen):
        return DisplayAuth("loopback", own)
    if policy.tls:
        return DisplayAuth("tls", own or "generated")
    if own is not None:
        return DisplayAuth("password", own)
    if policy.generate_passwords:
        return DisplayAuth("password", "generated")
    if policy.allow_unauthenticated:
        return DisplayAuth("unauthenticated")
    return DisplayAuth(
        "refused",
        problem=(
            f"the display would listen on {policy.listen}, off loopback, with no password; "
            f"give the guest one (vmbundle set {cfg.name} vnc.password=...), or in the host "
            'configuration\'s [display] set passwords = "generate" or tls = true '
            "(allow_unauthenticated = true only for a lab)"
        ),
    )


def new_password() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(PASSWORD_LENGTH))
