"""Web console sessions (vmbundle.controller.sessions): login, idle expiry, CSRF,
the growing delay after failures, and users changed under a session."""

from __future__ import annotations

import pytest

from vmbundle import users
from vmbundle.controller.sessions import IDLE_SECONDS, LoginRefused, Sessions
from vmbundle.users import User

ALICE = User("alice", "operator", users.hash_password("s3cret-pass", n=1 << 10))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock, accounts: dict[str, User] | None = None) -> tuple[Sessions, dict[str, User]]:
    known = {"alice": ALICE} if accounts is None else accounts
    return Sessions(lambda: known, clock), known


def test_login_gives_a_session_and_a_csrf_token() -> None:
    sessions, _ = make(Clock())
    s = sessions.login("alice", "s3cret-pass", "10.0.0.1")
    assert sessions.get(s.id) is s and s.user.role == "operator"
    assert Sessions.csrf_ok(s, s.csrf)
    assert (
        not Sessions.csrf_ok(s, None)
        and not Sessions.csrf_ok(s, "")
        and not Sessions.csrf_ok(s, s.id)
    )
    assert sessions.get(None) is None and sessions.get("forged") is None
    sessions.logout(s.id)
    assert sessions.get(s.id) is None


def test_a_session_ends_after_it_is_idle() -> None:
    clock = Clock()
    sessions, _ = make(clock)
    s = sessions.login("alice", "s3cret-pass", "a")
    clock.now += IDLE_SECONDS - 1
    assert sessions.get(s.id) is s  # use restarts the idle clock
    clock.now += IDLE_SECONDS - 1
    assert sessions.get(s.id) is s
    clock.now += IDLE_SECONDS + 1
    assert sessions.get(s.id) is None


def test_failed_logins_make_the_next_wait_longer() -> None:
    clock = Clock()
    sessions, _ = make(clock)
    for name, password in (("alice", "wrong-pass"), ("nobody", "s3cret-pass")):
        with pytest.raises(LoginRefused, match="wrong user name or password"):
            sessions.login(name, password, f"addr-{name}")
    with pytest.raises(LoginRefused, match="too many failed logins") as refused:
        sessions.login("alice", "s3cret-pass", "elsewhere")
    assert 0 < refused.value.retry_after <= 1.0
    clock.now += 1.0
    with pytest.raises(LoginRefused, match="wrong"):
        sessions.login("alice", "wrong-again", "elsewhere")
    clock.now += 1.5  # the second failure asks for 2 s
    with pytest.raises(LoginRefused, match="too many"):
        sessions.login("alice", "s3cret-pass", "elsewhere")
    clock.now += 0.5
    s = sessions.login("alice", "s3cret-pass", "elsewhere")
    assert sessions.get(s.id) is s
    # Success forgets the failures of that name.
    with pytest.raises(LoginRefused, match="wrong"):
        sessions.login("alice", "wrong-pass", "third")


def test_a_user_removed_or_changed_loses_the_session() -> None:
    clock = Clock()
    sessions, known = make(clock, {"alice": ALICE})
    s = sessions.login("alice", "s3cret-pass", "a")
    known["alice"] = User("alice", "viewer", ALICE.password_hash)
    assert sessions.get(s.id) is None
    s = sessions.login("alice", "s3cret-pass", "a")
    del known["alice"]
    assert sessions.get(s.id) is None
