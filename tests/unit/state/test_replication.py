"""Nodes agreeing through a real Redis: shared counters, lists, posture and familiarity, no
echo, and what a node does while Redis is away (decides alone, buffers, catches up)."""

from __future__ import annotations

import importlib.util
import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rempart.config import from_mapping
from rempart.engine.engine import Engine
from rempart.engine.keys import net_keys
from rempart.engine.lists import ListEntry
from rempart.model import Action, Attempt, Outcome, Protocol
from rempart.state.sqlite import SqliteStore
from tests.conftest import need
from tests.redis_server import RedisServer, free_port

pytestmark = pytest.mark.redis
_prefixes = itertools.count()
SPRAYER = "203.0.113.50"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


class Node:
    """An engine with its Redis store and replicator, applied by hand (no event loop)."""

    def __init__(self, url: str, prefix: str, name: str, local: Path | None = None) -> None:
        from rempart.state.redis import RedisStore
        from rempart.state.replication import Replicator

        self.engine = Engine(from_mapping({"campaign": {"enabled": True}}))
        self.store = RedisStore(
            url,
            prefix=prefix,
            node_id=name,
            sync_interval=0.02,
            local=SqliteStore(local) if local else None,
        )
        self.replicator = Replicator(self.engine, self.store, backfill_seconds=3600)
        self.replicator.attach(None)

    def close(self) -> None:
        self.replicator.close()
        self.store.close()


@pytest.fixture
def nodes(redis_server: RedisServer, tmp_path: Path) -> Iterator[Callable[[str], Node]]:
    prefix = f"r{next(_prefixes)}:"
    made: list[Node] = []

    def make(name: str) -> Node:
        made.append(Node(redis_server.url, prefix, name, tmp_path / name))
        return made[-1]

    yield make
    for node in made:
        node.close()


