"""The console's settings, read from the `[ops]` and `[status]` tables passed through by config.

`[ops]`: `session_minutes` (idle lifetime of an operator session, default 30),
`cookie_secure` ("auto": Secure when the request came over TLS per `X-Forwarded-Proto`,
or true / false), `dashboard` (true: mount the console; the public status page is always on),
`trusted_proxies` (networks of reverse proxies whose X-Forwarded-For names the client for the
sign-in lockout; default none), `confirm_prefix_v4` / `confirm_prefix_v6` (a list entry covering
a network this wide or wider needs `confirm`; default 8 and 32).
`[status]`: `title` of the public page and `services`, a table `name = "label"` of what the
page lists (default: the mail protocols, the website and the apps).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rempart.adapters.sources import TrustedProxies
from rempart.config import ConfigError

DEFAULT_SERVICES = {
    "imap": "Mail (IMAP)",
    "pop3": "Mail (POP3)",
    "smtp": "Sending mail (SMTP)",
    "web": "Website",
    "app": "Mobile apps",
}


@dataclass(frozen=True, slots=True)
class OpsSettings:
    session_minutes: float = 30.0
    cookie_secure: str = "auto"  # "auto" | "true" | "false"
    dashboard: bool = True
    title: str = "Service status"
    services: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SERVICES))
    # Reverse proxies whose X-Forwarded-For is believed (the console's sign-in lockout).
    trusted_proxies: list[str] = field(default_factory=list)
    # A list entry covering a network this wide or wider needs an explicit confirmation.
    confirm_prefix_v4: int = 8
    confirm_prefix_v6: int = 32


def ops_settings(raw: dict[str, Any]) -> OpsSettings:
    """Typed console settings, or ConfigError naming the bad key."""
    ops = raw.get("ops", {}) or {}
    status = raw.get("status", {}) or {}
    if not isinstance(ops, dict) or not isinstance(status, dict):
        raise ConfigError("[ops] and [status] must be tables")
    known_ops = {
        "session_minutes",
        "cookie_secure",
        "dashboard",
        "trusted_proxies",
        "confirm_prefix_v4",
        "confirm_prefix_v6",
    }
    known_status = {"title", "services"}
    for table, known, name in ((ops, known_ops, "ops"), (status, known_status, "status")):
        for key in table:
            if key not in known:
                raise ConfigError(f"[{name}] unknown key {key!r}")
    minutes = ops.get("session_minutes", 30.0)
    if isinstance(minutes, bool) or not isinstance(minutes, int | float) or minutes <= 0:
        raise ConfigError(f"[ops] session_minutes: a positive number, got {minutes!r}")
    secure = ops.get("cookie_secure", "auto")
    secure = {True: "true", False: "false"}.get(secure, secure)  # type: ignore[call-overload]
    if secure not in ("auto", "true", "false"):
        raise ConfigError(f'[ops] cookie_secure: "auto", true or false, got {secure!r}')
    dashboard = ops.get("dashboard", True)
    if not isinstance(dashboard, bool):
        raise ConfigError(f"[ops] dashboard: true or false, got {dashboard!r}")
    title = status.get("title", "Service status")
    services = status.get("services", DEFAULT_SERVICES)
    if not isinstance(title, str) or not isinstance(services, dict):
        raise ConfigError("[status] title must be a string and services a table")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in services.items()):
        raise ConfigError('[status.services] entries are name = "label" strings')
    proxies = ops.get("trusted_proxies", [])
    if not isinstance(proxies, list) or not all(isinstance(p, str) for p in proxies):
        raise ConfigError('[ops] trusted_proxies: a list of networks, e.g. ["10.0.0.0/8"]')
    try:
        TrustedProxies(proxies)
    except ValueError as exc:
        raise ConfigError(f"[ops] trusted_proxies: {exc}") from None
    prefixes = []
    for key, default, top in (("confirm_prefix_v4", 8, 32), ("confirm_prefix_v6", 32, 128)):
        value = ops.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
            raise ConfigError(f"[ops] {key}: a prefix length from 0 to {top}, got {value!r}")
        prefixes.append(value)
    return OpsSettings(
        float(minutes), secure, dashboard, title, dict(services), list(proxies), *prefixes
    )
