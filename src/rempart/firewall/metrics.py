"""Prometheus view of the nftables sync, read at scrape time from its plain counters."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rempart.firewall.sync import NftSync


class NftCollector(Collector):
    def __init__(self, sync: NftSync) -> None:
        self.sync = sync

    def collect(self) -> Iterator[Metric]:
        sync = self.sync
        yield CounterMetricFamily(
            "rempart_nft_elements_synced",
            "Set element additions and deletions nft accepted (full resyncs count every element)",
            value=sync.elements_synced,
        )
        yield CounterMetricFamily(
            "rempart_nft_batches", "nft batches applied (full resyncs included)", value=sync.batches
        )
        yield CounterMetricFamily(
            "rempart_nft_resyncs", "Full regenerations of the table", value=sync.resyncs
        )
        yield CounterMetricFamily(
            "rempart_nft_failures",
            "nft calls that failed (refused batch, nft missing or timing out); retried",
            value=sync.failures,
        )
        yield GaugeMetricFamily(
            "rempart_nft_last_sync_timestamp_seconds",
            "UNIX time of the last successful nft batch (0: none yet)",
            value=sync.last_sync,
        )
        yield GaugeMetricFamily(
            "rempart_nft_elements",
            "Elements in the nftables sets, as last applied",
            value=sync.installed_count,
        )
        yield GaugeMetricFamily(
            "rempart_nft_pending_changes",
            "Elements changed in the lists and not yet applied",
            value=sync.pending,
        )
