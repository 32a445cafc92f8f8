"""One policy request → one answer, from what Rempart already knows of the account.

Unauthenticated mail (no `sasl_username`) is left alone (DUNNO). For an authenticated sender:
an allow-list entry for the account or the client address lets the mail through untouched, as
it does at the login layer; a block-list entry naming the account, the client address (or a
network holding it) or the pair refuses it (DEFER while the entry has an expiry, REJECT when it
is permanent); an account whose current password is known leaked is refused (REJECT) unless
one of its SMTP app passwords signed in from the same address within `app_password_window`; beyond
`recipients_per_hour` recipients, the next ones are deferred. Reads the engine's lists and leak
oracle without changing them, and never blocks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from rempart.adapters.postfix.protocol import answer_line
from rempart.adapters.postfix.rate import RecipientCounter
from rempart.adapters.postfix.settings import PostfixSettings
from rempart.engine.engine import Engine
from rempart.engine.keys import KeyError_, LoginRules, canonical_login, net_keys


class RecentAppPasswords(Protocol):
    """What the decider asks the app-password store (rempart.apppass.store)."""

    def used_recently(
        self, login: str, address: str, scope: str, now: float, within: float
    ) -> bool: ...


class Action(StrEnum):
    """The Postfix access(5) actions the service answers with."""

    DUNNO = "DUNNO"
    REJECT = "REJECT"  # 554 5.7.1 <text>
    DEFER = "DEFER"  # 450 4.7.1 <text>
    DEFER_IF_PERMIT = "DEFER_IF_PERMIT"  # 450 4.7.1 unless a later restriction rejects


@dataclass(frozen=True, slots=True)
class Answer:
    action: Action
    text: str = ""
    code: str = ""  # why: a reason code for the journal and metrics ("" when nothing to say)
    login: str = ""

    @property
    def refused(self) -> bool:
        return self.action is Action.REJECT or self.action is Action.DEFER

    def encode(self) -> bytes:
        if self.action is Action.DEFER or self.action is Action.REJECT:
            # An enhanced status code keeps Postfix from adding its generic one.
            status = "4.7.1" if self.action is Action.DEFER else "5.7.1"
            return answer_line(self.action, f"{status} {self.text}")
        return answer_line(self.action, self.text)


DUNNO = Answer(Action.DUNNO)


def bad_request(reason: str) -> Answer:
    """The answer to a request Rempart cannot judge: defer the mail unless Postfix rejects it."""
    return Answer(Action.DEFER_IF_PERMIT, f"Rempart policy: {reason}", "bad_request")


class Decider:
    """Answers requests for one node; the only writer of its recipient counter."""

    def __init__(
        self,
        engine: Engine,
        login_rules: LoginRules,
        settings: PostfixSettings,
        recipients: RecipientCounter | None = None,
        app_passwords: RecentAppPasswords | None = None,
    ) -> None:
        self.engine = engine
        self.login_rules = login_rules
        self.settings = settings
        self.recipients = recipients or RecipientCounter(settings.max_accounts)
        self.app_passwords = app_passwords

    def _app_password_session(self, login: str, address: str, now: float) -> bool:
        """Postfix does not say which credential the session used: an SMTP app password that
        signed in from this address a moment ago (Dovecot reported it) stands for it."""
        window = self.settings.app_password_window
        store = self.app_passwords
        return bool(window and store and store.used_recently(login, address, "smtp", now, window))

    def answer(self, request: Mapping[str, str], now: float) -> Answer:
        kind = request.get("request")
        if kind != "smtpd_access_policy":
            return bad_request(
                "missing attribute request" if kind is None else f"unknown request {kind[:40]!r}"
            )
        raw = request.get("sasl_username", "").strip()
        if not raw:
            return DUNNO  # not authenticated: not Rempart's to judge here
        try:
            login = canonical_login(raw, self.login_rules)
        except KeyError_ as exc:
            return bad_request(f"sasl_username: {exc}")
        address = request.get("client_address", "")
        try:
            net = net_keys(address)
        except KeyError_:
            reason = "missing attribute client_address" if not address else "bad client_address"
            return bad_request(reason)
        engine, settings = self.engine, self.settings
        given = raw if raw != login else ""  # entries made with wforce's exact_list_logins
        allowlist, blocklist = engine.allowlist, engine.blocklist
        if allowlist.match(net.ip, net.packed, login, now) is not None or (
            given and allowlist.match_login_as_given(net.ip, given, now) is not None
        ):
            return Answer(Action.DUNNO, code="allowlisted", login=login)
        blocked = blocklist.match(net.ip, net.packed, login, now)
        if blocked is None and given:
            blocked = blocklist.match_login_as_given(net.ip, given, now)
        if blocked is not None:
            code, _, how = blocked.reason.partition(": ")  # automatic entries keep their rule
            action = Action.REJECT if blocked.expires == 0 else Action.DEFER
            code = code if how == "automatic" else "blocklisted"
            return Answer(action, settings.blocked_message, code, login)
        if (
            settings.refuse_restricted
            and engine.leaks.account_restricted(login)
            and not self._app_password_session(login, net.ip, now)
        ):
            return Answer(Action.REJECT, settings.restricted_message, "account_restricted", login)
        limit = settings.recipients_per_hour
        if limit and request.get("protocol_state", "").upper() == "RCPT":
            if self.recipients.count(login, now) >= limit:
                return Answer(Action.DEFER, settings.rate_message, "recipient_rate", login)
            self.recipients.add(login, now)
        return Answer(Action.DUNNO, login=login)
