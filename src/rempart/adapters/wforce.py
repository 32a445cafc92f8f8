"""The wforce-compatible API, so Dovecot (auth_policy) and OX deployments switch without change.

`POST /?command=X` and `POST /command/X` (GET too, for the read-only commands) with HTTP Basic
auth. Facts from DESIGN.md and the captured Dovecot requests: `allow` answers
`{"status": int, "msg": str, "r_attrs": {}}` (status < 0 reject, 0 allow, > 0 delay seconds);
Dovecot sends `allow` twice for a successful login, so attempts are counted on `report` only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from rempart.adapters.context import WforceContext
from rempart.adapters.fields import flag, ip_field, json_object, login_field, number, text
from rempart.engine.keys import KeyError_, net_keys
from rempart.engine.lists import ListEntry, normalise
from rempart.httpserver import Auth, HTTPError, Request, Response, Router, json_response
from rempart.model import Action, Attempt, Outcome, Protocol
from rempart.ops.guards import check_wide_entry, is_confirmed

_OK = b'{"status":"ok"}'
_ALLOWED = b'{"status":0,"msg":"","r_attrs":{}}'


def attempt_from(data: dict[str, Any], context: WforceContext) -> Attempt:
    """The Attempt of a wforce body; a 400 naming the field for anything malformed."""
    get = data.get
    login, remote = get("login"), get("remote")
    pwhash, protocol = get("pwhash", ""), get("protocol", "")
    device, agent, tls = get("device_id", ""), get("user_agent", ""), get("tls", False)
    attrs = get("attrs")
    # Fast path: what Dovecot sends (all strings, tls a boolean, sane sizes).
    if (
        type(login) is str
        and type(remote) is str
        and type(pwhash) is str
        and type(protocol) is str
        and type(device) is str
        and type(agent) is str
        and type(tls) is bool
        and len(remote) <= 128
        and len(pwhash) <= 128
        and len(protocol) <= 32
        and len(device) <= 1024
        and len(agent) <= 1024
    ):
        try:
            ip = net_keys(remote).ip
        except KeyError_ as exc:
            raise HTTPError(400, f"field 'remote': {exc}") from None
        return Attempt(
            login=context.canonical_login(login),
            ip=ip,
            protocol=Protocol.parse(protocol),
            pwhash=pwhash,
            device_id=device,
            user_agent=agent,
            tls=tls,
            raw_login=login,
            attrs=attrs if isinstance(attrs, dict) else None,
        )
    return Attempt(
        login=login_field(data, "login", context.login_rules),
        ip=ip_field(data, "remote"),
        protocol=Protocol.parse(text(data, "protocol", limit=32)),
        pwhash=text(data, "pwhash", limit=128),
        device_id=text(data, "device_id", limit=1024),
        user_agent=text(data, "user_agent", limit=1024),
        tls=flag(data, "tls"),
        raw_login=data["login"],
        attrs=attrs if isinstance(attrs, dict) else None,
    )


class WforceApi:
    def __init__(self, context: WforceContext) -> None:
        self.context = context
        self.engine = context.engine
        self.step_up_status = context.step_up_status
        self.wide_v4, self.wide_v6 = context.confirm_prefixes
        self.app_passwords = context.app_passwords
        self.commands: dict[str, Callable[[Request], Response | Awaitable[Response]]] = {
            "allow": self.allow,
            "report": self.report,
            "reset": self.reset,
            "ping": self.ping,
            "stats": self.stats,
            "addBLEntry": lambda r: self.add_entry(r, "block"),
            "delBLEntry": lambda r: self.del_entry(r, "block"),
            "getBL": lambda r: self.get_entries("block"),
            "addWLEntry": lambda r: self.add_entry(r, "allow"),
            "delWLEntry": lambda r: self.del_entry(r, "allow"),
            "getWL": lambda r: self.get_entries("allow"),
        }

    def mount(self, router: Router) -> None:
        for method in ("POST", "GET"):
            router.add(method, "/", self.by_query, auth=Auth.API)
            router.add(method, "/command/*", self.by_path, auth=Auth.API)

    def by_query(self, request: Request) -> Response | Awaitable[Response]:
        command = request.query.get("command", "")
        if not command:
            raise HTTPError(404, "no command: use /?command=allow|report|reset|...")
        return self.run(command, request)

    def by_path(self, request: Request) -> Response | Awaitable[Response]:
        return self.run(request.params["rest"].strip("/"), request)

    def run(self, command: str, request: Request) -> Response | Awaitable[Response]:
        handler = self.commands.get(command)
        if handler is None:
            raise HTTPError(404, f"unknown command {command[:64]!r}")
        if request.method == "GET" and command not in ("ping", "stats", "getBL", "getWL"):
            raise HTTPError(405, f"{command} needs POST")
        return handler(request)

    # --- decisions --------------------------------------------------------------------------
    def allow(self, request: Request) -> Response:
        attempt = attempt_from(json_object(request), self.context)
        if self.app_passwords is not None:
            self.app_passwords.mark(attempt, time.time())
        verdict = self.engine.decide(attempt)
        action = verdict.action
        if action is Action.ALLOW:
            if not verdict.reasons:
                return Response(200, _ALLOWED)
            status = 0
        elif action is Action.DELAY:
            status = max(1, math.ceil(verdict.delay_s))
        elif action is Action.DENY:
            status = -1
        else:
            status = self.step_up_status
        return json_response(
            {
                "status": status,
                "msg": verdict.message,
                "r_attrs": {"reasons": ",".join(verdict.codes)} if verdict.reasons else {},
            }
        )

    def report(self, request: Request) -> Response:
        data = json_object(request)
        attempt = attempt_from(data, self.context)
        outcome = Outcome(
            success=flag(data, "success", required=True),
            policy_reject=flag(data, "policy_reject"),
            unknown_login=flag(data, "unknown_login"),
        )
        if self.app_passwords is not None:
            now = time.time()
            used = self.app_passwords.mark(attempt, now)
            if used and outcome.success:
                self.app_passwords.record_use(used, attempt.ip, now)
        self.engine.report(attempt, outcome)
        return Response(200, _OK)

    def reset(self, request: Request) -> Response:
        data = json_object(request)
        login = login_field(data, "login", self.context.login_rules, required=False)
        ip = ip_field(data, "ip", required=False)
        if not login and not ip:
            raise HTTPError(400, "reset needs 'login', 'ip' or both")
        self.engine.reset(login=login, ip=ip)
        return Response(200, _OK)

    def ping(self, request: Request) -> Response:
        return Response(200, _OK)

    def stats(self, request: Request) -> Response:
        return json_response(self.context.stats())

    # --- lists -------------------------------------------------------------------------------
    def _entry_key(self, data: dict[str, Any]) -> tuple[str, str]:
        rules = self.context.login_rules
        login = login_field(data, "login", rules, required=False)
        ip = text(data, "ip", limit=128)
        netmask = text(data, "netmask", limit=128)
        try:
            if login and ip:
                return "ip_login", normalise("ip_login", ip, login)
            if login:
                return "login", login
            if netmask:
                return "netmask", normalise("netmask", netmask)
            if ip:
                if "/" in ip:
                    return "netmask", normalise("netmask", ip)
                return "ip", normalise("ip", ip)
        except KeyError_ as exc:
            raise HTTPError(400, str(exc)) from None
        raise HTTPError(400, "an entry needs 'ip', 'netmask', 'login', or 'ip' and 'login'")

    async def add_entry(self, request: Request, which: str) -> Response:
        data = json_object(request)
        kind, value = self._entry_key(data)
        check_wide_entry(kind, value, is_confirmed(data.get("confirm")), self.wide_v4, self.wide_v6)
        ttl = number(data, "expire_secs", 0.0)
        reason = text(data, "reason", limit=512)
        now = time.time()
        entry = ListEntry(kind, value, now + ttl if ttl else 0.0, reason, now)
        self.engine.add_entry(which, entry, by="api")
        await self.context.commit()
        return Response(200, _OK)

    async def del_entry(self, request: Request, which: str) -> Response:
        kind, value = self._entry_key(json_object(request))
        if self.engine.remove_entry(which, kind, value, by="api") is None:
            raise HTTPError(404, f"no {which}-list entry for {value}")
        await self.context.commit()
        return Response(200, _OK)

    def get_entries(self, which: str) -> Response:
        lst = self.engine.allowlist if which == "allow" else self.engine.blocklist
        groups: dict[str, list[dict[str, Any]]] = {"ips": [], "logins": [], "iplogins": []}
        for entry in lst.entries(time.time()):
            item: dict[str, Any] = {
                "expiration": _iso(entry.expires) if entry.expires else "never",
                "expire_secs": max(0, int(entry.expires - time.time())) if entry.expires else 0,
                "reason": entry.reason,
            }
            if entry.kind in ("ip", "netmask"):
                groups["ips"].append({"ip": entry.value, **item})
            elif entry.kind == "login":
                groups["logins"].append({"login": entry.value, **item})
            else:
                ip, _, login = entry.value.partition("|")
                groups["iplogins"].append({"ip": ip, "login": login, **item})
        key = "wl_entries" if which == "allow" else "bl_entries"
        return json_response({key: groups})


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
