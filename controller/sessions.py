"""Web console sessions: login, idle expiry, CSRF tokens and the growing delay
after failed logins. Pure but for the clock; the aiohttp app holds one Sessions.

A session id is a random 256-bit token sent as the cookie (HttpOnly,
SameSite=Strict, Secure under HTTPS); its CSRF token is another, which the page
sends back in a header with every request that changes something. Sessions live
in the controller's memory only: a restart of the controller logs everyone out,
which is what an administrator expects of a restarted service.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable, Mapping

import attrs

from vmbundle import users
from vmbundle.errors import VmbundleError
from vmbundle.users import User

IDLE_SECONDS = 30 * 60
# After each failed login for a name (or from an address), the next attempt must
# wait twice as long, from one second up to a minute; a success forgets them.
FIRST_DELAY = 1.0
MAX_DELAY = 60.0
FAILURES_KEPT = 1000


class LoginRefused(VmbundleError):
    """Wrong name or password, or too soon after the last failure."""

    def __init__(self, line: str, retry_after: float = 0.0) -> None:
        super().__init__(line)
        self.retry_after = retry_after


@attrs.define
class Session:
    id: str
    csrf: str
    user: User
    last_seen: float


@attrs.define
class _Failures:
    count: int
    last: float

    def wait_until(self) -> float:
        delay: float = min(FIRST_DELAY * 2.0 ** (self.count - 1), MAX_DELAY)
        return self.last + delay


class Sessions:
    def __init__(
        self,
        accounts: Callable[[], Mapping[str, User]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._accounts = accounts
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._failures: dict[str, _Failures] = {}

    def login(self, name: str, password: str, address: str) -> Session:
        now = self._clock()
        keys = (f"user:{name}", f"addr:{address}")
        for key in keys:
            f = self._failures.get(key)
            if f is not None and now < f.wait_until():
                raise LoginRefused(
                    "too many failed logins; try again shortly", f.wait_until() - now
                )
        user = self._accounts().get(name)
        # The hash is checked even for an unknown name, so timing tells no names.
        digest = user.password_hash if user else _DUMMY_HASH
        if not users.verify(digest, password) or user is None:
            for key in keys:
                f = self._failures.setdefault(key, _Failures(0, now))
                f.count += 1
                f.last = now
            self._trim_failures()
            raise LoginRefused("wrong user name or password")
        for key in keys:
            self._failures.pop(key, None)
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), user, now)
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of a cookie, its idle clock restarted; None otherwise.
        A user removed or changed since the login loses the session."""
        if not session_id:
            return None
        now = self._clock()
        s = self._sessions.get(session_id)
        if s is None:
            return None
        current = self._accounts().get(s.user.name)
        if now - s.last_seen > IDLE_SECONDS or current != s.user:
            del self._sessions[session_id]
            return None
        s.last_seen = now
        return s

    def logout(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    @staticmethod
    def csrf_ok(session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(session.csrf, token or "")

    def _trim_failures(self) -> None:
        if len(self._failures) > FAILURES_KEPT:
            oldest = sorted(self._failures, key=lambda k: self._failures[k].last)
            for key in oldest[: len(oldest) - FAILURES_KEPT]:
                del self._failures[key]


_DUMMY_HASH = users.hash_password(secrets.token_urlsafe(16))
