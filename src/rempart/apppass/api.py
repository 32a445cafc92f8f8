"""The app-password API (API auth level: the website backend calls it after the user signed in
with their second factor; operators reach it through `rempart app-passwords`).

GET    /v1/app-passwords                             counts (accounts, active, expired, opted in)
POST   /v1/app-passwords/{login}                     {label, scopes?, expires_in?} → the secret, once
GET    /v1/app-passwords/{login}                     label, scopes, created, last used, last network
DELETE /v1/app-passwords/{login}                     revoke all
DELETE /v1/app-passwords/{login}/{id}                revoke one
PUT    /v1/app-passwords/{login}/mail-apps-only      {enabled}: main password only on familiar networks
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from rempart.adapters.fields import duration, flag, json_object
from rempart.apppass import secret as secret_mod
from rempart.apppass.settings import SCOPES, AppPasswordSettings
from rempart.apppass.store import AppPasswordStore, LimitReached
from rempart.config import LoginRules
from rempart.engine.keys import KeyError_, canonical_login
from rempart.httpserver import Auth, HTTPError, Request, Response, Router, json_response

PREFIX = "/v1/app-passwords"


@dataclass(frozen=True, slots=True)
class AppPasswordContext:
    store: AppPasswordStore
    settings: AppPasswordSettings
    login_rules: LoginRules
    commit: Callable[[], Awaitable[None]]
    journal_durable: Callable[[str, dict[str, Any]], None]
    known_account: Callable[[str], bool]


def check_label(value: object, limit: int) -> str:
    if not isinstance(value, str):
        raise HTTPError(400, "field 'label' must be a string (the device or app name)")
    label = value.strip()
    if not label:
        raise HTTPError(400, "field 'label' is empty: name the device or app")
    if len(label) > limit:
        raise HTTPError(400, f"field 'label' longer than {limit} characters")
    if any(unicodedata.category(c).startswith("C") for c in label):
        raise HTTPError(400, "field 'label' contains control or invisible characters")
    return label


def check_scopes(value: object, default: tuple[str, ...]) -> tuple[str, ...]:
    if value is None:
        return default
    if not isinstance(value, list) or not value:
        raise HTTPError(400, f"field 'scopes' must be a non-empty list of {', '.join(SCOPES)}")
    for item in value:
        if item not in SCOPES:
            shown = item if isinstance(item, str) else repr(item)
            raise HTTPError(
                400, f"field 'scopes': unknown scope {shown[:32]!r} (one of {', '.join(SCOPES)})"
            )
    return tuple(s for s in SCOPES if s in value)


class AppPasswordApi:
    def __init__(self, context: AppPasswordContext) -> None:
        self.context = context
        self.store = context.store

    def mount(self, router: Router) -> None:
        router.add("GET", PREFIX, self.counts, auth=Auth.API)
        for method in ("GET", "POST", "PUT", "DELETE"):
            router.add(method, PREFIX + "/*", self.dispatch, auth=Auth.API)

    def counts(self, request: Request) -> Response:
        return json_response(self.store.counts(time.time()))

    def _login(self, raw: str) -> str:
        try:
            login = canonical_login(unquote(raw), self.context.login_rules)
        except KeyError_ as exc:
            raise HTTPError(400, f"login: {exc}") from None
        if not login:
            raise HTTPError(400, "login is empty")
        return login

    def dispatch(self, request: Request) -> Response | Awaitable[Response]:
        parts = request.params["rest"].strip("/").split("/")
        if not parts[0] or len(parts) > 2:
            raise HTTPError(404, f"use {PREFIX}/{{login}}[/{{id}} | /mail-apps-only]")
        login = self._login(parts[0])
        method = request.method
        if len(parts) == 1:
            if method == "GET":
                return self.list(login)
            if method == "POST":
                return self.create(login, request)
            if method == "DELETE":
                return self.revoke(login, None)
            raise HTTPError(405, f"{method} is not allowed on {PREFIX}/{{login}}")
        if parts[1] == "mail-apps-only":
            if method != "PUT":
                raise HTTPError(405, 'use PUT with {"enabled": true|false}')
            return self.mail_apps_only(login, request)
        if method != "DELETE":
            raise HTTPError(405, f"use DELETE {PREFIX}/{{login}}/{{id}} to revoke")
        return self.revoke(login, parts[1])

    def list(self, login: str) -> Response:
        now = time.time()
        return json_response(
            {
                "login": login,
                "mail_apps_only": self.store.mail_apps_only(login),
                "app_passwords": [i.public(now) for i in self.store.list(login)],
            }
        )

    async def create(self, login: str, request: Request) -> Response:
        data = json_object(request)
        settings = self.context.settings
        unknown = sorted(set(data) - {"label", "scopes", "expires_in"})
        if unknown:
            raise HTTPError(400, f"unknown field {unknown[0][:32]!r} (label, scopes, expires_in)")
        if settings.require_known_account and not self.context.known_account(login):
            raise HTTPError(404, f"unknown login {login[:128]!r}: it has never signed in")
        label = check_label(data.get("label"), settings.max_label_chars)
        scopes = check_scopes(data.get("scopes"), settings.default_scopes)
        now = time.time()
        expires = 0.0
        if data.get("expires_in") not in (None, 0, "0", ""):
            lifetime = duration(data, "expires_in")
            limit = settings.max_lifetime_days * 86400
            if limit and lifetime > limit:
                raise HTTPError(
                    400, f"field 'expires_in' longer than {settings.max_lifetime_days} days"
                )
            expires = now + lifetime
        elif settings.max_lifetime_days:
            expires = now + settings.max_lifetime_days * 86400
        try:
            item, secret = await self.store.create(login, label, scopes, expires, now)
        except LimitReached as exc:
            raise HTTPError(409, str(exc)) from None
        self.context.journal_durable(
            "app_password_created",
            {"login": login, "id": item.id, "label": label, "scopes": list(scopes)},
        )
        await self.context.commit()
        return json_response(
            {
                **item.public(now),
                "login": login,
                "secret": secret,
                "note": "Shown once: type it as shown, dashes included, in the mail app's "
                f"password field. {secret_mod.GROUPS} groups of {secret_mod.GROUP_CHARS}.",
            },
            status=201,
        )

    async def revoke(self, login: str, app_id: str | None) -> Response:
        gone = await self.store.revoke(login, None if app_id is None else [app_id])
        if not gone:
            if app_id is None:
                raise HTTPError(404, f"{login} has no app passwords")
            raise HTTPError(404, f"no app password {app_id[:64]!r} for {login}")
        self.context.journal_durable(
            "app_password_revoked", {"login": login, "ids": [g.id for g in gone]}
        )
        await self.context.commit()
        return json_response({"login": login, "revoked": [g.id for g in gone]})

    async def mail_apps_only(self, login: str, request: Request) -> Response:
        data = json_object(request)
        if "enabled" not in data:
            raise HTTPError(400, "missing field 'enabled'")
        enabled = flag(data, "enabled")
        await self.store.set_mail_apps_only(login, enabled)
        self.context.journal_durable("mail_apps_only", {"login": login, "enabled": enabled})
        await self.context.commit()
        return json_response({"login": login, "mail_apps_only": enabled})