def settle(*nodes: Node, until: Callable[[], bool], timeout: float = 3.0) -> float:
    """Apply what each node received until `until()` holds; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        for node in nodes:
            node.replicator.apply_pending()
        if until():
            return time.monotonic() - start
        time.sleep(0.01)
    raise AssertionError(f"not agreed after {timeout} s")


def fail(node: Node, login: str, ip: str = SPRAYER) -> None:
    node.engine.report(Attempt(login, ip, Protocol.IMAP, "0abc"), Outcome(False))


def verdict(node: Node, ip: str = SPRAYER, login: str = "victim@example.org") -> Action:
    return node.engine.decide(Attempt(login, ip, Protocol.IMAP, "0abc")).action


def test_a_spray_split_across_two_nodes_is_denied_on_the_combined_count(nodes) -> None:
    a, b = nodes("a"), nodes("b")
    for i in range(10):  # below spray_pattern's 12 distinct logins on each node alone
        fail(a, f"a{i}@example.org")
        fail(b, f"b{i}@example.org")
    assert verdict(a) is Action.ALLOW and verdict(b) is Action.ALLOW
    settle(a, b, until=lambda: verdict(a) is Action.DENY and verdict(b) is Action.DENY)
    codes = a.engine.decide(Attempt("x@example.org", SPRAYER, Protocol.IMAP)).codes
    assert "spray_pattern" in codes
    # Each node counts every report once: its own (not echoed back) plus the other's.
    assert a.replicator.reports_received == 10 and b.replicator.reports_received == 10
    assert a.engine.reports == [10, 0] and b.engine.reports == [10, 0]  # per-node metrics
    key = "i" + SPRAYER
    for node in (a, b):
        slot, rings = node.engine.states.get(key), node.engine.rings
        assert rings.total(slot, 1, 12, rings.epochs[slot]) == 20


def test_a_counter_reset_on_one_node_resets_the_others(nodes) -> None:
    a, b = nodes("a"), nodes("b")
    for i in range(14):
        fail(a, f"r{i}@example.org")
    settle(a, b, until=lambda: verdict(b) is Action.DENY)
    a.engine.blocklist.remove("ip", SPRAYER)  # the spray rule's automatic block, if any
    b.engine.blocklist.remove("ip", SPRAYER)
    a.engine.reset(ip=SPRAYER)
    settle(a, b, until=lambda: b.engine.states.get("i" + SPRAYER) < 0)
    assert verdict(b) is Action.ALLOW


def test_lists_posture_and_familiarity_reach_the_other_node(nodes) -> None:
    a, b = nodes("a"), nodes("b")
    now = time.time()
    a.engine.add_entry("block", ListEntry("ip", "198.51.100.7", now + 600, "abuse", now))
    a.engine.add_entry("allow", ListEntry("login", "ceo@example.org", 0.0, "vip", now))
    a.engine.set_posture(Protocol.POP3, "strict", "alice", "botnet", ttl=3600)
    a.engine.report(
        Attempt("carol@example.org", "192.0.2.10", Protocol.IMAP, "0abc"), Outcome(True)
    )
    carol_net = "n" + net_keys("192.0.2.10").subnet
    took = settle(
        a,
        b,
        until=lambda: (
            verdict(b, "198.51.100.7") is Action.DENY
            and b.engine.posture_of(Protocol.POP3) == "strict"
            and b.engine.familiarity.familiar("carol@example.org", carol_net, time.time())
            and len(b.engine.allowlist) == 1
        ),
    )
    assert took < 2.0
    # The operator's posture holds on B too: B's detector does not lower it after calm.
    assert b.engine.campaign.state("pop3").manual_until == pytest.approx(now + 3600, abs=5)
    a.engine.remove_entry("block", "ip", "198.51.100.7")
    settle(a, b, until=lambda: verdict(b, "198.51.100.7") is Action.ALLOW)
    # B applied A's changes without publishing them again.
    assert b.store.changes_sent == 0
    assert b.replicator.changes_received == 4  # two adds, a posture, a removal


def test_familiarity_learned_from_a_peer_goes_to_the_local_mirror_not_back_to_redis(
    nodes, tmp_path: Path
) -> None:
    from rempart.state.writer import StateWriter

    a, b = nodes("a"), nodes("b")
    for node in (a, b):
        node.engine.listeners.append(StateWriter(node.store).listener)
    a.engine.report(Attempt("dave@example.org", "192.0.2.20", Protocol.IMAP, "0abc"), Outcome(True))
    dave_net = "n" + net_keys("192.0.2.20").subnet
    settle(
        a,
        b,
        until=lambda: b.engine.familiarity.familiar("dave@example.org", dave_net, time.time()),
    )
    assert a.store.flush() and b.store.flush()
    # A wrote it to Redis once; B, which learned it from A's report, kept it in its local
    # mirror (a restart without Redis still knows it) and did not write it to Redis again.
    assert a.store.familiarity_sent == 1
    assert b.store.familiarity_sent == 0
    assert b.store.local is not None and b.store.local.flush()
    mirrored = {(login, marker) for login, marker, _ in b.store.local.load_familiarity()}
    assert ("dave@example.org", dave_net) in mirrored


def test_a_starting_node_loads_shared_facts_and_warms_its_counters(nodes) -> None:
    a = nodes("a")
    now = time.time()
    a.engine.add_entry("block", ListEntry("netmask", "2001:db8:1::/64", 0.0, "rotation", now))
    for i in range(14):
        fail(a, f"u{i}@example.org")
    # What `Service._persist` does for list changes.
    a.store.put_entry("block", ListEntry("netmask", "2001:db8:1::/64", 0.0, "rotation", now))
    assert a.store.flush()
    time.sleep(0.1)  # the reports' batch
    c = nodes("c")
    assert [e.value for _, e in c.store.load_entries()] == ["2001:db8:1::/64"]
    settle(c, until=lambda: verdict(c) is Action.DENY)  # from the stream's history


def test_a_node_keeps_deciding_while_redis_is_away_and_catches_up(
    nodes, redis_server: RedisServer
) -> None:
    a, b = nodes("a"), nodes("b")
    settle(a, b, until=lambda: a.store.up and b.store.up)
    before = ListEntry("login", "mallory@example.org", 0.0, "before the outage", time.time())
    a.engine.add_entry("block", before)
    a.store.put_entry("block", before)  # what Service._persist does
    assert a.store.flush()
    settle(a, b, until=lambda: len(b.engine.blocklist) == 1)
    redis_server.stop()
    try:
        settle(a, b, until=lambda: not a.store.up and not b.store.up)
        for i in range(14):
            fail(a, f"d{i}@example.org")
        # A decides from its own counters, at once.
        start = time.monotonic()
        assert verdict(a) is Action.DENY
        assert time.monotonic() - start < 0.5  # no connection attempt (timeouts are 1-2 s)
        assert verdict(b) is Action.ALLOW
        # A list change is confirmed durable by the local mirror without waiting for Redis.
        now = time.time()
        a.store.put_entry("block", ListEntry("ip", "192.0.2.99", 0.0, "during outage", now))
        start = time.monotonic()
        assert a.store.flush()
        assert time.monotonic() - start < 3.0
        assert a.replicator.status()["up"] is False
    finally:
        redis_server.start()  # same port: the nodes reconnect by themselves
    settle(a, b, until=lambda: verdict(b) is Action.DENY, timeout=10.0)
    assert a.store.up and b.store.up
    assert a.store.reports_dropped == 0
    # Redis came back empty (no persistence): the nodes seeded it again from their mirrors.
    expected = {"192.0.2.99", "mallory@example.org"}
    settle(until=lambda: {e.value for _, e in b.store.load_entries()} == expected)


def test_a_node_starting_while_redis_is_down_uses_its_local_mirror(tmp_path: Path) -> None:
    need("redis", importlib.util.find_spec("redis") is not None, "pip install redis")
    from rempart.state.redis import RedisStore

    now = time.time()
    local = SqliteStore(tmp_path)
    local.put_entry("block", ListEntry("ip", "192.0.2.7", 0.0, "known here", now))
    local.put_setting("posture.imap", "guarded")
    local.put_familiarity("alice@example.org", "n4:192.0.2", now)
    assert local.flush()
    start = time.monotonic()
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    store = RedisStore(dead, local=local, sync_interval=0.02)
    try:
        assert [e.value for _, e in store.load_entries()] == ["192.0.2.7"]
        assert store.get_setting("posture.imap") == "guarded"
        assert [m for _, m, _ in store.load_familiarity()] == ["n4:192.0.2"]
        assert time.monotonic() - start < 2.0
        assert store.up is False and "Connection" in store.last_error
    finally:
        store.close()


def test_a_write_redis_refuses_is_dropped_and_the_writer_goes_on(redis_server: RedisServer) -> None:
    import redis

    from rempart.state.redis import RedisStore

    prefix = f"w{next(_prefixes)}:"
    redis.Redis.from_url(redis_server.url).set(prefix + "settings", "not a hash")
    store = RedisStore(redis_server.url, prefix=prefix, sync_interval=0.02)
    try:
        store.put_setting("posture.imap", "strict")  # WRONGTYPE: refused, whatever the retries
        assert not store.flush(timeout=1.0)  # never confirmed durable (and no local mirror)
        assert store.dropped_batches == 1 and store.write_errors == 1
        now = time.time()
        store.put_entry("block", ListEntry("ip", "192.0.2.8", 0.0, "after", now))
        assert store.flush()
        assert [e.value for _, e in store.load_entries()] == ["192.0.2.8"]
        assert store.up
    finally:
        store.close()


def test_the_other_nodes_list_changes_reach_this_nodes_nftables_sync(nodes) -> None:
    from rempart.firewall.ruleset import SetName
    from rempart.firewall.settings import NftSettings
    from rempart.firewall.sync import NftSync

    a, b = nodes("a"), nodes("b")
    sync = NftSync(NftSettings(), lambda: [])  # B's sync, not run: its desired sets are read
    b.replicator.peer_listeners.append(sync.listener)
    now = time.time()
    addresses = SetName("block", 4, False)
    a.engine.add_entry("block", ListEntry("ip", "198.51.100.7", now + 600, "abuse", now))
    settle(a, b, until=lambda: sync.wanted.target(addresses, "198.51.100.7", now) is not None)
    a.engine.remove_entry("block", "ip", "198.51.100.7")
    settle(a, b, until=lambda: sync.wanted.target(addresses, "198.51.100.7", now) is None)


def test_unreadable_and_newer_report_entries_are_skipped_and_counted(nodes) -> None:
    """An entry a node cannot read (a newer node's wire version, bad JSON, a malformed row)
    is skipped and counted in `apply_errors`; the entries around it are applied."""
    import orjson

    a, b = nodes("a"), nodes("b")
    stream = b.store.reports_stream
    row = ["now", "x@example.org", SPRAYER, "imap", "", "", "", False, False, False, "", False]
    client = b.store.client
    client.xadd(stream, {"n": "c", "v": "3", "r": orjson.dumps([row])})
    client.xadd(stream, {"n": "c", "v": "2", "r": b"[not json"})
    client.xadd(stream, {"n": "c", "v": "2", "r": orjson.dumps([row])})  # "now" is no time
    client.xadd(stream, {"n": "c"})  # no reports at all
    for i in range(14):
        fail(a, f"s{i}@example.org")
    settle(b, until=lambda: verdict(b) is Action.DENY)
    assert b.replicator.reports_received == 14
    assert b.replicator.apply_errors == 4
    assert b.replicator.status()["apply_errors"] == 4
