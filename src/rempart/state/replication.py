"""Agreement between nodes over Redis: every node applies the others' reports and changes to its
own engine, so N stateless nodes count the same attempts and enforce the same lists and posture.

Design. Each decision stays pure CPU on local memory: the counters a rule reads are the node's
own rings and sketches, fed by *every* node's reports.
- Out: an engine listener turns each report into a compact, versioned row (`report_row`: time,
  login, ip, protocol, password and device fingerprints, outcome) and each list change, posture change
  or counter reset into a `ChangeWire` carrying the change's journal record (`rempart.state.wire`). A familiar network needs no record of its own: the
  successful report that taught it teaches every node (and `RedisStore` keeps it for nodes
  that start later). `RedisStore`'s writer thread sends them every `sync_interval` (0.1 s)
  in one pipeline: reports as one `XADD` per batch of up to 500 records to the `reports`
  stream, changes as one entry each to the `changes` stream (both capped with `MAXLEN ~`).
- In: one reader thread per node blocks on `XREAD` over both streams, skips its own records,
  and hands the rest to the event loop, which applies them in chunks through the engine's
  `apply_peer_*` methods: those emit no events, so nothing is journaled, persisted or published
  twice (a posture change that a remote report makes this node's detector take is this node's
  own, and goes through every listener). Applied list and posture changes are written to the
  local mirror here, so a node that starts while Redis is down knows them.

Why streams rather than a counter per key in Redis (hashes per key and bucket, HyperLogLog for
distinct counts): reading shared counters at decision time costs a network round trip per
decision (or a cache that is as stale as a feed), the engine's rings, sketches and rules would
need a second implementation, and a node without Redis would have nothing local to decide on.
Streams keep the engine unchanged, make each node a full replica that keeps deciding alone
when Redis goes away, and, unlike pub/sub, let a node catch up from the last entry it read
after a disconnection, and a node that starts warm its counters from the retained history.
The cost is that every node applies every report (CPU grows with the cluster's total report
rate; `benchmarks/redis_scaleout.py` measures it), and agreement is eventual: a report reaches
the other nodes after one batch interval and one read (about 0.1 s), and a spray split
across nodes can pass its threshold by what the others sent during that interval. Delivery is
at least once: a batch resent after a connection broke mid-pipeline may count twice.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rempart.engine.events import (
    CountersReset,
    EngineEvent,
    ListAdded,
    Listener,
    ListRemoved,
    PostureChanged,
    Reported,
)
from rempart.engine.records import change_from_record, event_record
from rempart.state.redis import REDIS_ERRORS, Backoff, RedisStore
from rempart.state.wire import ChangeWire, PeerReport, report_row, reports_of_entry
from rempart.state.writer import encode_posture, posture_key

if TYPE_CHECKING:
    import asyncio

    from redis.typing import KeyT, StreamIdT

    from rempart.engine.engine import Engine

log = logging.getLogger(__name__)

# Records applied per turn of the event loop, so a catch-up never stalls decisions for long.
APPLY_CHUNK = 2000
# Received batches waiting for the engine's thread beyond which the reader pauses (memory bound).
INBOX_LIMIT = 1000


def _stream_id(when: float) -> str:
    return f"{int(when * 1000)}-0"


class Replicator:
    """Publishes this node's reports and changes, applies the other nodes' ones."""

    def __init__(self, engine: Engine, store: RedisStore, backfill_seconds: float = 0.0) -> None:
        self.engine = engine
        self.store = store
        self.node_id = store.node_id
        now = time.time()
        # Reports from the last counter window warm a starting node; changes from a few seconds
        # before the store was loaded cover the race between loading and reading.
        self.last_ids: dict[KeyT, StreamIdT] = {
            store.changes_stream: _stream_id(now - 10.0),
            store.reports_stream: _stream_id(now - backfill_seconds),
        }
        self.inbox: collections.deque[tuple[str, Any]] = collections.deque()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self.reports_received = 0
        self.changes_received = 0
        self.apply_errors = 0
        self.lag_s = 0.0  # age of the latest remote report when it was applied
        self.peers: dict[str, float] = {}  # node id -> when last heard from
        # Effects each node keeps for itself (its kernel's nftables sets) also follow the other
        # nodes' list changes, which the engine applies without emitting them.
        self.peer_listeners: list[Listener] = []
        engine.listeners.append(self.listener)

    # --- out -------------------------------------------------------------------------------
    def listener(self, event: EngineEvent) -> None:
        match event:
            case Reported():
                self.store.publish_report(report_row(event))
            case ListAdded() | ListRemoved() | PostureChanged() | CountersReset():
                self.store.publish_change(event_record(event))
            case _:
                pass

    # --- in: the reader thread ---------------------------------------------------------------
    def attach(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Start reading; records are applied on `loop` (None: by calling `apply_pending`)."""
        self.loop = loop
        self._reader = threading.Thread(target=self._read, name="rempart-redis-reader", daemon=True)
        self._reader.start()

    def close(self) -> None:
        self._stop.set()
        if self._reader is not None:
            self._reader.join(timeout=3)

    def _read(self) -> None:
        store = self.store
        backoff = Backoff()
        while not self._stop.is_set():
            if len(self.inbox) > INBOX_LIMIT:
                # The engine's thread is behind (a catch-up, a busy node): read no further.
                self._wake()
                self._stop.wait(0.05)
                continue
            try:
                result = store.client.xread(self.last_ids, count=APPLY_CHUNK, block=500)
            except REDIS_ERRORS as exc:
                store.mark(False, exc)
                self._stop.wait(backoff.next())
                continue
            backoff.reset()
            store.mark(True)
            if not result:
                continue
            # The client speaks RESP2 (from_url's default): XREAD answers [[stream, entries]].
            assert isinstance(result, list)
            try:
                self._receive(result)
            except Exception:
                self.apply_errors += 1
                log.exception("unreadable record in the shared streams; skipped")
            self._wake()

    def _receive(self, result: list[Any]) -> None:
        changes_stream = self.store.changes_stream.encode()
        heard = time.time()
        for stream, entries in result:
            for entry_id, fields in entries:
                self.last_ids[stream.decode()] = entry_id
                try:
                    if stream == changes_stream:
                        change = ChangeWire.from_wire(orjson.loads(fields[b"d"]))
                        node = change.node
                        if node != self.node_id:
                            self.inbox.append(("change", change.record))
                            self.changes_received += 1
                    else:
                        node = fields[b"n"].decode()
                        if node != self.node_id:
                            records = reports_of_entry(fields.get(b"v"), orjson.loads(fields[b"r"]))
                            self.inbox.append(("reports", records))
                            self.reports_received += len(records)
                # WireError (a ValueError): a newer node during a rolling upgrade, a malformed
                # record; otherwise not JSON, not UTF-8, a field missing.
                except (ValueError, KeyError) as exc:
                    self.apply_errors += 1
                    log.warning("skipped an unreadable entry of the shared streams: %r", exc)
                    continue
                if node != self.node_id:
                    self.peers[node] = heard

    def _wake(self) -> None:
        if self.loop is None or self._scheduled or not self.inbox:
            return
        self._scheduled = True
        try:
            self.loop.call_soon_threadsafe(self.apply_pending)
        except RuntimeError:  # the loop is closed: the node is stopping
            self._scheduled = False

    # --- in: applying, on the engine's thread ------------------------------------------------
    def apply_pending(self) -> int:
        """Apply received records to the engine (at most about APPLY_CHUNK reports per call);
        returns how many records were applied."""
        self._scheduled = False
        applied = 0
        while self.inbox and applied < APPLY_CHUNK:
            kind, payload = self.inbox.popleft()
            try:
                applied += self._apply_reports(payload) if kind == "reports" else 0
                if kind == "change":
                    self._apply_change(payload)
                    applied += 1
            except Exception:
                self.apply_errors += 1
                log.exception("could not apply a %s record from another node", kind)
        if self.inbox:
            self._wake()
        return applied

    def _apply_reports(self, records: list[PeerReport]) -> int:
        apply = self.engine.apply_peer_report
        for attempt, outcome, at in records:
            apply(attempt, outcome, at)
        if records:
            self.lag_s = max(0.0, time.time() - records[-1][2])
        return len(records)

    def _apply_change(self, record: dict[str, Any]) -> None:
        engine, local = self.engine, self.store.local
        match change_from_record(record):
            case ListAdded(list=which, entry=entry) as change:
                if not engine.apply_peer_list_add(which, entry):
                    return  # made before this node lifted it: a late copy
                if local is not None:
                    local.put_entry(which.value, entry)
                for listener in self.peer_listeners:
                    listener(change)
            case ListRemoved(at=at, list=which, entry=entry) as change:
                engine.apply_peer_list_remove(which, entry.kind, entry.value, at)
                if local is not None:
                    local.delete_entry(which.value, entry.kind, entry.value)
                for listener in self.peer_listeners:
                    listener(change)
            case PostureChanged(record=posture):
                engine.apply_peer_posture(posture)
                if local is not None:
                    local.put_setting(posture_key(posture.protocol), encode_posture(posture))
            case CountersReset(at=at, login=login, ip=ip):
                engine.apply_peer_reset(login=login, ip=ip, at=at)

    # --- reporting ---------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        store = self.store
        now = time.time()
        return {
            "backend": "redis",
            "node_id": self.node_id,
            "up": store.up,
            "down_since": store.down_since,
            "last_error": store.last_error,
            "peers": sorted(n for n, seen in list(self.peers.items()) if now - seen < 60),
            "reports_sent": store.reports_sent,
            "reports_received": self.reports_received,
            "reports_dropped": store.reports_dropped,
            "reports_buffered": len(store._reports),
            "changes_sent": store.changes_sent,
            "changes_received": self.changes_received,
            "apply_backlog": len(self.inbox),
            "apply_errors": self.apply_errors,
            "lag_s": round(self.lag_s, 3),
            "errors": store.errors,
        }


