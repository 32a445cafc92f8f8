"""Operator and account endpoints of the native API: posture, password changes, password checks.

GET  /v1/posture                              postures, anomaly scores and figures
POST /v1/posture                              {protocol, level, reason, ttl?, hold?}
POST /v1/accounts/{login}/password-changed    lifts an exposed account's restriction
POST /v1/password-check                       {login, password} → leaked? popular? strength
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import unquote

from rempart.adapters.context import OperatorContext
from rempart.adapters.fields import choice, duration, json_object, login_field, text
from rempart.engine.engine import POSTURES
from rempart.engine.keys import KeyError_, canonical_login
from rempart.httpserver import Auth, HTTPError, Request, Response, Router, json_response
from rempart.model import Protocol

PROTOCOLS = tuple(p.value for p in Protocol if p is not Protocol.OTHER)
MAX_PASSWORD = 16384  # characters; strength is scored on the first 72 (see breach.strength)


class OperatorApi:
    def __init__(self, context: OperatorContext) -> None:
        self.context = context
        self.engine = context.engine

    def mount(self, router: Router) -> None:
        router.add("GET", "/v1/posture", self.get_posture, auth=Auth.API)
        router.add("POST", "/v1/posture", self.set_posture, auth=Auth.API)
        router.add("POST", "/v1/accounts/*", self.account_action, auth=Auth.API)
        router.add("POST", "/v1/password-check", self.password_check, auth=Auth.API)

    def posture_document(self) -> dict[str, Any]:
        """Per protocol: level, source, set_by, reason, since, until, held, score, figures (and
        the older `manual` / `manual_until`: held, and the hold's end)."""
        now = time.time()
        out: dict[str, Any] = {}
        for protocol, view in self.engine.snapshot().postures.items():
            doc = view.as_json(now)
            doc["manual"] = doc["held"]
            doc["manual_until"] = doc["until"] if doc["held"] else None
            out[protocol.value] = doc
        return out

    def get_posture(self, request: Request) -> Response:
        return json_response({"posture": self.posture_document()})

    async def set_posture(self, request: Request) -> Response:
        data = json_object(request)
        protocol = choice(_lowered(data, "protocol"), "protocol", PROTOCOLS)
        level = choice(_lowered(data, "level"), "level", POSTURES)
        reason = text(data, "reason", required=True, limit=500).strip()
        by = text(data, "by", limit=100) or "api"
        if not reason:
            raise HTTPError(400, "field 'reason' is required: say why")
        ttl = duration(data, "ttl")
        hold = data.get("hold")
        if hold is not None and not isinstance(hold, bool):
            raise HTTPError(400, "field 'hold' must be true or false")
        try:
            self.engine.set_posture(Protocol(protocol), level, by, reason, ttl=ttl, hold=hold)
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        await self.context.commit()
        return json_response({"posture": self.posture_document()[protocol]})

    def _corpus(self) -> Any:
        if self.context.leaks is None:
            raise HTTPError(404, "no leak corpus on this node")
        return self.context.leaks

    async def account_action(self, request: Request) -> Response:
        raw, _, action = request.params["rest"].rpartition("/")
        if action != "password-changed" or not raw:
            raise HTTPError(404, "use POST /v1/accounts/{login}/password-changed")
        try:
            login = canonical_login(unquote(raw), self.context.login_rules)
        except KeyError_ as exc:
            raise HTTPError(400, str(exc)) from None
        lifted = self._corpus().password_changed(login)
        self.context.journal_durable("password_changed", {"login": login, "lifted": lifted})
        await self.context.commit()
        return json_response({"login": login, "restriction_lifted": lifted})

    def password_check(self, request: Request) -> Response:
        data = json_object(request)
        login = login_field(data, "login", self.context.login_rules)
        password = data.get("password")
        if not isinstance(password, str) or not password or len(password) > MAX_PASSWORD:
            raise HTTPError(
                400, f"field 'password' must be a non-empty string (<= {MAX_PASSWORD} chars)"
            )
        return json_response(self._corpus().password_check(login, password))


def _lowered(data: dict[str, Any], name: str) -> dict[str, Any]:
    """`data` with the text field `name` lower-cased (protocols and levels are case-blind)."""
    value = text(data, name, limit=32)
    return {name: value.lower()} if value else {}
