"""The validation layer at the HTTP boundary: typed readers of request fields with bounds.

Every handler of every API (wforce-compatible, native, operator, nginx) and of the console reads
its values through these, from a JSON body, a query string or a form alike (a mapping of names to
values), so a value that cannot be honoured is a 400 naming the field, never a 500 later. The
limits themselves live in `rempart.bounds`, shared with the command line and the configuration.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from rempart import bounds
from rempart.engine.keys import MAX_LOGIN_BYTES, KeyError_, LoginRules, canonical_login, net_keys
from rempart.httpserver import HTTPError, Request

MAX_FIELD_CHARS = 4096
Fields = Mapping[str, Any]


def json_object(request: Request) -> dict[str, Any]:
    data = request.json()
    if not isinstance(data, dict):
        raise HTTPError(400, "the body must be a JSON object")
    return data


def text(data: Fields, name: str, required: bool = False, limit: int = MAX_FIELD_CHARS) -> str:
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


def flag(data: Fields, name: str, required: bool = False) -> bool:
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


def refused(error: bounds.OutOfBounds) -> HTTPError:
    """The 400 of a value out of bounds, naming the field."""
    return HTTPError(400, f"field {error.field!r}: {error.problem}")


def _given(data: Fields, name: str) -> bool:
    value = data.get(name)
    return value is not None and value != ""


def number(
    data: Fields,
    name: str,
    default: float = 0.0,
    minimum: float = 0.0,
    maximum: float = bounds.MAX_NUMBER,
) -> float:
    """A finite number in [minimum, maximum]; `default` when absent."""
    if not _given(data, name):
        return default
    try:
        return bounds.number(data[name], name, minimum, maximum)
    except bounds.OutOfBounds as exc:
        raise refused(exc) from None


def whole(data: Fields, name: str, default: int, minimum: int, maximum: int) -> int:
    """A whole number in [minimum, maximum]; `default` when absent."""
    if not _given(data, name):
        return default
    try:
        return bounds.whole(data[name], name, minimum, maximum)
    except bounds.OutOfBounds as exc:
        raise refused(exc) from None


def duration(
    data: Fields, name: str, default: float = 0.0, maximum: float = bounds.MAX_DURATION_S
) -> float:
    """Seconds (a number, or text such as 30m, 2h, 7d), at most 10 years unless said;
    `default` when absent."""
    if not _given(data, name):
        return default
    try:
        return bounds.duration(data[name], name, maximum)
    except bounds.OutOfBounds as exc:
        raise refused(exc) from None


def timestamp(data: Fields, name: str, now: float | None = None) -> float:
    """UNIX seconds (ISO 8601, UNIX seconds or a duration ago) between 1970 and 9999; 0.0 when
    absent."""
    if not _given(data, name):
        return 0.0
    value = data[name]
    if not isinstance(value, str):
        value = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else ""
        if not value:
            raise HTTPError(400, f"field {name!r} must be a time")
    try:
        return bounds.timestamp(value, name, now)
    except bounds.OutOfBounds as exc:
        raise refused(exc) from None


def choice(data: Fields, name: str, allowed: tuple[str, ...], default: str | None = None) -> str:
    """One of `allowed`; `default` when absent (required when there is none)."""
    if not _given(data, name):
        if default is None:
            raise HTTPError(400, f"missing field {name!r} (one of: {', '.join(allowed)})")
        return default
    try:
        return bounds.choice(data[name], name, allowed)
    except bounds.OutOfBounds as exc:
        raise refused(exc) from None


def network_field(
    data: Fields, name: str, required: bool = False
) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """An IP network with a prefix length valid for its family (a bare address is its /32 or
    /128); None when absent and not required."""
    raw = text(data, name, required, limit=128)
    if not raw:
        return None
    try:
        return bounds.network(raw, name)
    except bounds.OutOfBounds as exc:
        raise refused(exc) from None


def exclusive(data: Fields, *names: str) -> None:
    """At most one of `names` may be given: refuse an ambiguous request."""
    given = [name for name in names if _given(data, name)]
    if len(given) > 1:
        raise HTTPError(
            400, f"fields {' and '.join(repr(n) for n in given)} are exclusive: send one"
        )


def login_field(data: Fields, name: str, rules: LoginRules, required: bool = True) -> str:
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


def ip_field(data: Fields, name: str, required: bool = True) -> str:
    raw = text(data, name, required, limit=128)
    if not raw and not required:
        return ""
    try:
        return net_keys(raw).ip
    except KeyError_ as exc:
        raise HTTPError(400, f"field {name!r}: {exc}") from None