class ReplicationCollector(Collector):
    """Prometheus metrics of the link to Redis (`rempart_redis_up` first of all)."""

    def __init__(self, replicator: Replicator) -> None:
        self.replicator = replicator

    def collect(self) -> Iterator[Metric]:
        r = self.replicator
        s = r.store
        yield GaugeMetricFamily(
            "rempart_redis_up",
            "1 while this node reaches Redis; 0 while it decides from its local state alone",
            value=1 if s.up else 0,
        )
        yield GaugeMetricFamily(
            "rempart_redis_peers",
            "Other nodes heard from through Redis in the last minute",
            value=sum(1 for seen in list(r.peers.values()) if time.time() - seen < 60),
        )
        yield GaugeMetricFamily(
            "rempart_redis_lag_seconds",
            "Age of the latest report from another node when it was applied here",
            value=r.lag_s,
        )
        yield GaugeMetricFamily(
            "rempart_redis_reports_buffered",
            "Reports waiting to be sent to Redis",
            value=len(s._reports),
        )
        for name, help_text, value in (
            ("reports_sent", "Reports sent to the other nodes", s.reports_sent),
            ("reports_received", "Reports received from the other nodes", r.reports_received),
            ("reports_dropped", "Reports dropped while Redis was unreachable", s.reports_dropped),
            ("changes_sent", "List, posture and counter-reset changes sent", s.changes_sent),
            ("changes_received", "Changes received from the other nodes", r.changes_received),
            ("errors", "Failed Redis operations", s.errors),
            (
                "apply_errors",
                "Records of the other nodes skipped: unreadable, or of a newer wire version",
                r.apply_errors,
            ),
        ):
            yield CounterMetricFamily(f"rempart_redis_{name}", help_text, value=value)
