"""Pure functions from the controller's state to the JSON documents Rempart serves.

``public_status`` is for the unauthenticated ``/status.json`` (what works, per service and
route, nothing internal); ``shed_status`` is for the authenticated endpoint and for
``rempart shed status`` (rates, shares and the current limit).
"""

from __future__ import annotations

from typing import Any

from rempart.shed.classes import CLASSES
from rempart.shed.config import ShedSettings
from rempart.shed.state import ControllerState, ServiceState

UP, DEGRADED, DOWN = "up", "degraded", "down"


def class_health(pct: int) -> str:
    return UP if pct >= 100 else DOWN if pct <= 0 else DEGRADED


def service_health(service: ServiceState) -> str:
    """``up`` when every class is fully admitted, ``down`` when even critical_plus is shed."""
    shares = [service.classes[c].admitted_pct for c in CLASSES]
    if min(shares) >= 100:
        return UP
    if shares[0] <= 0:
        return DOWN
    return DEGRADED


def public_status(state: ControllerState, settings: ShedSettings) -> dict[str, Any]:
    """``{"services": {svc: state}, "features": {route name: state}}`` for the status page."""
    services = {name: service_health(svc) for name, svc in state.services.items()}
    features: dict[str, str] = {}
    for route in settings.routes:
        svc = state.services.get(route.service)
        if svc is not None:
            features[route.name] = class_health(svc.classes[route.criticality].admitted_pct)
    return {"services": services, "features": features, "updated_at": state.updated_at}


def shed_status(state: ControllerState) -> dict[str, Any]:
    """Per service and class: admitted share, demand and shed rates, the limit, latency."""
    services: dict[str, Any] = {}
    for name, svc in state.services.items():
        services[name] = {
            "health": service_health(svc),
            "limit": round(svc.limit, 2),
            "inflight": svc.inflight,
            "queued": svc.queued,
            "rtt_ms": None if svc.rtt is None else round(svc.rtt * 1000, 3),
            "rtt_noload_ms": None if svc.rtt_noload is None else round(svc.rtt_noload * 1000, 3),
            "gradient": round(svc.gradient, 3),
            "error_ratio": round(svc.error_ratio, 4),
            "overloaded": svc.overloaded,
            "classes": {
                cls.label: {
                    "admitted_pct": cs.admitted_pct,
                    "demand_rps": cs.demand_rps,
                    "admitted_rps": max(0.0, cs.demand_rps - cs.shed_rps),
                    "shed_rps": cs.shed_rps,
                    "requests_total": cs.requests_total,
                    "shed_total": cs.shed_total,
                }
                for cls, cs in svc.classes.items()
            },
        }
    return {
        "runtime_ok": state.runtime_ok,
        "last_error": state.last_error,
        "runtime_failures": state.runtime_failures,
        "ticks": state.ticks,
        "updated_at": state.updated_at,
        "services": services,
    }
