"""Prometheus view of the HAProxy block-list and good-standing feeds (`shed/hostile_feed.py`,
`shed/standing_feed.py`), read at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rempart.shed.hostile_feed import HostileFeed
from rempart.shed.standing_feed import StandingFeed


class HostileFeedCollector(Collector):
    def __init__(self, feed: HostileFeed) -> None:
        self.feed = feed

    def collect(self) -> Iterator[Metric]:
        feed, counters = self.feed, self.feed.counters
        yield GaugeMetricFamily(
            "rempart_haproxy_blocklist_entries",
            "Sources (addresses and networks) HAProxy's blocklist.map must hold",
            value=len(feed.edge),
        )
        yield GaugeMetricFamily(
            "rempart_haproxy_blocklist_in_sync",
            "1 when the last exchange with HAProxy's runtime socket worked",
            value=1 if counters.runtime_ok else 0,
        )
        yield CounterMetricFamily(
            "rempart_haproxy_blocklist_added",
            "Map entries added to HAProxy through the runtime socket",
            value=counters.added,
        )
        yield CounterMetricFamily(
            "rempart_haproxy_blocklist_removed",
            "Map entries deleted from HAProxy through the runtime socket (lifted, expired, allowed)",
            value=counters.removed,
        )
        yield CounterMetricFamily(
            "rempart_haproxy_blocklist_resyncs",
            "Full comparisons of HAProxy's map with the block list (start, restart, recovery)",
            value=counters.resyncs,
        )
        yield CounterMetricFamily(
            "rempart_haproxy_blocklist_failures",
            "Exchanges with HAProxy's runtime socket that failed (retried, then resynced)",
            value=counters.failures,
        )
        yield CounterMetricFamily(
            "rempart_haproxy_blocklist_file_errors",
            "Failed writes of blocklist.map (retried)",
            value=counters.file_errors,
        )


class StandingFeedCollector(Collector):
    def __init__(self, feed: StandingFeed) -> None:
        self.feed = feed

    def collect(self) -> Iterator[Metric]:
        feed, counters = self.feed, self.feed.counters
        yield GaugeMetricFamily(
            "rempart_haproxy_standing_sources",
            "Sources in good standing HAProxy's standing.map must hold",
            value=len(feed.standing),
        )
        yield GaugeMetricFamily(
            "rempart_haproxy_standing_in_sync",
            "1 when the last exchange with HAProxy's runtime socket worked",
            value=1 if counters.runtime_ok else 0,
        )
        for name, value, doc in (
            ("earned", counters.earned, "Successful logins counted towards good standing"),
            ("revoked", counters.revoked, "Sources whose good standing a block took away"),
            ("pushed", counters.pushed, "standing.map commands applied through the runtime socket"),
            ("resyncs", counters.resyncs, "Full comparisons of HAProxy's standing.map"),
            ("failures", counters.failures, "Failed exchanges with the runtime socket (retried)"),
            ("file_errors", counters.file_errors, "Failed writes of standing.map (retried)"),
        ):
            yield CounterMetricFamily(f"rempart_haproxy_standing_{name}", doc, value=value)
