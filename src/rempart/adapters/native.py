"""The native JSON API for web and app login backends: `/v1/decide` and `/v1/report`.

A plaintext password, when sent, is fingerprinted at once (keyed hash, plus the leak corpus's
pair fingerprint) and dropped: it is never stored, logged or journaled.
"""

from __future__ import annotations

from typing import Any

from rempart.adapters.context import NativeContext
from rempart.adapters.fields import flag, ip_field, json_object, login_field, text
from rempart.httpserver import Auth, HTTPError, Request, Response, Router, json_response
from rempart.model import Action, Attempt, Outcome, Protocol, Verdict


def verdict_body(verdict: Verdict) -> dict[str, Any]:
    """The answer; `notice` is what to show a user who is let in (e.g. an exposed password in
    its grace period), "" when there is nothing to say."""
    allowed = verdict.action is Action.ALLOW or verdict.action is Action.DELAY
    return {
        "verdict": verdict.action.label,
        "delay_s": verdict.delay_s,
        "reasons": [{"code": r.code, "message": r.message} for r in verdict.reasons],
        "notice": verdict.message if allowed else "",
    }


class NativeApi:
    def __init__(self, context: NativeContext) -> None:
        self.context = context
        self.engine = context.engine

    def mount(self, router: Router) -> None:
        router.add("POST", "/v1/decide", self.decide, auth=Auth.API)
        router.add("POST", "/v1/report", self.report, auth=Auth.API)
        router.add("POST", "/v1/explain", self.explain, auth=Auth.API)

    def attempt(self, data: dict[str, Any]) -> Attempt:
        login = login_field(data, "login", self.context.login_rules)
        protocol_name = text(data, "protocol", limit=32) or "web"
        protocol = Protocol.parse(protocol_name)
        if protocol is Protocol.OTHER and protocol_name.lower() != "other":
            raise HTTPError(400, f"field 'protocol': unknown protocol {protocol_name[:32]!r}")
        attempt = Attempt(
            login=login,
            ip=ip_field(data, "ip"),
            protocol=protocol,
            pwhash=text(data, "pwhash", limit=128),
            device_id=text(data, "device_id", limit=1024),
            user_agent=text(data, "user_agent", limit=1024),
            tls=flag(data, "tls"),
            raw_login=data["login"],
        )
        password = data.get("password")
        if password is not None:
            if not isinstance(password, str) or len(password) > 1024:
                raise HTTPError(400, "field 'password' must be a string of at most 1024 chars")
            if attempt.pwhash:
                raise HTTPError(400, "send 'pwhash' or 'password', not both")
            self.context.fingerprint_password(attempt, password)
        return attempt

    def decide(self, request: Request) -> Response:
        verdict = self.engine.decide(self.attempt(json_object(request)))
        return json_response(verdict_body(verdict))

    def report(self, request: Request) -> Response:
        data = json_object(request)
        attempt = self.attempt(data)
        outcome = Outcome(
            success=flag(data, "success", required=True),
            policy_reject=flag(data, "policy_reject"),
            unknown_login=flag(data, "unknown_login"),
        )
        self.engine.report(attempt, outcome)
        return json_response({"status": "ok"})

    def explain(self, request: Request) -> Response:
        """Which signals and rules an attempt would meet now, without counting it."""
        return json_response(self.engine.explain(self.attempt(json_object(request))))
