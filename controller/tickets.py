"""Console tickets: what lets one WebSocket open one guest's console.

A ticket is signed (HMAC-SHA256 with a key the controller keeps in its run
directory, made at its first start, so a restart of the controller invalidates
nothing that lives long), bound to the user, their session and the guest,
good once, and for at most TICKET_SECONDS. It travels in the WebSocket URL, so it
must be worthless once used or old. Pure but for the clock and the set of tickets
already used, both held by the Tickets object.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import attrs

from vmbundle.atomic import write_atomic
from vmbundle.errors import VmbundleError

TICKET_SECONDS = 30.0
KEY_BYTES = 32


class TicketRefused(VmbundleError):
    """A console ticket that is missing, forged, used, expired or for something else."""


@attrs.frozen
class Grant:
    user: str
    session: str
    guest: str
    # What the socket opens: "console" (the screen, VNC) or "serial"; a ticket for
    # one never opens the other.
    channel: str = "console"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_key(path: Path) -> bytes:
    """The signing key, made (0600) when there is none."""
    try:
        key = path.read_bytes()
        if len(key) == KEY_BYTES:
            return key
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(KEY_BYTES)
    write_atomic(path, key, mode=0o600, durable=False)
    return key


class Tickets:
    def __init__(self, key: bytes, clock: Callable[[], float] = time.monotonic) -> None:
        self._key = key
        self._clock = clock
        self._used: dict[str, float] = {}

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    def issue(self, grant: Grant) -> str:
        nonce = _b64(secrets.token_bytes(16))
        issued = str(int(self._clock() * 1000))  # milliseconds: no dot in a field
        body = ".".join(
            _b64(x.encode()) for x in (grant.user, grant.session, grant.guest, grant.channel)
        )
        body = f"{body}.{issued}.{nonce}"
        return f"{body}.{self._mac(body)}"

    def redeem(self, ticket: str | None, grant: Grant) -> None:
        """Accept the ticket for exactly this user, session, guest and channel, once."""
        now = self._clock()
        self._forget_old(now)
        if not ticket:
            raise TicketRefused(
                f"{grant.guest}: no {grant.channel} ticket; ask for one: POST /api/guests/{grant.guest}/{grant.channel}"
            )
        body, _, mac = ticket.rpartition(".")
        if not body or not hmac.compare_digest(mac, self._mac(body)):
            raise TicketRefused(
                f"{grant.guest}: the {grant.channel} ticket is not one this controller signed"
            )
        parts = body.split(".")
        if len(parts) != 6:
            raise TicketRefused(f"{grant.guest}: the {grant.channel} ticket is malformed")
        try:
            user, session, guest, channel = (_unb64(p).decode() for p in parts[:4])
            issued = int(parts[4]) / 1000
        except ValueError:
            raise TicketRefused(f"{grant.guest}: the {grant.channel} ticket is malformed") from None
        if Grant(user, session, guest, channel) != grant:
            raise TicketRefused(
                f"{grant.guest}: the {grant.channel} ticket was given for another guest, "
                "session or channel"
            )
        if not 0 <= now - issued <= TICKET_SECONDS:
            raise TicketRefused(
                f"{grant.guest}: the {grant.channel} ticket has expired (they last {TICKET_SECONDS:g}s); ask for a new one"
            )
        if mac in self._used:
            raise TicketRefused(
                f"{grant.guest}: the {grant.channel} ticket was used already; ask for a new one"
            )
        self._used[mac] = issued

    def _forget_old(self, now: float) -> None:
        # A ticket past its time is refused as expired, so it need not be remembered.
        for mac, issued in list(self._used.items()):
            if now - issued > TICKET_SECONDS:
                del self._used[mac]
