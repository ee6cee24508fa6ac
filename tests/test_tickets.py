"""Console tickets (vmbundle.controller.tickets): signed, bound, single-use, 30 s."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmbundle.controller.tickets import TICKET_SECONDS, Grant, TicketRefused, Tickets, load_key

GRANT = Grant("alice", "session-1", "web01")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tickets(clock: Clock, key: bytes = b"k" * 32) -> Tickets:
    return Tickets(key, clock)


def test_a_ticket_is_good_once_for_its_grant() -> None:
    clock = Clock()
    t = tickets(clock)
    ticket = t.issue(GRANT)
    t.redeem(ticket, GRANT)
    with pytest.raises(TicketRefused, match="used already"):
        t.redeem(ticket, GRANT)


@pytest.mark.parametrize(
    "other",
    [
        Grant("bob", "session-1", "web01"),
        Grant("alice", "session-2", "web01"),
        Grant("alice", "session-1", "web02"),
    ],
)
def test_a_ticket_for_another_user_session_or_guest_is_refused(other: Grant) -> None:
    t = tickets(Clock())
    with pytest.raises(TicketRefused, match="another guest, session or channel"):
        t.redeem(t.issue(GRANT), other)


def test_a_ticket_expires_after_thirty_seconds() -> None:
    clock = Clock()
    t = tickets(clock)
    ticket = t.issue(GRANT)
    clock.now += TICKET_SECONDS + 0.01
    with pytest.raises(TicketRefused, match="expired"):
        t.redeem(ticket, GRANT)
    ticket = t.issue(GRANT)
    clock.now += TICKET_SECONDS - 0.01
    t.redeem(ticket, GRANT)


def test_missing_forged_and_foreign_tickets_are_refused() -> None:
    clock = Clock()
    t = tickets(clock)
    for bad in (None, "", "abc", "a.b.c.d.e.f"):
        with pytest.raises(TicketRefused):
            t.redeem(bad, GRANT)
    ticket = t.issue(GRANT)
    body, _, mac = ticket.rpartition(".")
    with pytest.raises(TicketRefused, match="not one this controller signed"):
        t.redeem(f"{body}.{mac[:-2]}AA", GRANT)
    with pytest.raises(TicketRefused, match="not one this controller signed"):
        tickets(clock, b"x" * 32).redeem(ticket, GRANT)


def test_the_key_is_made_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "ticket.key"
    key = load_key(path)
    assert len(key) == 32 and path.stat().st_mode & 0o777 == 0o600
    assert load_key(path) == key


def test_a_console_ticket_does_not_open_the_serial_console() -> None:
    t = tickets(Clock())
    ticket = t.issue(Grant("olga", "s1", "web01", "console"))
    with pytest.raises(TicketRefused, match="another guest, session or channel"):
        t.redeem(ticket, Grant("olga", "s1", "web01", "serial"))
