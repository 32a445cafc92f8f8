"""The operator console's routes: sign-in, dashboard, live events, list / posture / notice actions,
journal search, and the public status page. `Console(context, settings).mount(router)`.

Every /ops page except the sign-in form is an `Auth.OPERATOR` route: `require_operator`, the
Router's guard for that level, lets a request through only with a live session and, on POST, the
session's CSRF token. Bad input gets a 4xx page naming the problem and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

from rempart import bounds
from rempart.adapters.fields import choice, duration
from rempart.adapters.sources import TrustedProxies
from rempart.engine.engine import POSTURES
from rempart.engine.keys import KeyError_, canonical_login
from rempart.engine.lists import KINDS, ListEntry, normalise
from rempart.engine.posture import MAX_HOLD_DAYS, MAX_HOLD_SECONDS
from rempart.httpserver import Auth, HTTPError, Request, Response, Router, json_response
from rempart.model import Protocol
from rempart.ops import dashboard, journal_view
from rempart.ops.context import ConsoleContext
from rempart.ops.events import Hub
from rempart.ops.guards import check_wide_entry, client_address, is_confirmed
from rempart.ops.live import LiveStats
from rempart.ops.notices import NoticeError, Notices
from rempart.ops.operators import SINGLE_OPERATOR, Operators
from rempart.ops.sessions import COOKIE, LOGIN_COOKIE, Session, Sessions, cookies, same_token
from rempart.ops.settings import OpsSettings
from rempart.ops.status import StatusPage
from rempart.ops.web import form_of, html_response, redirect, static_file

PROTOCOLS = tuple(p.value for p in Protocol if p is not Protocol.OTHER)
MAX_REASON = 300
HOLD_CHOICES = ("hold", "hand-back")


SCRIPTED = ("/ops/api", "/ops/events")  # answered in JSON, never redirected


def _sign_in_first(request: Request, expired: bool) -> Response:
    """No live session: a redirect to the sign-in form for browsers, a 401 for scripts."""
    if request.method == "GET" and not request.path.startswith(SCRIPTED):
        return redirect("/ops/login" + ("?expired=1" if expired else ""))
    if request.headers.get("content-type", "").startswith("application/x-www-form"):
        return redirect("/ops/login?expired=1")
    raise HTTPError(401, "session expired or missing: sign in again")


def _refusal(request: Request, error: HTTPError) -> Response:
    """An HTTPError as an HTML page (JSON, raised on, for the script endpoints)."""
    if request.path.startswith(SCRIPTED):
        raise error
    return html_response(
        dashboard.error_page(error.status, error.reason), error.status, error.headers
    )


def _html_errors(
    handler: Callable[[Console, Request], Response | Awaitable[Response]],
) -> Callable[[Console, Request], Awaitable[Response]]:
    """Answer a handler's HTTPError as `_refusal` does."""

    @functools.wraps(handler)
    async def wrapper(self: Console, request: Request) -> Response:
        try:
            result = handler(self, request)
            if inspect.isawaitable(result):
                return await result
            return result
        except HTTPError as exc:
            return _refusal(request, exc)

    return wrapper


def _operator(request: Request) -> Session:
    """The session `Console.require_operator` let in."""
    session = request.principal
    if not isinstance(session, Session):
        raise RuntimeError("an operator page was reached without its Auth.OPERATOR guard")
    return session


