"""The public status page (`/status`, `/status.json`): what works, per service, in plain words.

No login, no JavaScript, readable on a phone. Each service's state is the worst of: its
protocol's posture (told as what users must do), the shedding controller's health when that
feature is present, and the latest operator notice. Nothing internal (counts, addresses,
reasons) is ever shown here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rempart.httpserver import Request, Response, json_response
from rempart.ops.notices import LEVELS, Notices
from rempart.ops.settings import OpsSettings
from rempart.ops.web import h, html_response, page, when

if TYPE_CHECKING:
    from rempart.server import Service

SAFETY = (
    "We never send links to reset your password. If a message asks you to click a link to "
    "sign in or reset your password, ignore it and type our address in your browser yourself."
)
MAIL = ("imap", "pop3", "smtp")
POSTURE_TEXT = {
    "guarded": ("up", "extra checks on sign-ins from unusual places"),
    "strict": ("restricted", "new devices must first sign in on the website"),
    "closed": ("down", "sign-in is paused for now; devices already signed in keep working"),
}
WEB_POSTURE_TEXT = {
    "guarded": ("up", "extra checks on sign-ins from unusual places"),
    "strict": ("restricted", "sign-ins from new devices need an extra verification step"),
    "closed": ("down", "sign-in is paused for now"),
}
LEVEL_WORDS = {
    "up": "up",
    "restricted": "up, with restrictions",
    "degraded": "degraded",
    "down": "down",
}


def _shed_health(service: Service) -> dict[str, str]:
    """The shedding controller's per-service health when that feature is wired in."""
    provider: Callable[[], dict[str, Any]] | None = getattr(service, "shed_public_status", None)
    if provider is None:
        return {}
    try:
        data = provider()
    except Exception:  # the status page must render whatever a provider does
        return {}
    services = data.get("services", {}) if isinstance(data, dict) else {}
    return {str(k): str(v) for k, v in services.items() if v in LEVELS}


def status_model(service: Service, settings: OpsSettings, notices: Notices) -> dict[str, Any]:
    engine = service.engine
    current = notices.current()
    shed = _shed_health(service)
    names = list(settings.services)
    names += [s for s in current if s not in settings.services]
    services: dict[str, Any] = {}
    levels = engine.snapshot().levels()
    for name in names:
        level, details = "up", []
        posture = levels.get(name)
        if posture in POSTURE_TEXT:
            table = POSTURE_TEXT if name in MAIL or name == "app" else WEB_POSTURE_TEXT
            level, text = table[posture]
            details.append(text)
        health = shed.get(name)
        if health and LEVELS.index(health) > LEVELS.index(level):
            level = health
            details.append("some features are slower or unavailable while load is high")
        notice = current.get(name)
        if notice is not None:
            if LEVELS.index(notice.level) > LEVELS.index(level):
                level = notice.level
            details.append(notice.text)
        services[name] = {
            "label": settings.services.get(name, name),
            "level": level,
            "summary": LEVEL_WORDS[level],
            "details": details,
        }
    history = [
        {"t": n.t, "service": n.service, "level": n.level, "text": n.text}
        for n in reversed(notices.all()[-50:])
        if n.t > time.time() - 30 * 86400
    ]
    return {
        "title": settings.title,
        "services": services,
        "history": history,
        "updated_at": time.time(),
        "advice": SAFETY,
    }


def render(model: dict[str, Any]) -> str:
    rows = []
    for name, svc in model["services"].items():
        details = "".join(f"<li>{h(d)}</li>" for d in svc["details"])
        rows.append(
            f'<li class="svc lvl-{h(svc["level"])}" id="svc-{h(name)}">'
            f'<span class="dot" aria-hidden="true"></span>'
            f'<span class="name">{h(svc["label"])}</span>'
            f'<span class="state">{h(svc["summary"])}</span>'
            + (f'<ul class="details">{details}</ul>' if details else "")
            + "</li>"
        )
    worst = max((LEVELS.index(s["level"]) for s in model["services"].values()), default=0)
    banner = {
        0: "All services are working normally.",
        1: "All services are up; some have restrictions.",
        2: "Some services are degraded.",
        3: "Some services are down.",
    }[worst]
    history = (
        "".join(
            f"<li><time>{h(when(n['t'], seconds=False))}</time> "
            f'<span class="tag lvl-{h(n["level"])}">{h(n["service"])}: {h(n["level"])}</span> '
            f"{h(n['text'])}</li>"
            for n in model["history"]
        )
        or "<li>No notices in the last 30 days.</li>"
    )
    body = (
        f'<main class="status"><h1>{h(model["title"])}</h1>'
        f'<p class="banner lvl-{LEVELS[worst]}">{h(banner)}</p>'
        f'<ul class="services">{"".join(rows)}</ul>'
        f'<aside class="advice"><strong>Stay safe:</strong> {h(model["advice"])}</aside>'
        f'<section><h2>Notices</h2><ul class="history">{history}</ul></section>'
        f"<footer>Updated {h(when(model['updated_at']))} (UTC). This page refreshes every minute.</footer>"
        "</main>"
    )
    return page(
        model["title"],
        body,
        css=("status.css",),
        meta='<meta http-equiv="refresh" content="60">',
    )


class StatusPage:
    def __init__(self, service: Service, settings: OpsSettings, notices: Notices) -> None:
        self.service = service
        self.settings = settings
        self.notices = notices

    def html(self, request: Request) -> Response:
        return html_response(render(status_model(self.service, self.settings, self.notices)))

    def json(self, request: Request) -> Response:
        model = status_model(self.service, self.settings, self.notices)
        return json_response(
            model, headers={"Cache-Control": "no-store", "Access-Control-Allow-Origin": "*"}
        )
