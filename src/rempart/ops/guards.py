"""Guards on what operators send: the real client behind a trusted reverse proxy, list entries
that cover a huge part of the Internet, and the strength of the API password.

- `client_address`: the console counts failed sign-ins per client. Behind a reverse proxy every
  request comes from the proxy, so one attacker would lock out every operator; the
  X-Forwarded-For header is believed only from the networks in `[ops] trusted_proxies`
  (default none), walking it from the right past trusted hops.
- `check_wide_entry`: a block or allow of 0.0.0.0/0, ::/0 or any network at least as wide as
  `[ops] confirm_prefix_v4` / `confirm_prefix_v6` (default /8 and /32) needs `confirm`.
- `check_api_password`: a short or repetitive API password is refused at start.
"""

from __future__ import annotations

import ipaddress

from rempart.adapters.sources import TrustedProxies
from rempart.httpserver import HTTPError, Request

MIN_API_PASSWORD = 16
MIN_DISTINCT_CHARS = 6
CONFIRM_WORDS = ("1", "true", "yes", "on", "confirm")


def client_address(request: Request, proxies: TrustedProxies) -> str:
    """The address to hold a sign-in against: the peer, or, when the peer is a trusted proxy,
    the right-most X-Forwarded-For hop that is not itself a trusted proxy (the peer when the
    proxy sent none or garbage)."""
    found = proxies.client_address(request.client, request.headers, "x-forwarded-for")
    return found or request.client


def is_confirmed(value: object) -> bool:
    """A form field or JSON value that says yes."""
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() in CONFIRM_WORDS


def check_wide_entry(
    kind: str, value: str, confirmed: bool, v4_prefix: int, v6_prefix: int
) -> None:
    """HTTPError 400 when a network entry covers a /v4_prefix (IPv4) or /v6_prefix (IPv6) or
    more and the caller did not confirm it."""
    if kind not in ("netmask", "ip") or "/" not in value or confirmed:
        return
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return
    limit = v4_prefix if net.version == 4 else v6_prefix
    if net.prefixlen <= limit:
        raise HTTPError(
            400,
            f"field 'confirm': {net} covers {net.num_addresses:,} addresses (a /{limit} or "
            f"wider); send confirm=true to apply it anyway",
        )


def check_api_password(password: str, origin: str) -> None:
    """SystemExit with a clear message when the API password is too weak to guard the API."""
    if len(password) < MIN_API_PASSWORD:
        raise SystemExit(
            f"{origin}: the API password has {len(password)} characters; use at least "
            f"{MIN_API_PASSWORD} (or remove it to have a strong one generated)"
        )
    if len(set(password)) < MIN_DISTINCT_CHARS:
        raise SystemExit(
            f"{origin}: the API password repeats too few characters "
            f"({len(set(password))} distinct); use a random one of {MIN_API_PASSWORD}+ characters"
        )
