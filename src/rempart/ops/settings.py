"""The console's sections of the configuration: `[ops]` (operator sessions, dashboard) and
`[status]` (the public status page), registered with `rempart.config`.

`OpsSettings.of(settings)` gathers both for the console.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rempart.adapters.sources import TrustedProxies
from rempart.config import Settings, knob, section

DEFAULT_SERVICES = {
    "imap": "Mail (IMAP)",
    "pop3": "Mail (POP3)",
    "smtp": "Sending mail (SMTP)",
    "web": "Website",
    "app": "Mobile apps",
}


def _secure(raw: Any) -> str:
    value = {True: "true", False: "false"}.get(raw, raw) if isinstance(raw, bool) else raw
    if value not in ("auto", "true", "false"):
        raise ValueError(f'"auto", true or false, got {raw!r}')
    return str(value)


def _proxies(raw: Any) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise ValueError(f'a list of networks, e.g. ["10.0.0.0/8"], got {raw!r}')
    TrustedProxies(raw)  # raises ValueError naming the bad network
    return list(raw)


@section("ops")
@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    session_minutes: float = knob(
        30.0, "Idle lifetime of an operator session on the dashboard, minutes.", gt=0
    )
    cookie_secure: str = knob(
        "auto",
        '"auto": Secure cookies when the request came over TLS (X-Forwarded-Proto); or '
        '"true"/"false".',
        parse=_secure,
    )
    dashboard: bool = knob(
        True, "Mount the operator dashboard at /ops/ (the public status page /status is always on)."
    )
    trusted_proxies: list[str] = knob(
        [],
        "Reverse proxies (networks) whose X-Forwarded-For names the client for the sign-in "
        "lockout; from any other peer the socket's address is the client's.",
        parse=_proxies,
    )
    confirm_prefix_v4: int = knob(
        8,
        "A block or allow entry covering an IPv4 network this wide or wider needs confirm.",
        ge=0,
        le=32,
    )
    confirm_prefix_v6: int = knob(
        32,
        "A block or allow entry covering an IPv6 network this wide or wider needs confirm.",
        ge=0,
        le=128,
    )


@section("status")
@dataclass(frozen=True, slots=True)
class StatusSettings:
    title: str = knob("Service status", "Title of the public status page.")
    services: dict[str, str] = knob(
        DEFAULT_SERVICES, 'What the public status page lists, as name = "label".'
    )


@dataclass(frozen=True, slots=True)
class OpsSettings:
    """What the console reads: `[ops]` and `[status]` together."""

    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    status: StatusSettings = field(default_factory=StatusSettings)

    @classmethod
    def of(cls, settings: Settings) -> OpsSettings:
        return cls(settings.section(ConsoleSettings), settings.section(StatusSettings))

    @property
    def session_minutes(self) -> float:
        return self.console.session_minutes

    @property
    def cookie_secure(self) -> str:
        return self.console.cookie_secure

    @property
    def dashboard(self) -> bool:
        return self.console.dashboard

    @property
    def trusted_proxies(self) -> list[str]:
        return self.console.trusted_proxies

    @property
    def confirm_prefix_v4(self) -> int:
        return self.console.confirm_prefix_v4

    @property
    def confirm_prefix_v6(self) -> int:
        return self.console.confirm_prefix_v6

    @property
    def title(self) -> str:
        return self.status.title

    @property
    def services(self) -> dict[str, str]:
        return self.status.services
