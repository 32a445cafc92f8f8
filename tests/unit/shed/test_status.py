"""Status documents (public and authenticated) and the Prometheus collector."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from rempart.shed.classes import Criticality as C
from rempart.shed.config import parse_shed
from rempart.shed.metrics import ShedCollector
from rempart.shed.state import ControllerState, ServiceState
from rempart.shed.status import DEGRADED, DOWN, UP, public_status, service_health, shed_status

SETTINGS = parse_shed(
    {
        "services": [
            {"name": "web", "upstream": "127.0.0.1:8081"},
            {"name": "payments", "upstream": "127.0.0.1:8082"},
        ],
        "routes": [
            {"name": "pay", "class": "critical_plus", "path": "/pay/*", "service": "payments"},
            {"name": "login", "class": "critical", "path": "/login"},
            {"name": "search", "class": "sheddable", "path": "/search"},
            {"name": "pages", "class": "sheddable_plus", "path": "/pages/*"},
        ],
    }
)


def state() -> ControllerState:
    web = ServiceState("web", limit=12.5, rtt=0.031, rtt_noload=0.02, inflight=9, queued=2)
    web.classes[C.SHEDDABLE].admitted_pct = 0
    web.classes[C.SHEDDABLE_PLUS].admitted_pct = 40
    web.classes[C.SHEDDABLE].demand_rps = 2500.0
    web.classes[C.SHEDDABLE].shed_rps = 2500.0
    web.classes[C.SHEDDABLE].requests_total = 50_000
    web.classes[C.SHEDDABLE].shed_total = 49_000
    payments = ServiceState("payments", limit=30.0)
    return ControllerState(services={"web": web, "payments": payments}, ticks=4, updated_at=1.5)


def test_service_health() -> None:
    s = state()
    assert service_health(s.services["payments"]) == UP
    assert service_health(s.services["web"]) == DEGRADED
    s.services["web"].classes[C.CRITICAL_PLUS].admitted_pct = 0
    assert service_health(s.services["web"]) == DOWN


def test_public_status_says_what_works_and_nothing_internal() -> None:
    doc = public_status(state(), SETTINGS)
    assert doc == {
        "services": {"web": "degraded", "payments": "up"},
        "features": {"pay": "up", "login": "up", "search": "down", "pages": "degraded"},
        "updated_at": 1.5,
    }
    text = json.dumps(doc)
    assert "limit" not in text and "rtt" not in text


def test_shed_status_has_rates_shares_and_limit() -> None:
    doc = shed_status(state())
    web = doc["services"]["web"]
    assert web["limit"] == 12.5 and web["rtt_ms"] == 31.0 and web["rtt_noload_ms"] == 20.0
    assert web["inflight"] == 9 and web["queued"] == 2 and web["health"] == "degraded"
    search = web["classes"]["sheddable"]
    assert search["admitted_pct"] == 0 and search["admitted_rps"] == 0.0
    assert search["shed_total"] == 49_000
    assert doc["services"]["payments"]["rtt_ms"] is None
    assert doc["runtime_ok"] is True and doc["ticks"] == 4


def test_prometheus_collector_exposes_the_same() -> None:
    current = state()
    registry = CollectorRegistry()
    registry.register(ShedCollector(lambda: current))
    families = {
        f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())
    }
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families.values()
        for s in family.samples
    }
    assert samples[("rempart_shed_limit", (("service", "web"),))] == 12.5
    assert samples[("rempart_shed_rtt_noload_seconds", (("service", "web"),))] == 0.02
    web_search = (("class", "sheddable"), ("service", "web"))
    assert samples[("rempart_shed_admitted_ratio", web_search)] == 0.0
    assert samples[("rempart_shed_shed_total", web_search)] == 49_000
    assert samples[("rempart_shed_requests_total", web_search)] == 50_000
    assert samples[("rempart_shed_runtime_up", ())] == 1.0
    assert ("rempart_shed_rtt_seconds", (("service", "payments"),)) not in samples  # unknown yet
    current.runtime_ok = False  # read at scrape time
    again = generate_latest(registry).decode()
    assert "rempart_shed_runtime_up 0.0" in again
