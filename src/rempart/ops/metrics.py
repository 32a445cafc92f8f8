"""Prometheus metrics: a collector that reads the engine's snapshot at scrape time.

The decision path only increments Python ints; nothing here runs per request. wforce 3.0.1's
names (`wforce_commands_total`, `wforce_allow_status_total`, `wforce_bl_entries`,
`wforce_wl_entries`) are exported beside Rempart's own, so a Grafana board built for wforce keeps
working after the switch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rempart.engine.lists import AccessList
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


# wforce's entry types, and Rempart's list kinds counted under each.
WFORCE_ENTRY_TYPES = {
    "ip": ("ip", "netmask"),
    "login": ("login",),
    "iplogin": ("ip_login",),
    "ja3": ("ja3",),
    "ipja3": ("ip_ja3",),
}


def entries_by_kind(lst: AccessList) -> dict[str, int]:
    nets = sum(len(d) for d in lst.nets4.values()) + sum(len(d) for d in lst.nets6.values())
    return {
        "ip": len(lst.by_ip),
        "netmask": nets,
        "login": len(lst.by_login),
        "ip_login": len(lst.by_pair),
        "ja3": len(lst.by_ja3),
        "ip_ja3": len(lst.by_ip_ja3),
    }


class WforceCollector(Collector):
    """wforce's own metric names and labels, from the wforce API's counters and the lists."""

    def __init__(self, context: MetricsContext) -> None:
        self.context = context

    def collect(self) -> Iterator[Metric]:
        counters, engine = self.context.wforce, self.context.engine
        commands = CounterMetricFamily(
            "wforce_commands", "How many commands have been received?", labels=["cmd"]
        )
        for name, count in sorted(counters.commands.items()):
            commands.add_metric([name], count)
        yield commands
        statuses = CounterMetricFamily(
            "wforce_allow_status",
            "Count of different allow status responses",
            labels=["status"],
        )
        for name, count in counters.allow_status.items():
            statuses.add_metric([name], count)
        yield statuses
        for prefix, lst, what in (
            ("bl", engine.blocklist, "blacklist"),
            ("wl", engine.allowlist, "whitelist"),
        ):
            family = GaugeMetricFamily(
                f"wforce_{prefix}_entries", f"How many entries are in the {what}?", labels=["type"]
            )
            counts = entries_by_kind(lst)
            for wtype, kinds in WFORCE_ENTRY_TYPES.items():
                family.add_metric([wtype], sum(counts[k] for k in kinds))
            yield family


def make_registry(
    context: MetricsContext, extra: list[Collector] | None = None
) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(context))
    registry.register(WforceCollector(context))
    for collector in extra or []:
        registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


MetricsSource = Callable[[], bytes]
