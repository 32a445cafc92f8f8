"""The scale-out store: durable facts in Redis, shared by every node, and the link that carries
the nodes' change and report feeds.

Redis layout (every key under the configured prefix, `rempart:` by default):

- `list:{block|allow}:{kind}:{value}`: a hash `{reason, created, expires}` per list entry, with
  a native expiry (`PEXPIREAT`) when the entry has one, so Redis forgets it by itself.
- `fam:{login}`: a hash `marker -> last success` per account, expiring `ttl_days` after the
  latest success (Redis 7.0 has no per-field expiry; stale markers are dropped on load).
- `settings`: a hash of settings (posture per protocol).
- `epoch`: set by the first node that finds Redis without Rempart state; that node seeds it
  from its local mirror (a new cluster, or a Redis restarted without persistence).
- `changes` and `reports`: the streams other nodes read (see `rempart.state.replication`).

Writes never happen on the decision path: the engine's listeners queue them, and one writer
thread sends whatever gathered every `sync_interval` seconds in one pipeline (store writes,
change records and report batches together, in order). `flush()` waits until what was queued
is in Redis. When Redis is unreachable the writer keeps the queue and retries with backoff;
the optional local SQLite store mirrors every write, so `flush()` can still confirm a change as
durable (on this node, and in Redis as soon as it is back) and a node that starts while Redis is
down loads the facts it last knew.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import queue
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import orjson
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rempart.engine.lists import ListEntry
from rempart.state.store import Store
from rempart.state.wire import ROWS_VERSION_FIELD, ChangeWire

log = logging.getLogger(__name__)

# What the writer queue carries: a Redis command, a change record for the `changes` stream, a
# flush marker, or None to stop.
_Command = tuple[str, tuple[Any, ...]]
_Op = _Command | bytes | threading.Event | None

REDIS_ERRORS = (redis.RedisError, OSError)


def redis_away(exc: BaseException) -> bool:
    """Whether a failed write is worth retrying as it is: Redis is away, failing over or not
    answering sense; not when it refused the command itself (a ResponseError such as WRONGTYPE
    would be refused forever)."""
    if isinstance(exc, redis.exceptions.ReadOnlyError):
        return True
    return isinstance(exc, REDIS_ERRORS) and not isinstance(exc, redis.ResponseError)


# ARGV: prefix, ttl in ms, then (login, marker, last success) triples. Keys are built in the
# script, so it is for a single Redis (or a primary with replicas), not Redis Cluster.
_FAMILIAR_LUA = """
local prefix, ttl = ARGV[1], tonumber(ARGV[2])
for i = 3, #ARGV, 3 do
  local key = prefix .. 'fam:' .. ARGV[i]
  redis.call('HSET', key, ARGV[i + 1], ARGV[i + 2])
  redis.call('PEXPIREAT', key, math.floor(tonumber(ARGV[i + 2]) * 1000) + ttl)
