"""Prometheus view of the Postfix policy service, read at scrape time from its plain counters."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rempart.adapters.postfix.service import PolicyService


class PostfixCollector(Collector):
    def __init__(self, service: PolicyService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        counters = self.service.counters
        answers = CounterMetricFamily(
            "rempart_postfix_answers", "Postfix policy answers by action", labels=["action"]
        )
        for action, count in counters.answers.items():
            answers.add_metric([str(action)], count)
        yield answers
        refusals = CounterMetricFamily(
            "rempart_postfix_refusals",
            "Mail refused or deferred by the Postfix policy, by reason code",
            labels=["code"],
        )
        for code, count in sorted(counters.refusals.items()):
            refusals.add_metric([code], count)
        yield refusals
        problems = CounterMetricFamily(
            "rempart_postfix_bad_requests",
            "Policy requests that could not be judged (bad_request, malformed), broke a size "
            "limit (too_large) or were left unfinished (timeout)",
            labels=["kind"],
        )
        for kind, count in counters.problems.items():
            problems.add_metric([kind], count)
        yield problems
        yield GaugeMetricFamily(
            "rempart_postfix_connections_open",
            "Open Postfix policy connections",
            value=counters.open,
        )
        yield CounterMetricFamily(
            "rempart_postfix_connections_refused",
            "Policy connections closed at once: max_connections reached",
            value=counters.refused_connections,
        )
        yield GaugeMetricFamily(
            "rempart_postfix_rate_accounts",
            "Accounts whose recipients are counted this hour",
            value=len(self.service.decider.recipients),
        )