class Console:
    def __init__(self, context: ConsoleContext, settings: OpsSettings) -> None:
        self.context = context
        self.engine = context.engine
        self.settings = settings
        self.operators = Operators(context.data_dir, context.api_password)
        self.proxies = TrustedProxies(settings.trusted_proxies)
        self.sessions = Sessions(
            settings.session_minutes * 60, settings.cookie_secure, self._operator_unchanged
        )
        self.notices = Notices(context.data_dir, settings.services)
        self.live = LiveStats(context.engine)
        self.hub = Hub(self.live, self.extras)
        self.status = StatusPage(context.status, settings, self.notices)
        if settings.dashboard:  # no dashboard: nothing on the decision path
            context.engine.listeners.append(self.live.listener)

    def mount(self, router: Router) -> None:
        """The routes; `Auth.OPERATOR` ones need `require_operator` as the router's guard."""
        public, operator = Auth.PUBLIC, Auth.OPERATOR
        router.add("GET", "/status", self._public(self.status.html), auth=public)
        router.add("GET", "/status.json", self._public(self.status.json), auth=public)
        router.add("GET", "/ops/static/*", static_file, auth=public)
        if not self.settings.dashboard:
            return
        router.add("GET", "/ops", lambda r: redirect("/ops/"), auth=public)
        router.add("GET", "/ops/login", self.login_form, auth=public)
        router.add("POST", "/ops/login", self.login, auth=public)  # its own sign-in CSRF cookie
        router.add("GET", "/ops/", self.home, auth=operator)
        router.add("POST", "/ops/logout", self.logout, auth=operator)
        router.add("GET", "/ops/events", self.events, auth=operator)
        router.add("GET", "/ops/api/snapshot", self.snapshot, auth=operator)
        router.add("POST", "/ops/lists/add", self.list_add, auth=operator)
        router.add("POST", "/ops/lists/remove", self.list_remove, auth=operator)
        router.add("POST", "/ops/posture", self.posture, auth=operator)
        router.add("POST", "/ops/notices", self.notice, auth=operator)
        router.add("POST", "/ops/notices/withdraw", self.notice_withdraw, auth=operator)
        router.add("GET", "/ops/journal", self.journal, auth=operator)

    def _public(self, handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def wrapped(request: Request) -> Response:
            self._start()
            return handler(request)

        return wrapped

    def _start(self) -> None:
        with contextlib.suppress(RuntimeError):  # no running loop: router built outside serve
            self.hub.ensure_started()

    # --- sessions ------------------------------------------------------------------------------
    def _operator_unchanged(self, operator: str, fingerprint: str) -> bool:
        """Is `operator` still an account with the password they signed in with? (With no
        account, only the API password's single operator exists.)"""
        current = self.operators.fingerprints()
        if not current:
            return operator == SINGLE_OPERATOR and fingerprint == ""
        return current.get(operator) == fingerprint

    def require_operator(self, request: Request) -> Response | None:
        """The Router's guard for `Auth.OPERATOR` routes: a live session (which becomes
        `request.principal`) and, on POST, its CSRF token and a same-site origin."""
        self._start()
        session = self.sessions.current(request)
        if session is None:
            return _sign_in_first(request, expired=self.sessions.had_cookie(request))
        if request.method == "POST":
            try:
                self.sessions.check_csrf(request, session, form_of(request))
            except HTTPError as refused:
                return _refusal(request, refused)
        request.principal = session
        return None

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
        client = client_address(request, self.proxies)
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
        fingerprint = self.operators.fingerprints().get(operator, "")
        token, _ = self.sessions.open(operator, fingerprint=fingerprint)
        return redirect(
            "/ops/",
            {"Set-Cookie": self.sessions.cookie(request, COOKIE, token)},
        )

    @_html_errors
    def logout(self, request: Request) -> Response:
        self.sessions.close(request)
        return redirect("/ops/login", {"Set-Cookie": self.sessions.cookie(request, COOKIE, "", 0)})

    # --- pages and data ------------------------------------------------------------------------
    @_html_errors
    def home(self, request: Request) -> Response:
        session = _operator(request)
        return html_response(dashboard.render(self, session, request.query))

    def extras(self) -> dict[str, Any]:
        """What every live message carries besides the history point."""
        snap = self.engine.snapshot()
        return {
            "tops": self.live.tops(),
            "postures": self.live.postures(),
            "posture_facts": dashboard.posture_facts(self, time.time()),
            "lists": {"block": snap.blocklist_entries, "allow": snap.allowlist_entries},
            "actions": list(self.live.actions)[-10:],
            "totals": self.live.totals(),
        }

    @_html_errors
    def snapshot(self, request: Request) -> Response:
        return json_response({"history": list(self.live.history), **self.extras()})

    @_html_errors
    def events(self, request: Request) -> Response:
        return Response(
            200,
            self.hub.stream(lambda: self.sessions.current(request) is not None),
            "text/event-stream",
            {"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @_html_errors
    async def journal(self, request: Request) -> Response:
        journal = self.context.journal
        query = journal_view.parse_query(request.query, self.context.login_rules)
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
    async def list_add(self, request: Request) -> Response:
        session, form = _operator(request), form_of(request)
        which = choice(form, "list", ("block", "allow"))
        kind, value = _entry_key(form, self.context.login_rules)
        check_wide_entry(
            kind,
            value,
            is_confirmed(form.get("confirm", "")),
            self.settings.confirm_prefix_v4,
            self.settings.confirm_prefix_v6,
        )
        reason = _reason(form)
        ttl = duration(form, "expires")
        now = time.time()
        entry = ListEntry(kind, value, now + ttl if ttl else 0.0, reason, now)
        self.engine.add_entry(which, entry, by=self._by(session))
        await self.context.commit()
        return redirect(f"/ops/?done={which}-added#lists")

    @_html_errors
    async def list_remove(self, request: Request) -> Response:
        session, form = _operator(request), form_of(request)
        which = choice(form, "list", ("block", "allow"))
        kind = choice(form, "kind", KINDS)
        value = _stored_value(kind, form.get("value", "").strip()[:300])
        if self.engine.remove_entry(which, kind, value, by=self._by(session)) is None:
            raise HTTPError(404, f"no {which}-list entry for {value}")
        await self.context.commit()
        return redirect(f"/ops/?done={which}-removed#lists")

    @_html_errors
    async def posture(self, request: Request) -> Response:
        session, form = _operator(request), form_of(request)
        protocol = Protocol(choice(form, "protocol", PROTOCOLS))
        level = choice(form, "level", POSTURES)
        hold = _hold_choice(form)
        ttl = _posture_ttl(form, hold)
        reason = _reason(form)
        try:
            self.engine.set_posture(protocol, level, self._by(session), reason, ttl=ttl, hold=hold)
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        await self.context.commit()
        return redirect("/ops/?done=posture#posture")

    @_html_errors
    async def notice(self, request: Request) -> Response:
        session, form = _operator(request), form_of(request)
        try:
            notice = self.notices.post(
                form.get("service", "").strip(),
                form.get("level", "").strip(),
                form.get("text", ""),
                self._by(session),
            )
        except NoticeError as exc:
            raise HTTPError(400, str(exc)) from None
        self.context.journal_durable(
            "notice_posted",
            {
                "id": notice.id,
                "service": notice.service,
                "level": notice.level,
                "text": notice.text,
                "by": notice.by,
            },
        )
        await self.context.commit()
        return redirect("/ops/?done=notice#notices")

    @_html_errors
    async def notice_withdraw(self, request: Request) -> Response:
        session, form = _operator(request), form_of(request)
        reason = _reason(form)
        try:
            notice = self.notices.withdraw(form.get("id", "").strip()[:64], self._by(session))
        except NoticeError as exc:
            raise HTTPError(400, str(exc)) from None
        self.context.journal_durable(
            "notice_withdrawn",
            {
                "id": notice.id,
                "service": notice.service,
                "text": notice.text,
                "by": self._by(session),
                "reason": reason,
            },
        )
        await self.context.commit()
        return redirect("/ops/?done=notice-withdrawn#notices")


def _hold_choice(form: dict[str, str]) -> bool:
    """The operator's explicit choice: hold the posture (the detector pauses for this protocol)
    or hand the protocol back to the detector. No default, so ending an incident can never
    switch detection off unasked."""
    choice = form.get("hold", "")
    if choice not in HOLD_CHOICES:
        raise HTTPError(
            400,
            "hold: choose 'hold' (keep this level, the detector pauses for this protocol) or "
            "'hand-back' (the detector carries on from this level)",
        )
    return choice == "hold"


def _posture_ttl(form: dict[str, str], hold: bool) -> float:
    """A hold's duration in seconds (0: until changed); only a hold takes one."""
    text = form.get("ttl", "").strip()
    if not text:
        return 0.0
    try:
        ttl = bounds.duration(text[:40], "ttl")
    except bounds.OutOfBounds:
        raise HTTPError(
            400, f"ttl {text[:20]!r}: use e.g. 30m, 2h, 1d, or leave empty (until changed)"
        ) from None
    if not 0 < ttl <= MAX_HOLD_SECONDS:
        raise HTTPError(
            400, f"ttl {text[:20]!r}: a hold lasts more than 0 s and at most {MAX_HOLD_DAYS} days"
        )
    if not hold:
        raise HTTPError(
            400,
            "ttl applies to a hold only: leave ttl empty to hand the protocol back to the detector",
        )
    return ttl


def _reason(form: dict[str, str]) -> str:
    reason = " ".join(form.get("reason", "").split())
    if not reason:
        raise HTTPError(400, "a reason is required: say why, for the journal and your colleagues")
    if len(reason) > MAX_REASON:
        raise HTTPError(400, f"the reason is longer than {MAX_REASON} characters")
    return reason


def _entry_key(form: dict[str, str], rules: Any) -> tuple[str, str]:
    kind = choice(form, "kind", KINDS)
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


def _stored_value(kind: str, value: str) -> str:
    """The canonical value of an entry as the list stores it (what the remove buttons send)."""
    if kind == "login":
        return value
    try:
        if kind == "ip_login":
            ip, _, login = value.partition("|")
            return normalise(kind, ip, login)
        return normalise(kind, value)
    except KeyError_ as exc:
        raise HTTPError(400, f"field 'value': {exc}") from None
