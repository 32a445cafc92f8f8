"""Prometheus collector exposing the controller state (register with a CollectorRegistry)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rempart.shed.state import ControllerState


class ShedCollector(Collector):
    """Reads ``state()`` at scrape time; no locking needed (the state is replaced field-wise)."""

    def __init__(self, state: Callable[[], ControllerState]) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        state = self._state()
        limit = GaugeMetricFamily(
            "rempart_shed_limit", "Adaptive concurrency limit", labels=["service"]
        )
        inflight = GaugeMetricFamily(
            "rempart_shed_inflight", "Requests at the upstream", labels=["service"]
        )
        queued = GaugeMetricFamily(
            "rempart_shed_queued", "Requests waiting for a slot", labels=["service"]
        )
        rtt = GaugeMetricFamily(
            "rempart_shed_rtt_seconds", "Latest upstream RTT sample", labels=["service"]
        )
        noload = GaugeMetricFamily(
            "rempart_shed_rtt_noload_seconds", "No-load RTT", labels=["service"]
        )
        admitted = GaugeMetricFamily(
            "rempart_shed_admitted_ratio",
            "Share of the class admitted",
            labels=["service", "class"],
        )
        demand = GaugeMetricFamily(
            "rempart_shed_demand_rps", "Arriving requests per second", labels=["service", "class"]
        )
        shed_rate = GaugeMetricFamily(
            "rempart_shed_shed_rps", "Shed requests per second", labels=["service", "class"]
        )
        requests = CounterMetricFamily(
            "rempart_shed_requests", "Requests seen by the data plane", labels=["service", "class"]
        )
        shed = CounterMetricFamily(
            "rempart_shed_shed", "Requests shed with 503", labels=["service", "class"]
        )
        for name, svc in state.services.items():
            limit.add_metric([name], svc.limit)
            inflight.add_metric([name], svc.inflight)
            queued.add_metric([name], svc.queued)
            if svc.rtt is not None:
                rtt.add_metric([name], svc.rtt)
            if svc.rtt_noload is not None:
                noload.add_metric([name], svc.rtt_noload)
            for cls, cs in svc.classes.items():
                labels = [name, cls.label]
                admitted.add_metric(labels, cs.admitted_pct / 100.0)
                demand.add_metric(labels, cs.demand_rps)
                shed_rate.add_metric(labels, cs.shed_rps)
                requests.add_metric(labels, cs.requests_total)
                shed.add_metric(labels, cs.shed_total)
        yield from (
            limit,
            inflight,
            queued,
            rtt,
            noload,
            admitted,
            demand,
            shed_rate,
            requests,
            shed,
        )
        runtime = GaugeMetricFamily(
            "rempart_shed_runtime_up", "1 if the HAProxy runtime socket answered the last tick"
        )
        runtime.add_metric([], 1.0 if state.runtime_ok else 0.0)
        yield runtime
