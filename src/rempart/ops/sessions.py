"""Operator sessions: opaque cookie tokens, per-session CSRF tokens, login throttling.

Sessions live in memory (a restart signs everyone out). A session remembers the fingerprint of
its operator's password hash and ends at its next request once the operator is removed or their
password changes (the `still_valid` check the console passes in). The cookie is HttpOnly, SameSite=Strict,
Path=/ops, and Secure when the request came over TLS (or as configured). Every state-changing
request must carry the session's CSRF token (form field `csrf` or header `X-CSRF-Token`), and
the login form carries a double-submit token bound to a pre-login cookie.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from rempart.httpserver import HTTPError, Request

COOKIE = "rempart_session"
LOGIN_COOKIE = "rempart_login"
MAX_SESSIONS = 1000
ABSOLUTE_SECONDS = 12 * 3600
FAILURE_WINDOW = 900.0
MAX_FAILURES = 10  # per client address and window, then 429


@dataclass(slots=True)
class Session:
    operator: str
    csrf: str
    created: float
    seen: float
    fingerprint: str = ""  # of the operator's password hash when signed in


def cookies(request: Request) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in request.headers.get("cookie", "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            out[name] = value
    return out


def same_token(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


class Sessions:
    def __init__(
        self,
        idle_seconds: float,
        cookie_secure: str = "auto",
        still_valid: Callable[[str, str], bool] | None = None,
    ) -> None:
        self.idle = idle_seconds
        # (operator, fingerprint) → is that operator still there with that password?
        self.still_valid = still_valid
        self.cookie_secure = cookie_secure
        self.live: dict[str, Session] = {}
        self.failures: dict[str, list[float]] = {}

    # --- cookies -------------------------------------------------------------------------------
    def _secure(self, request: Request) -> bool:
        if self.cookie_secure != "auto":
            return self.cookie_secure == "true"
        return request.headers.get("x-forwarded-proto", "").lower() == "https"

    def cookie(self, request: Request, name: str, value: str, max_age: int | None = None) -> str:
        parts = [f"{name}={value}", "Path=/ops", "HttpOnly", "SameSite=Strict"]
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        if self._secure(request):
            parts.append("Secure")
        return "; ".join(parts)

    # --- sessions ------------------------------------------------------------------------------
    def open(
        self, operator: str, now: float | None = None, fingerprint: str = ""
    ) -> tuple[str, Session]:
        now = time.time() if now is None else now
        self._expire(now)
        if len(self.live) >= MAX_SESSIONS:
            oldest = min(self.live, key=lambda t: self.live[t].seen)
            del self.live[oldest]
        token = secrets.token_urlsafe(32)
        session = Session(operator, secrets.token_urlsafe(32), now, now, fingerprint)
        self.live[token] = session
        return token, session

    def close(self, request: Request) -> None:
        self.live.pop(cookies(request).get(COOKIE, ""), None)

    def current(self, request: Request, now: float | None = None) -> Session | None:
        """The live session of the request (refreshing its idle timer), else None."""
        now = time.time() if now is None else now
        token = cookies(request).get(COOKIE, "")
        session = self.live.get(token) if token else None
        if session is None:
            return None
        if now - session.seen > self.idle or now - session.created > ABSOLUTE_SECONDS:
            del self.live[token]
            return None
        if self.still_valid is not None and not self.still_valid(
            session.operator, session.fingerprint
        ):
            self.end_operator(session.operator)
            return None
        session.seen = now
        return session

    def end_operator(self, operator: str) -> int:
        """End every session of `operator`; how many ended."""
        tokens = [t for t, s in self.live.items() if s.operator == operator]
        for token in tokens:
            del self.live[token]
        return len(tokens)

    def had_cookie(self, request: Request) -> bool:
        return bool(cookies(request).get(COOKIE))

    def _expire(self, now: float) -> None:
        dead = [
            t
            for t, s in self.live.items()
            if now - s.seen > self.idle or now - s.created > ABSOLUTE_SECONDS
        ]
        for token in dead:
            del self.live[token]

    # --- CSRF ----------------------------------------------------------------------------------
    @staticmethod
    def check_csrf(request: Request, session: Session, form: dict[str, str]) -> None:
        token = form.get("csrf") or request.headers.get("x-csrf-token", "")
        if not same_token(token, session.csrf):
            raise HTTPError(403, "missing or wrong CSRF token: reload the page and try again")
        check_origin(request)

    # --- login throttling --------------------------------------------------------------------
    def throttled(self, client: str, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        recent = [t for t in self.failures.get(client, ()) if now - t < FAILURE_WINDOW]
        if recent:
            self.failures[client] = recent
        else:
            self.failures.pop(client, None)
        return len(recent) >= MAX_FAILURES

    def failed(self, client: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if len(self.failures) > 10000:
            self.failures.clear()
        self.failures.setdefault(client, []).append(now)


def check_origin(request: Request) -> None:
    """Refuse cross-site posts: an Origin header, when sent, must name this host."""
    origin = request.headers.get("origin", "")
    if not origin or origin == "null":
        return
    host = request.headers.get("host", "")
    if origin.split("://", 1)[-1] != host:
        raise HTTPError(403, "cross-site request refused (Origin does not match Host)")
