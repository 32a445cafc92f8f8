"""Prometheus metrics: a collector that reads the engine's snapshot at scrape time.

The decision path only increments Python ints; nothing here runs per request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rempart.model import Protocol
from rempart.ops.context import MetricsContext


class EngineCollector(Collector):
    def __init__(self, context: MetricsContext) -> None:
        self.context = context

    def collect(self) -> Iterator[Metric]:
        s = self.context
        snap = s.engine.snapshot()
        decisions = CounterMetricFamily(
            "rempart_decisions", "Decisions by verdict", labels=["verdict"]
        )
        for action, count in snap.decisions.items():
            decisions.add_metric([action.label], count)
        yield decisions
        reports = CounterMetricFamily("rempart_reports", "Reported outcomes", labels=["outcome"])
        reports.add_metric(["failure"], snap.failures)
        reports.add_metric(["success"], snap.successes)
        yield reports
        reasons = CounterMetricFamily(
            "rempart_reasons", "Reasons given in verdicts", labels=["code"]
        )
        for code, count in sorted(snap.reasons.items()):
            reasons.add_metric([code], count)
        yield reasons
        yield GaugeMetricFamily(
            "rempart_tracked_keys", "Keys tracked in memory", value=snap.tracked_keys
        )
        yield CounterMetricFamily(
            "rempart_key_evictions", "Keys forgotten by the LRU bound", value=snap.evictions
        )
        lists = GaugeMetricFamily("rempart_list_entries", "List entries", labels=["list"])
        lists.add_metric(["block"], snap.blocklist_entries)
        lists.add_metric(["allow"], snap.allowlist_entries)
        yield lists
        posture = GaugeMetricFamily(
            "rempart_posture",
            "Posture per protocol (0 normal, 1 guarded, 2 strict, 3 closed)",
            labels=["protocol"],
        )
        held = GaugeMetricFamily(
            "rempart_posture_held",
            "1 while an operator holds the protocol's posture (the detector is paused)",
            labels=["protocol"],
        )
        now = time.time()
        for protocol in Protocol:
            view = snap.postures.get(protocol)
            posture.add_metric([protocol.value], view.level.rank if view else 0)
            held.add_metric([protocol.value], int(bool(view and view.record.hold_active(now))))
        yield posture
        yield held
        if snap.detector:
            score = GaugeMetricFamily(
                "rempart_anomaly_score", "Campaign detector anomaly score", labels=["protocol"]
            )
            figure = GaugeMetricFamily(
                "rempart_campaign_figure",
                "The campaign detector's figures over the last minute",
                labels=["protocol", "figure"],
            )
            for name, info in sorted(snap.detector.items()):
                score.add_metric([name], info["score"])
                for key, value in sorted(info["figures"].items()):
                    if key != "score":
                        figure.add_metric([name, key], value)
            yield score
            yield figure
        yield CounterMetricFamily(
            "rempart_journal_records",
            "Journal records written",
            value=s.journal_records(),
        )
        yield CounterMetricFamily(
            "rempart_write_errors", "Failed writes (journal, store)", value=s.write_errors()
        )
        yield CounterMetricFamily(
            "rempart_http_handler_errors",
            "Handler failures (HTTP 500)",
            value=s.handler_errors(),
        )


def make_registry(
    context: MetricsContext, extra: list[Collector] | None = None
) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(context))
    for collector in extra or []:
        registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


MetricsSource = Callable[[], bytes]
