"""Prometheus view of the HTTP server's connection limits (`rempart.connections`), read at
scrape time from the guard's plain counters."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rempart.connections import ConnectionGuard


class ConnectionCollector(Collector):
    def __init__(self, guard: Callable[[], ConnectionGuard | None]) -> None:
        self.guard = guard

    def collect(self) -> Iterator[Metric]:
        guard = self.guard()
        if guard is None:
            return
        yield GaugeMetricFamily(
            "rempart_http_connections_open", "Open HTTP connections", value=guard.open
        )
        yield GaugeMetricFamily(
            "rempart_http_connections_ceiling",
            "Most open HTTP connections (trusted clients; untrusted get less)",
            value=guard.ceiling,
        )
        yield _counter_by(
            "rempart_http_connections_refused",
            "Connections closed at once because a limit was reached",
            "limit",
            guard.refused,
        )
        yield _counter_by(
            "rempart_http_connections_timed_out",
            "Connections closed by the header or idle timeout",
            "timeout",
            guard.timed_out,
        )


def _counter_by(name: str, doc: str, label: str, counts: Mapping[str, int]) -> Metric:
    """One counter family with a sample per label value."""
    family = CounterMetricFamily(name, doc, labels=[label])
    for value, count in counts.items():
        family.add_metric([value], count)
    return family
