"""The console's settings, read from the `[ops]` and `[status]` tables passed through by config.

`[ops]`: `session_minutes` (idle lifetime of an operator session, default 30),
`cookie_secure` ("auto": Secure when the request came over TLS per `X-Forwarded-Proto`,
or true / false), `dashboard` (true: mount the console; the public status page is always on).
`[status]`: `title` of the public page and `services`, a table `name = "label"` of what the
page lists (default: the mail protocols, the website and the apps).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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


def ops_settings(raw: dict[str, Any]) -> OpsSettings:
    """Typed console settings, or ConfigError naming the bad key."""
    ops = raw.get("ops", {}) or {}
    status = raw.get("status", {}) or {}
    if not isinstance(ops, dict) or not isinstance(status, dict):
        raise ConfigError("[ops] and [status] must be tables")
    known_ops = {"session_minutes", "cookie_secure", "dashboard"}
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
    return OpsSettings(float(minutes), secure, dashboard, title, dict(services))
