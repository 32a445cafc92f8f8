"""The operator console's routes: sign-in, dashboard, live events, list / posture / notice actions,
journal search, and the public status page. `mount(router, service)` is the one entry point.

Every /ops page except the sign-in form needs a live session; every POST needs the session's
CSRF token. Bad input gets a 4xx page naming the problem and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from rempart.config import ConfigError
from rempart.engine.engine import POSTURES
from rempart.engine.keys import KeyError_, canonical_login
from rempart.engine.lists import KINDS, ListEntry, normalise
from rempart.engine.policy import parse_duration
from rempart.httpserver import HTTPError, Request, Response, Router, json_response
from rempart.model import Protocol
from rempart.ops import dashboard, journal_view
from rempart.ops.events import Hub
from rempart.ops.live import LiveStats
from rempart.ops.notices import NoticeError, Notices
from rempart.ops.operators import Operators
from rempart.ops.sessions import COOKIE, LOGIN_COOKIE, Session, Sessions, cookies, same_token
from rempart.ops.settings import OpsSettings, ops_settings
from rempart.ops.status import StatusPage
from rempart.ops.web import form_of, html_response, redirect, static_file

if TYPE_CHECKING:
    from rempart.server import Service

PROTOCOLS = tuple(p.value for p in Protocol if p is not Protocol.OTHER)
MAX_REASON = 300


class _SignIn(Exception):
    """No live session: send the browser to the sign-in form."""

    def __init__(self, expired: bool) -> None:
        self.expired = expired


def _html_errors(
    handler: Callable[[Console, Request], Response | Awaitable[Response]],
) -> Callable[[Console, Request], Awaitable[Response]]:
    """Turn HTTPError into an HTML page and a missing session into a redirect or a 401."""

    @functools.wraps(handler)
    async def wrapper(self: Console, request: Request) -> Response:
        try:
            result = handler(self, request)
            if asyncio.iscoroutine(result):
                result = await result
            return result  # type: ignore[return-value]
        except _SignIn as missing:
            if request.method == "GET" and not request.path.startswith(("/ops/api", "/ops/events")):
                return redirect("/ops/login" + ("?expired=1" if missing.expired else ""))
            if request.headers.get("content-type", "").startswith("application/x-www-form"):
                return redirect("/ops/login?expired=1")
            raise HTTPError(401, "session expired or missing: sign in again") from None
        except HTTPError as exc:
            if request.path.startswith(("/ops/api", "/ops/events")):
                raise
            return html_response(
                dashboard.error_page(exc.status, exc.reason), exc.status, exc.headers
            )

    return wrapper


class Console:
    def __init__(self, service: Service, settings: OpsSettings) -> None:
        self.service = service
        self.engine = service.engine
        self.settings = settings
        self.sessions = Sessions(settings.session_minutes * 60, settings.cookie_secure)
        self.operators = Operators(service.data_dir, service.auth.password.decode())
        self.notices = Notices(service.data_dir)
        self.live = LiveStats(service.engine)
        self.hub = Hub(self.live, self.extras)
        self.status = StatusPage(service, settings, self.notices)
        if settings.dashboard:  # no dashboard: nothing on the decision path
            service.engine.listeners.append(self.live.listener)

    def mount(self, router: Router) -> None:
        router.add("GET", "/status", self._public(self.status.html))
        router.add("GET", "/status.json", self._public(self.status.json))
        router.add("GET", "/ops/static/*", static_file)
        if not self.settings.dashboard:
            return
        router.add("GET", "/ops", lambda r: redirect("/ops/"))
        router.add("GET", "/ops/", self.home)
        router.add("GET", "/ops/login", self.login_form)
        router.add("POST", "/ops/login", self.login)
        router.add("POST", "/ops/logout", self.logout)
        router.add("GET", "/ops/events", self.events)
        router.add("GET", "/ops/api/snapshot", self.snapshot)
        router.add("POST", "/ops/lists/add", self.list_add)
        router.add("POST", "/ops/lists/remove", self.list_remove)
        router.add("POST", "/ops/posture", self.posture)
        router.add("POST", "/ops/notices", self.notice)
        router.add("GET", "/ops/journal", self.journal)

    def _public(self, handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def wrapped(request: Request) -> Response:
            self._start()
            return handler(request)

        return wrapped

    def _start(self) -> None:
        with contextlib.suppress(RuntimeError):  # no running loop: router built outside serve
            self.hub.ensure_started()

    # --- sessions ------------------------------------------------------------------------------
    def _session(self, request: Request) -> Session:
        self._start()
        session = self.sessions.current(request)
        if session is None:
            raise _SignIn(self.sessions.had_cookie(request))
        return session

    def _action(self, request: Request) -> tuple[Session, dict[str, str]]:
        session = self._session(request)
        form = form_of(request)
        self.sessions.check_csrf(request, session, form)
        return session, form

    @_html_errors
    def login_form(self, request: Request) -> Response:
        self._start()
        token = cookies(request).get(LOGIN_COOKIE, "")
        if len(token) != 43:
            import secrets

            token = secrets.token_urlsafe(32)
        note = "Your session has expired: sign in again." if request.query.get("expired") else ""
        single = not self.operators.load()
        return html_response(
            dashboard.login_page(token, note, single),
            headers={"Set-Cookie": self.sessions.cookie(request, LOGIN_COOKIE, token, 3600)},
        )

    @_html_errors
    async def login(self, request: Request) -> Response:
        form = form_of(request)
        if not same_token(form.get("csrf", ""), cookies(request).get(LOGIN_COOKIE, "")):
            raise HTTPError(403, "the sign-in form expired or was forged: reload it and try again")
        client = request.client
        if self.sessions.throttled(client):
            raise HTTPError(429, "too many failed sign-ins from your address: wait 15 minutes")
        name = form.get("operator", "").strip().lower()[:64]
        password = form.get("password", "")[:1024]
        loop = asyncio.get_running_loop()
        operator = await loop.run_in_executor(None, self.operators.verify, name, password)
        if operator is None:
            self.sessions.failed(client)
            return html_response(
                dashboard.login_page(
                    cookies(request).get(LOGIN_COOKIE, ""),
                    "Wrong operator name or password.",
                    not self.operators.load(),
                    failed=True,
                ),
                401,
            )
        token, _ = self.sessions.open(operator)
        return redirect(
            "/ops/",
            {"Set-Cookie": self.sessions.cookie(request, COOKIE, token)},
        )

    @_html_errors
    def logout(self, request: Request) -> Response:
        self._action(request)
        self.sessions.close(request)
        return redirect("/ops/login", {"Set-Cookie": self.sessions.cookie(request, COOKIE, "", 0)})

    # --- pages and data ------------------------------------------------------------------------
    @_html_errors
    def home(self, request: Request) -> Response:
        session = self._session(request)
        return html_response(dashboard.render(self, session, request.query))

    def extras(self) -> dict[str, Any]:
        """What every live message carries besides the history point."""
        snap = self.engine.snapshot()
        return {
            "tops": self.live.tops(),
            "postures": self.live.postures(),
            "lists": {"block": snap.blocklist_entries, "allow": snap.allowlist_entries},
            "actions": list(self.live.actions)[-10:],
            "totals": self.live.totals(),
        }

    @_html_errors
    def snapshot(self, request: Request) -> Response:
        self._session(request)
        return json_response({"history": list(self.live.history), **self.extras()})

    @_html_errors
    def events(self, request: Request) -> Response:
        self._session(request)
        return Response(
            200,
            self.hub.stream(lambda: self.sessions.current(request) is not None),
            "text/event-stream",
            {"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @_html_errors
    async def journal(self, request: Request) -> Response:
        self._session(request)
        journal = self.service.journal
        query = journal_view.parse_query(request.query, self.service.settings.logins)
        if journal is None:
            return html_response(
                journal_view.render(
                    query, None, "The journal is disabled ([journal] enabled = false)."
                )
            )
        loop = asyncio.get_running_loop()
        records = await loop.run_in_executor(None, journal_view.search, journal, query)
        return html_response(journal_view.render(query, records, ""))

    # --- actions -------------------------------------------------------------------------------
    def _by(self, session: Session) -> str:
        return f"operator:{session.operator}"

    @_html_errors
    def list_add(self, request: Request) -> Response:
        session, form = self._action(request)
        which = _choice(form, "list", ("block", "allow"))
        kind, value = _entry_key(form, self.service.settings.logins)
        reason = _reason(form)
        expires_in = form.get("expires", "").strip()
        try:
            ttl = parse_duration(expires_in, "expires") if expires_in else 0.0
        except ConfigError:
            raise HTTPError(
                400, f"expiry {expires_in[:20]!r}: use e.g. 30m, 2h, 7d, or leave empty"
            ) from None
        now = time.time()
        entry = ListEntry(kind, value, now + ttl if ttl else 0.0, reason, now)
        self.engine.add_entry(which, entry, by=self._by(session))
        if not self.service.flush():
            raise HTTPError(503, "the entry is active but not yet saved to disk; retry")
        return redirect(f"/ops/?done={which}-added#lists")

    @_html_errors
    def list_remove(self, request: Request) -> Response:
        session, form = self._action(request)
        which = _choice(form, "list", ("block", "allow"))
        kind = _choice(form, "kind", KINDS)
        value = form.get("value", "")[:300]
        if self.engine.remove_entry(which, kind, value, by=self._by(session)) is None:
            raise HTTPError(404, f"no {which}-list entry for {value}")
        self.service.flush()
        return redirect(f"/ops/?done={which}-removed#lists")

    @_html_errors
    def posture(self, request: Request) -> Response:
        session, form = self._action(request)
        protocol = Protocol(_choice(form, "protocol", PROTOCOLS))
        level = _choice(form, "level", POSTURES)
        reason = _reason(form)
        self.engine.set_posture(protocol, level, self._by(session), reason)
        self.service.flush()
        return redirect("/ops/?done=posture#posture")

    @_html_errors
    def notice(self, request: Request) -> Response:
        session, form = self._action(request)
        try:
            self.notices.post(
                form.get("service", "").strip(),
                form.get("level", "").strip(),
                form.get("text", ""),
                self._by(session),
            )
        except NoticeError as exc:
            raise HTTPError(400, str(exc)) from None
        return redirect("/ops/?done=notice#notices")


def _choice(form: dict[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = form.get(name, "")
    if value not in allowed:
        raise HTTPError(400, f"{name} must be one of: {', '.join(allowed)}")
    return value


def _reason(form: dict[str, str]) -> str:
    reason = " ".join(form.get("reason", "").split())
    if not reason:
        raise HTTPError(400, "a reason is required: say why, for the journal and your colleagues")
    if len(reason) > MAX_REASON:
        raise HTTPError(400, f"the reason is longer than {MAX_REASON} characters")
    return reason


def _entry_key(form: dict[str, str], rules: Any) -> tuple[str, str]:
    kind = _choice(form, "kind", KINDS)
    value = form.get("value", "").strip()[:300]
    if not value:
        raise HTTPError(
            400, "the entry needs a value (an IP, a network, a login, or an IP and a login)"
        )
    try:
        if kind == "login":
            return kind, canonical_login(value, rules)
        if kind == "ip_login":
            ip, _, login = value.partition(" ")
            if not login.strip():
                raise HTTPError(
                    400,
                    "an IP+login entry is written 'IP login', e.g. '192.0.2.7 alice@example.org'",
                )
            return kind, normalise("ip_login", ip, canonical_login(login.strip(), rules))
        if kind == "ip" and "/" in value:
            kind = "netmask"
        return kind, normalise(kind, value)
    except KeyError_ as exc:
        raise HTTPError(400, str(exc)) from None


def mount(router: Router, service: Service) -> Console:
    """Mount the status page and, unless disabled, the operator console on `router`."""
    console: Console | None = getattr(service, "ops_console", None)
    if console is None:
        try:
            settings = ops_settings(service.settings.raw)
        except ConfigError as exc:
            raise SystemExit(f"configuration: {exc}") from None
        console = Console(service, settings)
        service.ops_console = console  # type: ignore[attr-defined]
    console.mount(router)
    return console
