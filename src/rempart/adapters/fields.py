"""Validation of JSON request bodies shared by the HTTP adapters: typed fields, clear 4xx reasons."""

from __future__ import annotations

from typing import Any

from rempart.engine.keys import MAX_LOGIN_BYTES, KeyError_, LoginRules, canonical_login, net_keys
from rempart.httpserver import HTTPError, Request

MAX_FIELD_CHARS = 4096


def json_object(request: Request) -> dict[str, Any]:
    data = request.json()
    if not isinstance(data, dict):
        raise HTTPError(400, "the body must be a JSON object")
    return data


def text(
    data: dict[str, Any], name: str, required: bool = False, limit: int = MAX_FIELD_CHARS
) -> str:
    value = data.get(name)
    if value is None:
        if required:
            raise HTTPError(400, f"missing field {name!r}")
        return ""
    if not isinstance(value, str):
        raise HTTPError(400, f"field {name!r} must be a string")
    if len(value) > limit:
        raise HTTPError(400, f"field {name!r} longer than {limit} characters")
    return value


def flag(data: dict[str, Any], name: str, required: bool = False) -> bool:
    value = data.get(name)
    if value is None:
        if required:
            raise HTTPError(400, f"missing field {name!r}")
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    raise HTTPError(400, f"field {name!r} must be a boolean")


def number(data: dict[str, Any], name: str, default: float = 0.0, minimum: float = 0.0) -> float:
    value = data.get(name, default)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise HTTPError(400, f"field {name!r} must be a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise HTTPError(400, f"field {name!r} must be a number")
    if value < minimum:
        raise HTTPError(400, f"field {name!r} must be >= {minimum:g}")
    return float(value)


def login_field(data: dict[str, Any], name: str, rules: LoginRules, required: bool = True) -> str:
    raw = text(data, name, required, limit=4 * MAX_LOGIN_BYTES)
    if not raw and not required:
        return ""
    try:
        login = canonical_login(raw, rules)
    except KeyError_ as exc:
        raise HTTPError(400, f"field {name!r}: {exc}") from None
    if not login:
        raise HTTPError(400, f"field {name!r} is empty")
    return login


def ip_field(data: dict[str, Any], name: str, required: bool = True) -> str:
    raw = text(data, name, required, limit=128)
    if not raw and not required:
        return ""
    try:
        return net_keys(raw).ip
    except KeyError_ as exc:
        raise HTTPError(400, f"field {name!r}: {exc}") from None