end
return 0
"""
# A list entry's hash is written only if no removal of it is recorded at or after the entry's
# creation: a node whose write was delayed (its queue, a Redis outage) must not bring back an
# entry another node removed meanwhile, which every node would load again at its next start.
# KEYS: the entry's hash, its removal mark; ARGV: created, reason, expires, expiry in ms (0: none).
_PUT_ENTRY_LUA = """
local removed = redis.call('GET', KEYS[2])
if removed and tonumber(removed) >= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'reason', ARGV[2], 'created', ARGV[1], 'expires', ARGV[3])
if ARGV[4] ~= '0' then redis.call('PEXPIREAT', KEYS[1], ARGV[4]) end
return 1
"""
# KEYS: the entry's hash, its removal mark; ARGV: when it was removed, how long to remember (ms).
_DELETE_ENTRY_LUA = """
redis.call('DEL', KEYS[1])
local removed = redis.call('GET', KEYS[2])
if not removed or tonumber(removed) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
end
return 1
"""
# How long a removal is remembered against late writes: longer than any node buffers its
# writes while Redis is away, and small (one short string per removed entry).
REMOVAL_MEMORY_S = 7 * 86400
# Changes are rare (list edits, postures, counter resets): keep plenty for catch-up.
CHANGES_MAXLEN = 100_000


def default_node_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Backoff:
    """Delays between reconnection attempts: 0.25 s doubling to 5 s, reset by a success."""

    def __init__(self, first: float = 0.25, cap: float = 5.0) -> None:
        self.first, self.cap = first, cap
        self.delay = first

    def next(self) -> float:
        delay = self.delay
        self.delay = min(self.cap, self.delay * 2)
        return delay

    def reset(self) -> None:
        self.delay = self.first


class RedisStore:
    """Durable facts in Redis; implements `Store`, plus the feeds `Replicator` uses."""

    def __init__(
        self,
        url: str,
        prefix: str = "rempart:",
        node_id: str = "",
        local: Store | None = None,
        familiarity_ttl: float = 90 * 86400.0,
        sync_interval: float = 0.1,
        stream_maxlen: int = 20_000,
        buffer_records: int = 100_000,
    ) -> None:
        self.url = url
        self.prefix = prefix
        # A token per process: a restarted node reads its previous life's reports like any
        # other node's, and two nodes given the same name still hear each other.
        self.node_id = f"{node_id or default_node_id()}#{secrets.token_hex(3)}"
        self.local = local
        self.familiarity_ttl = familiarity_ttl
        self.interval = sync_interval
        self.stream_maxlen = stream_maxlen
        # No retries inside redis-py: the writer and reader retry with their own backoff, and
        # a call must fail fast for `up` to say the truth.
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=2.0,
            socket_connect_timeout=1.0,
            retry=Retry(NoBackoff(), 0),
        )
        self.changes_stream = prefix + "changes"
        self.reports_stream = prefix + "reports"
        self._queue: queue.SimpleQueue[_Op] = queue.SimpleQueue()
        # Reports waiting to be sent; bounded, so an outage costs at most this much memory.
        self._reports: collections.deque[list[Any]] = collections.deque(maxlen=buffer_records)
        self.up = False
        self.last_error = ""
        self.down_since: float | None = time.time()
        self.dropped_batches = 0  # refused by Redis for what they were (see _run)
        self.errors = 0
        self.reports_sent = 0
        self.reports_dropped = 0
        self.changes_sent = 0
        self.familiarity_sent = 0  # familiarity entries written to Redis by this node
        self._wake = threading.Event()
        self._seed_check = False
        if self._check():
            try:
                self._seed_if_empty()
            except REDIS_ERRORS as exc:
                self.mark(False, exc)
        else:
            log.warning(
                "redis %s unreachable at start (%s); starting from the local mirror",
                self._where(),
                self.last_error,
            )
        self._writer = threading.Thread(target=self._run, name="rempart-redis-writer", daemon=True)
        self._writer.start()

    @property
    def write_errors(self) -> int:
        """Writes lost or failed: batches Redis refused, and the local mirror's failures."""
        return self.dropped_batches + getattr(self.local, "write_errors", 0)

    # --- health --------------------------------------------------------------------------
    def _check(self) -> bool:
        try:
            self.client.ping()
        except REDIS_ERRORS as exc:
            self.mark(False, exc)
            return False
        self.mark(True)
        return True

    def mark(self, up: bool, error: BaseException | None = None) -> None:
        """Record the link's state (any thread); logs only transitions."""
        if error is not None:
            self.errors += 1
            self.last_error = f"{type(error).__name__}: {error}"[:200]
        if up == self.up:
            return
        self.up = up
        if up:
            self._seed_check = True  # Redis may have come back empty
            again = "again" if self.down_since is not None and self.errors else "(shared state)"
            log.warning("redis %s reachable %s", self._where(), again)
            self.down_since = None
        else:
            log.warning(
                "redis %s unreachable (%s); serving from local state",
                self._where(),
                self.last_error,
            )
            self.down_since = time.time()

    def _where(self) -> str:
        # The URL without credentials, for logs.
        return self.url.rsplit("@", 1)[-1]

    # --- reads (start-up and operator queries; never on the decision path) ---------------
    def _scan_hashes(self, pattern: str) -> Iterator[tuple[bytes, dict[bytes, bytes]]]:
        keys: list[bytes] = []
        for key in self.client.scan_iter(match=pattern, count=1000):
            keys.append(key)
            if len(keys) >= 500:
                yield from self._hgetall(keys)
                keys = []
        if keys:
            yield from self._hgetall(keys)

    def _hgetall(self, keys: list[bytes]) -> Iterator[tuple[bytes, dict[bytes, bytes]]]:
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        yield from zip(keys, pipe.execute(), strict=True)

    def load_entries(self) -> Iterator[tuple[str, ListEntry]]:
        if not self.up and self.local is not None:
            yield from self.local.load_entries()  # Redis was unreachable a moment ago: do not wait on it
            return
        try:
            found = list(self._load_entries())
        except REDIS_ERRORS as exc:
            self.mark(False, exc)
            if self.local is not None:
                yield from self.local.load_entries()
            return
        if self.local is not None:
            self._align_local(found)
        yield from found

    def _align_local(self, found: list[tuple[str, ListEntry]]) -> None:
        """Make the local mirror's lists what Redis holds (others changed them meanwhile)."""
        assert self.local is not None
        mine = {(w, e.kind, e.value): e for w, e in self.local.load_entries()}
        shared = {(w, e.kind, e.value): e for w, e in found}
        for which, kind, value in mine.keys() - shared.keys():
            self.local.delete_entry(which, kind, value)
        for key, entry in shared.items():
            if mine.get(key) != entry:
                self.local.put_entry(key[0], entry)

    def _load_entries(self) -> Iterator[tuple[str, ListEntry]]:
        start = len(self.prefix) + len("list:")
        for key, fields in self._scan_hashes(self.prefix + "list:*"):
            which, kind, value = key.decode()[start:].split(":", 2)
            if not fields:
                continue  # expired between SCAN and HGETALL
            yield (
                which,
                ListEntry(
                    kind,
                    value,
                    float(fields[b"expires"]),
                    fields[b"reason"].decode(),
                    float(fields[b"created"]),
                ),
            )

    def load_familiarity(self) -> Iterator[tuple[str, str, float]]:
        if not self.up and self.local is not None:
            yield from self.local.load_familiarity()  # Redis was unreachable a moment ago: do not wait on it
            return
        try:
            found = list(self._load_familiarity())
        except REDIS_ERRORS as exc:
            self.mark(False, exc)
            if self.local is not None:
                yield from self.local.load_familiarity()
            return
        yield from found

    def _load_familiarity(self) -> Iterator[tuple[str, str, float]]:
        start = len(self.prefix) + len("fam:")
        oldest = time.time() - self.familiarity_ttl
        for key, fields in self._scan_hashes(self.prefix + "fam:*"):
            login = key.decode()[start:]
            for marker, last in fields.items():
                when = float(last)
                if when >= oldest:
                    yield login, marker.decode(), when

    def get_setting(self, key: str) -> str | None:
        if not self.up and self.local is not None:
            return self.local.get_setting(key)
        try:
            value = self.client.hget(self.prefix + "settings", key)
        except REDIS_ERRORS as exc:
            self.mark(False, exc)
            return self.local.get_setting(key) if self.local is not None else None
        found = value.decode() if isinstance(value, bytes) else value
        if self.local is not None and self.local.get_setting(key) != found:
            self.local.put_setting(key, found)
        return found

    # --- an emptied Redis ----------------------------------------------------------------
    def _seed_if_empty(self) -> bool:
        """If Redis holds no Rempart state (a new Redis, or one restarted without persistence),
        fill it from this node's local mirror; True if this node did. Only the first node to
        get there seeds (SET NX of the epoch key); a new cluster migrating from the embedded
        store starts this way with the SQLite facts of its first node."""
        if not self.client.set(self.prefix + "epoch", self.node_id, nx=True):
            return False
        if self.local is None:
            return True
        now = time.time()
        ops: list[_Command] = []
        entries = 0
        for which, entry in self.local.load_entries():
            if entry.live(now):
                ops += self._entry_ops(which, entry)
                entries += 1
        for login, marker, last in self.local.load_familiarity():
            if last + self.familiarity_ttl > now:
                ops += self._familiarity_ops(login, marker, last)
        load_settings = getattr(self.local, "load_settings", None)
        settings = load_settings() if load_settings is not None else {}
        ops += [self._setting_op(key, value) for key, value in settings.items()]
        for start in range(0, len(ops), 5000):
            pipe = self.client.pipeline(transaction=False)
            for name, args in ops[start : start + 5000]:
                getattr(pipe, name)(*args)
            pipe.execute()
        if ops:
            log.warning(
                "redis held no Rempart state: seeded it from this node (%d list entries, "
                "%d settings, familiarity)",
                entries,
                len(settings),
            )
        return True

    # --- writes (queued) ---------------------------------------------------------------
    def _entry_key(self, which: str, kind: str, value: str) -> str:
        return f"{self.prefix}list:{which}:{kind}:{value}"

    def _removal_key(self, which: str, kind: str, value: str) -> str:
        return f"{self.prefix}list-removed:{which}:{kind}:{value}"

    def _entry_ops(self, which: str, entry: ListEntry) -> list[_Command]:
        keys = (
            self._entry_key(which, entry.kind, entry.value),
            self._removal_key(which, entry.kind, entry.value),
        )
        expiry_ms = str(int(entry.expires * 1000)) if entry.expires else "0"
        args = (repr(entry.created), entry.reason, repr(entry.expires), expiry_ms)
        return [("eval", (_PUT_ENTRY_LUA, 2, *keys, *args))]

    def _familiarity_ops(self, login: str, marker: str, last: float) -> list[_Command]:
        key = f"{self.prefix}fam:{login}"
        return [
            ("hset", (key, marker, last)),
            ("pexpireat", (key, int((last + self.familiarity_ttl) * 1000))),
        ]

    def _setting_op(self, key: str, value: str | None) -> _Command:
        if value is None:
            return ("hdel", (self.prefix + "settings", key))
        return ("hset", (self.prefix + "settings", key, value))

    def put_entry(self, which: str, entry: ListEntry) -> None:
        for op in self._entry_ops(which, entry):
            self._queue.put(op)
        if self.local is not None:
            self.local.put_entry(which, entry)

    def delete_entry(self, which: str, kind: str, value: str) -> None:
        keys = (self._entry_key(which, kind, value), self._removal_key(which, kind, value))
        args = (repr(time.time()), str(REMOVAL_MEMORY_S * 1000))
        self._queue.put(("eval", (_DELETE_ENTRY_LUA, 2, *keys, *args)))
        if self.local is not None:
            self.local.delete_entry(which, kind, value)

    def put_familiarity(self, login: str, marker: str, last: float, *, shared: bool = True) -> None:
        # Gathered by the writer into one script call per batch (see _write). Learned from a
        # peer's report (shared=False), it is already in Redis: every node writing it again
        # would multiply the cluster's familiarity writes by its number of nodes.
        if shared:
            self._queue.put(("fam", (login, marker, repr(last))))
        if self.local is not None:
            self.local.put_familiarity(login, marker, last)

    def put_setting(self, key: str, value: str | None) -> None:
        self._queue.put(self._setting_op(key, value))
        if self.local is not None:
            self.local.put_setting(key, value)

    def purge_expired(self, now: float) -> None:
        # Redis expires list entries by itself; only the local mirror needs purging.
        purge = getattr(self.local, "purge_expired", None)
        if purge is not None:
            purge(now)

    # --- feeds (the Replicator's records) ----------------------------------------------
    def publish_change(self, record: dict[str, Any]) -> None:
        """Queue a change (its journal record) for the other nodes, in order with the store
        writes."""
        self._queue.put(orjson.dumps(ChangeWire(self.node_id, record)))

    def publish_report(self, record: list[Any]) -> None:
        """Buffer a report row (`wire.report_row`); sent with the next batch (the oldest
        dropped if full)."""
        reports = self._reports
        if len(reports) == reports.maxlen:
            self.reports_dropped += 1
        reports.append(record)

    # --- durability --------------------------------------------------------------------
    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued is in Redis. While Redis is down, or slower than two
        seconds, wait for the local mirror instead: the change is durable here and stays
        queued for Redis (the API must not hang a caller for the length of an outage)."""
        if self.up:
            done = threading.Event()
            self._queue.put(done)
            self._wake.set()
            if done.wait(min(timeout, 2.0)):
                return True
        if self.local is not None:
            return self.local.flush(timeout)
        return False

    def flush_future(self) -> Future[bool]:
        """`flush()` on a short-lived thread (it may wait up to two seconds for Redis)."""
        done: Future[bool] = Future()
        threading.Thread(
            target=lambda: done.set_result(self.flush()), name="rempart-redis-flush", daemon=True
        ).start()
        return done

    def close(self) -> None:
        self._queue.put(None)
        self._wake.set()
        self._writer.join(timeout=5 if self.up else 1)
        if self.local is not None:
            self.local.close()
        with contextlib.suppress(Exception):
            self.client.close()

    # --- the writer thread -------------------------------------------------------------
    def _run(self) -> None:
        backoff = Backoff()
        pending: list[_Op] = []  # taken from the queue, not yet written
        stop = False
        while True:
            if not pending and not self._reports:
                if stop:
                    return
                self._wake.wait(self.interval)
            elif self.up:
                self._wake.wait(self.interval)  # let a batch gather
            self._wake.clear()
            while True:
                try:
                    pending.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if None in pending:
                stop = True
                pending = [op for op in pending if op is not None]
            reports = self._take_reports()
            if self._seed_check and self.up:
                self._seed_check = False
                try:
                    self._seed_if_empty()
                except REDIS_ERRORS as exc:
                    self.mark(False, exc)
                except Exception:
                    log.exception("could not seed redis from the local mirror")
            if not pending and not reports:
                continue
            try:
                self._write(pending, reports)
            except Exception as exc:
                if not redis_away(exc):
                    # Dropped and counted; flush() waiters fall back to the local mirror.
                    self.dropped_batches += 1
                    log.exception("redis refused a batch of %d writes; dropped", len(pending))
                    pending = []
                    continue
                self.mark(False, exc)  # counted in `errors`; nothing is lost yet
                # Put the batch back before what arrived since; the bound drops the oldest.
                merged = reports + self._take_reports()
                self.reports_dropped += max(0, len(merged) - (self._reports.maxlen or 0))
                self._reports.extend(merged)
                if stop:
                    return  # shutting down with Redis away: the local mirror has the facts
                time.sleep(backoff.next())
                continue
            backoff.reset()
            self.mark(True)
            for op in pending:
                if isinstance(op, threading.Event):
                    op.set()
            pending = []

    def _take_reports(self) -> list[list[Any]]:
        reports = self._reports
        # popleft while the engine appends on the right: both are atomic, nothing is lost.
        return [reports.popleft() for _ in range(len(reports))]

    def _write(self, ops: list[_Op], reports: list[list[Any]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        changes = 0
        familiar: list[str] = []
        for op in ops:
            if isinstance(op, tuple) and op[0] == "fam":
                familiar += op[1]
            elif isinstance(op, bytes):
                pipe.xadd(
                    self.changes_stream,
                    {"d": op},
                    maxlen=CHANGES_MAXLEN,
                    approximate=True,
                )
                changes += 1
            elif isinstance(op, tuple):
                name, args = op
                getattr(pipe, name)(*args)
        # A success from a new network is the most frequent durable write: one script call per
        # 1,000 of them instead of two commands each (the writer's CPU goes to redis-py's
        # packing and parsing per command).
        ttl_ms = str(int(self.familiarity_ttl * 1000))
        for start in range(0, len(familiar), 3000):
            pipe.eval(_FAMILIAR_LUA, 0, self.prefix, ttl_ms, *familiar[start : start + 3000])
        # One stream entry per chunk of reports: XADD costs Redis far more than a longer value.
        for start in range(0, len(reports), 500):
            chunk = reports[start : start + 500]
            pipe.xadd(
                self.reports_stream,
                {"n": self.node_id, "v": ROWS_VERSION_FIELD, "r": orjson.dumps(chunk)},
                maxlen=self.stream_maxlen,
                approximate=True,
            )
        pipe.execute()
        self.changes_sent += changes
        self.reports_sent += len(reports)
        self.familiarity_sent += len(familiar) // 3
