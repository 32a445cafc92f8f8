"""The console's sections of the configuration: `[ops]` (operator sessions, dashboard) and
`[status]` (the public status page), registered with `rempart.config`.

`OpsSettings.of(settings)` gathers both for the console.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    def title(self) -> str:
        return self.status.title

    @property
    def services(self) -> dict[str, str]:
        return self.status.services
