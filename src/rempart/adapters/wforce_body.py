"""The body of a wforce `allow` or `report` to the `Attempt` and `Outcome` the engine takes.

Compiled with the decision hot path (`rempart.COMPILED_MODULES`): this runs for every request
Dovecot sends. What Dovecot sends (every field a string, `tls` a boolean, sane sizes) takes one
straight path; anything else goes through the field readers of `adapters/fields.py`, which
refuse with a 400 naming the field, compiled or not (the equivalence test sends both kinds).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from rempart.adapters.fields import flag, ip_field, login_field, text
from rempart.engine.keys import KeyError_, LoginRules, net_keys
from rempart.httpserver import HTTPError
from rempart.model import Attempt, Outcome, Protocol


def json_body(body: bytes) -> dict[str, Any]:
    """The JSON object of a request body. Bytes that are not UTF-8 are replaced (U+FFFD) and
    the request judged, as wforce does, instead of refused: Dovecot fails open on a 4xx."""
    if not body:
        raise HTTPError(400, "empty body: a JSON object is expected")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            try:
                data = orjson.loads(body.decode("utf-8", "replace"))
            except orjson.JSONDecodeError as again:
                raise HTTPError(400, f"malformed JSON: {again}") from None
        else:
            raise HTTPError(400, f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HTTPError(400, "the body must be a JSON object")
    return data


def attempt_from(
    data: dict[str, Any], canonical_login: Callable[[str], str], login_rules: LoginRules
) -> Attempt:
    """The Attempt of a wforce body; a 400 naming the field for anything malformed."""
    login, remote = data.get("login"), data.get("remote")
    pwhash, protocol = data.get("pwhash", ""), data.get("protocol", "")
    device, agent, tls = data.get("device_id", ""), data.get("user_agent", ""), data.get("tls")
    attrs = data.get("attrs")
    if (
        isinstance(login, str)
        and isinstance(remote, str)
        and isinstance(pwhash, str)
        and isinstance(protocol, str)
        and isinstance(device, str)
        and isinstance(agent, str)
        and (tls is None or isinstance(tls, bool))
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
            login=canonical_login(login),
            ip=ip,
            protocol=Protocol.parse(protocol),
            pwhash=pwhash,
            device_id=device,
            user_agent=agent,
            tls=tls is True,
            raw_login=login,
            attrs=attrs if isinstance(attrs, dict) else None,
        )
    return Attempt(
        login=login_field(data, "login", login_rules),
        ip=ip_field(data, "remote"),
        protocol=Protocol.parse(text(data, "protocol", limit=32)),
        pwhash=text(data, "pwhash", limit=128),
        device_id=text(data, "device_id", limit=1024),
        user_agent=text(data, "user_agent", limit=1024),
        tls=flag(data, "tls"),
        raw_login=data["login"],
        attrs=attrs if isinstance(attrs, dict) else None,
    )


def _flag(data: dict[str, Any], name: str, required: bool = False) -> bool:
    value = data.get(name)
    if isinstance(value, bool):
        return value
    return flag(data, name, required)  # absent, a string spelling, or a 400 naming the field


def outcome_from(data: dict[str, Any]) -> Outcome:
    """The Outcome of a wforce `report` body (`success` is required)."""
    return Outcome(
        _flag(data, "success", True), _flag(data, "policy_reject"), _flag(data, "unknown_login")
    )
