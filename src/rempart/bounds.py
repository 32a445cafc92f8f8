"""The ranges every value from outside must fall in, and the checks that enforce them.

One place for the limits: a duration or TTL is finite and at most `MAX_DURATION_S` (10 years), a
timestamp lies between 1970 and `MAX_TIMESTAMP` (the last second of year 9999, the last one every
formatter can show), a number is finite, a network's prefix length is valid for its family.
Each check raises `OutOfBounds` (a ValueError) naming the field; the HTTP layer
(`adapters/fields.py`) answers it with a 400, the command line with a usage error, and the
configuration loader with a ConfigError. `storable_expiry` is the other side: what the state
holds from before these checks is made showable when it is loaded.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
import re
import time

MAX_DURATION_S = 10 * 365 * 86400.0
MAX_TIMESTAMP = 253402300799.0  # 9999-12-31T23:59:59Z
MAX_NUMBER = 1e15  # finite and exact in a float: any count, size or score an API takes
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class OutOfBounds(ValueError):
    """A value that cannot be honoured; `field` names where it came from."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def number(
    value: object,
    field: str,
    minimum: float = 0.0,
    maximum: float = MAX_NUMBER,
) -> float:
    """A finite number in [minimum, maximum], from a JSON number or its decimal text."""
    if isinstance(value, str):
        text = value
        try:
            value = float(text.strip())
        except ValueError:
            raise OutOfBounds(field, f"{text[:40]!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OutOfBounds(field, "must be a number")
    number_ = float(value) if not isinstance(value, int) or abs(value) < 2**63 else math.inf
    if not math.isfinite(number_):
        raise OutOfBounds(field, "must be a finite number")
    if not minimum <= number_ <= maximum:
        raise OutOfBounds(field, f"must be between {minimum:g} and {maximum:g}")
    return number_


def whole(value: object, field: str, minimum: int, maximum: int) -> int:
    """A whole number in [minimum, maximum], from a JSON integer or its decimal text."""
    if isinstance(value, str):
        text = value.strip()
        if not text.lstrip("-").isdigit() or len(text) > 20:
            raise OutOfBounds(field, f"{value[:40]!r} is not a whole number")
        value = int(text)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise OutOfBounds(field, "must be a whole number")
    if not minimum <= value <= maximum:
        raise OutOfBounds(field, f"must be between {minimum} and {maximum}")
    return value


def duration(value: object, field: str, maximum: float = MAX_DURATION_S) -> float:
    """Seconds, from a number of seconds or text such as "90", "30s", "10m", "2h", "7d", "2w";
    finite, not negative, at most `maximum` (10 years unless said)."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise OutOfBounds(
                field, f"{value[:40]!r} is not a duration (use e.g. 30s, 10m, 2h, 7d or seconds)"
            )
        seconds = float(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise OutOfBounds(field, "must be a duration in seconds or text such as 2h")
    else:
        seconds = float(value) if abs(value) < 2**63 or isinstance(value, float) else math.inf
    if not math.isfinite(seconds) or seconds < 0:
        raise OutOfBounds(field, "must be a finite duration, not negative")
    if seconds > maximum:
        raise OutOfBounds(field, f"must be at most {maximum:g} seconds ({_years(maximum)})")
    return seconds


def timestamp(text: str, field: str, now: float | None = None) -> float:
    """UNIX seconds from UNIX seconds, ISO 8601, or a duration ago ("90m", "2h", "3d", "6h ago");
    0.0 for empty text. Between 1970 and the end of year 9999."""
    text = text.strip()
    if not text:
        return 0.0
    now = time.time() if now is None else now
    ago = text[:-4].rstrip() if text.lower().endswith(" ago") else text  # "6h ago", as in --help
    if ago[-1:].lower() in _UNITS and _DURATION.match(ago):
        return max(0.0, now - duration(ago, field, maximum=now))
    if ago is not text:
        raise OutOfBounds(field, f"{text[:40]!r}: write a duration before 'ago', e.g. '6h ago'")
    if text[-1].lower() in _UNITS and _DURATION.match(text):
        return max(0.0, now - duration(text, field, maximum=now))
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value) or not 0 <= value <= MAX_TIMESTAMP:
            raise OutOfBounds(field, f"{text[:40]!r} is outside 1970 to 9999 in UNIX seconds")
        return value
    try:
        stamp = dt.datetime.fromisoformat(text)
    except ValueError:
        raise OutOfBounds(
            field,
            f"{text[:40]!r} is not a time (use 6h, 6h ago, 2026-11-23T14:00 or UNIX seconds)",
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    value = stamp.timestamp()
    if not 0 <= value <= MAX_TIMESTAMP:
        raise OutOfBounds(field, f"{text[:40]!r} is before 1970")
    return value


def network(text: str, field: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An IP network "a.b.c.d/n" or "x::/n" (host bits allowed, then cleared); the prefix length
    must be valid for the family (0-32, 0-128). An IPv4-mapped IPv6 network becomes IPv4."""
    text = text.strip()
    address, slash, length = text.partition("/")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise OutOfBounds(field, f"{address[:64]!r} is not an IP address") from None
    bits = ip.max_prefixlen
    if slash:
        if not length.isdigit() or len(length) > 3 or not 0 <= int(length) <= bits:
            raise OutOfBounds(
                field, f"prefix length {length[:8]!r} is not valid for IPv{ip.version} (0-{bits})"
            )
        plen = int(length)
    else:
        plen = bits
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ipaddress.ip_network(f"{ip.ipv4_mapped}/{max(0, plen - 96)}", strict=False)
    return ipaddress.ip_network(f"{ip}/{plen}", strict=False)


def choice(value: object, field: str, allowed: tuple[str, ...]) -> str:
    """One of `allowed` (exactly as written there)."""
    if not isinstance(value, str) or value not in allowed:
        shown = repr(value)[:40]
        raise OutOfBounds(field, f"{shown} is not one of: {', '.join(allowed)}")
    return value


def storable_expiry(expires: float) -> float | None:
    """The expiry to keep for a stored entry: itself when it can be shown, else None, meaning
    "permanent" (an absurd expiry was a request for a very long one). Entries written before
    durations were bounded (`expire_secs` of 1e300) are loaded through this."""
    if not math.isfinite(expires) or expires > MAX_TIMESTAMP:
        return None
    return expires if expires >= 0 else 1.0  # before 1970: long expired


def _years(seconds: float) -> str:
    return f"{seconds / (365 * 86400):g} years"
