"""The Store suite, run against every durable store: embedded SQLite and Redis (a real
redis-server; its absence skips here and fails in CI, REMPART_REQUIRE_REDIS=1)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rempart.engine.lists import ListEntry
from rempart.state.sqlite import SqliteStore
from rempart.state.store import Store
from tests.redis_server import RedisServer

OpenStore = Callable[[], Store]
_prefixes = itertools.count()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "redis"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """Opens a store over the same durable state each time it is called (a node restarting)."""
    opened: list[Store] = []
    if request.param == "sqlite":

        def factory() -> Store:
            opened.append(SqliteStore(tmp_path))
            return opened[-1]

    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        from rempart.state.redis import RedisStore

        prefix = f"t{next(_prefixes)}:"  # a fresh namespace per test

        def factory() -> Store:
            opened.append(RedisStore(server.url, prefix=prefix, sync_interval=0.01))
            return opened[-1]

    yield factory
    for store in opened:
        store.close()


def entries(store: Store) -> dict[tuple[str, str, str], ListEntry]:
    return {(which, e.kind, e.value): e for which, e in store.load_entries()}


def test_list_entries_survive_a_restart(open_store: OpenStore) -> None:
    now = time.time()
    store = open_store()
    block = ListEntry("ip", "203.0.113.7", now + 3600, "stuffing", now)
    allow = ListEntry("netmask", "2001:db8::/64", 0.0, "partner: fetcher", now)
    pair = ListEntry("ip_login", "2001:db8::1|alice@example.org", 0.0, "", now)
    store.put_entry("block", block)
    store.put_entry("allow", allow)
    store.put_entry("block", pair)
    assert store.flush()
    store.close()
    found = entries(open_store())
    assert found[("block", "ip", "203.0.113.7")] == block
    assert found[("allow", "netmask", "2001:db8::/64")] == allow
    assert found[("block", "ip_login", "2001:db8::1|alice@example.org")] == pair
    assert len(found) == 3


def test_replacing_and_deleting_entries(open_store: OpenStore) -> None:
    now = time.time()
    store = open_store()
    store.put_entry("block", ListEntry("login", "bob@example.org", now + 60, "first", now))
    store.put_entry("block", ListEntry("login", "bob@example.org", 0.0, "second", now + 1))
    store.put_entry("block", ListEntry("ip", "198.51.100.1", 0.0, "gone soon", now))
    store.delete_entry("block", "ip", "198.51.100.1")
    store.delete_entry("allow", "ip", "198.51.100.9")  # absent: nothing happens
    assert store.flush()
    found = entries(open_store())
    assert list(found) == [("block", "login", "bob@example.org")]
    entry = found[("block", "login", "bob@example.org")]
    assert (entry.reason, entry.expires) == ("second", 0.0)


def test_expired_entries_are_not_loaded(open_store: OpenStore) -> None:
    now = time.time()
    store = open_store()
    store.put_entry("block", ListEntry("ip", "192.0.2.1", now - 5, "expired", now - 60))
    store.put_entry("block", ListEntry("ip", "192.0.2.2", now + 60, "live", now))
    store.purge_expired(now)  # type: ignore[attr-defined]
    assert store.flush()
    assert set(entries(open_store())) == {("block", "ip", "192.0.2.2")}


def test_familiarity_keeps_the_latest_success(open_store: OpenStore) -> None:
    now = time.time()
    store = open_store()
    store.put_familiarity("alice@example.org", "n192.0.2.0/24", now - 100)
    store.put_familiarity("alice@example.org", "n192.0.2.0/24", now - 10)
    store.put_familiarity("alice@example.org", "dphone", now - 50)
    store.put_familiarity("bob@example.org", "n2001:db8::/64", now)
    assert store.flush()
    found = sorted(open_store().load_familiarity())
    assert found == sorted(
        [
            ("alice@example.org", "n192.0.2.0/24", pytest.approx(now - 10)),
            ("alice@example.org", "dphone", pytest.approx(now - 50)),
            ("bob@example.org", "n2001:db8::/64", pytest.approx(now)),
        ]
    )


def test_settings(open_store: OpenStore) -> None:
    store = open_store()
    assert store.get_setting("posture.imap") is None
    store.put_setting("posture.imap", "strict")
    store.put_setting("posture.pop3", "guarded")
    store.put_setting("posture.pop3", None)
    assert store.flush()
    reopened = open_store()
    assert reopened.get_setting("posture.imap") == "strict"
    assert reopened.get_setting("posture.pop3") is None


def test_flush_waits_for_every_queued_write(open_store: OpenStore) -> None:
    store = open_store()
    now = time.time()
    for i in range(2000):
        store.put_familiarity(f"user{i}@example.org", "n10.0.0.0/24", now)
    assert store.flush()
    assert sum(1 for _ in open_store().load_familiarity()) == 2000


def test_a_large_batch_keeps_the_last_write_of_each_key(open_store: OpenStore) -> None:
    """Written in multi-row chunks (SQLite): order holds within and across chunks."""
    store = open_store()
    now = time.time()
    for i in range(700):
        store.put_familiarity(f"user{i % 300}@example.org", "n10.0.0.0/24", now - 700 + i)
    assert store.flush()
    found = {login: last for login, _, last in open_store().load_familiarity()}
    assert len(found) == 300
    assert all(
        found[f"user{k}@example.org"] == pytest.approx(now - 700 + 600 + k)
        if k < 100
        else found[f"user{k}@example.org"] == pytest.approx(now - 700 + 300 + k)
        for k in range(300)
    )


def test_posture_records_survive_a_restart_with_their_hold(open_store: OpenStore) -> None:
    from rempart.engine.engine import Engine
    from rempart.model import Posture, Protocol
    from rempart.state.writer import StateWriter

    now = time.time()
    store = open_store()
    engine = Engine.in_memory()
    engine.listeners.append(StateWriter(store).listener)
    engine.set_posture(Protocol.IMAP, "strict", "console:ann", "wave", now=now, ttl=3600)
    engine.set_posture(Protocol.WEB, "guarded", "api", "watch", now=now, hold=False)
    engine.set_posture(Protocol.POP3, "closed", "api", "gone", now=now)
    engine.set_posture(Protocol.POP3, "normal", "api", "back", now=now)  # hands back
    assert store.flush()
    store.close()
    restarted = Engine.in_memory()
    StateWriter(open_store()).restore(restarted, now + 5)
    imap = restarted.posture_record(Protocol.IMAP)
    assert imap == engine.posture_record(Protocol.IMAP)
    assert imap.held and imap.until == now + 3600 and imap.by == "console:ann"
    assert restarted.campaign is not None
    assert restarted.campaign.state("imap").manual_until == now + 3600
    web = restarted.posture_record(Protocol.WEB)
    assert web.level is Posture.GUARDED and not web.held
    pop3 = restarted.posture_record(Protocol.POP3)
    assert pop3.level is Posture.NORMAL and not pop3.held and pop3.by == "api"


def test_a_bare_or_corrupt_stored_posture_restores_safely(open_store: OpenStore) -> None:
    from rempart.engine.engine import Engine
    from rempart.engine.posture import PostureSource
    from rempart.model import Posture, Protocol
    from rempart.state.writer import StateWriter

    store = open_store()
    store.put_setting("posture.imap", "strict")  # written before postures had records
    store.put_setting("posture.smtp", "{not json")
    assert store.flush()
    engine = Engine.in_memory()
    StateWriter(store).restore(engine, time.time())
    imap = engine.posture_record(Protocol.IMAP)
    assert imap.level is Posture.STRICT and imap.source is PostureSource.DETECTOR
    assert engine.posture_of(Protocol.SMTP) is Posture.NORMAL


def test_a_late_write_does_not_bring_back_an_entry_another_node_removed(
    redis_server: RedisServer,
) -> None:
    """Node A blocks an address; node B, which got the block, lifts it; A's write of the block
    reaches Redis only afterwards (its queue, or Redis away from A for a while). Every node
    loads its lists from Redis at start: the lifted block must not come back. A block made
    after the removal is written as usual."""
    from rempart.state.redis import RedisStore

    prefix = f"t{next(_prefixes)}:"
    a = RedisStore(redis_server.url, prefix=prefix, sync_interval=0.01, node_id="a")
    b = RedisStore(redis_server.url, prefix=prefix, sync_interval=0.01, node_id="b")
    try:
        made = time.time() - 5
        block = ListEntry("ip", "203.0.113.50", 0.0, "policy: stuffing", made)
        b.put_entry("block", block)
        assert b.flush()
        b.delete_entry("block", "ip", "203.0.113.50")
        assert b.flush()
        a.put_entry("block", block)  # the late copy, made before the removal
        assert a.flush()
        assert ("block", "ip", "203.0.113.50") not in entries(a)
        again = ListEntry("ip", "203.0.113.50", 0.0, "operator: again", time.time() + 1)
        a.put_entry("block", again)
        assert a.flush()
        assert entries(b)[("block", "ip", "203.0.113.50")] == again
        # A later removal is remembered over the earlier one; an older one does not undo it.
        b.delete_entry("block", "ip", "203.0.113.50")
        assert b.flush()
        assert ("block", "ip", "203.0.113.50") not in entries(a)
    finally:
        a.close()
        b.close()


def test_sqlite_familiarity_log_is_merged_into_the_keyed_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Familiarity is appended to a log (sequential pages) and merged in bulk: read the same
    before the merge, after the writer's merge at its threshold, and after the merge at open."""
    import sqlite3

    import rempart.state.sqlite as sqlite_module

    monkeypatch.setattr(sqlite_module, "_COMPACT_ROWS", 500)
    now = time.time()

    def rows(table: str) -> int:
        with sqlite3.connect(tmp_path / "state.sqlite3") as db:
            return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    store = SqliteStore(tmp_path)
    for i in range(300):  # below the threshold: all in the log, read through it
        store.put_familiarity(f"user{i % 100}@example.org", "n10.0.0.0/24", now - 300 + i)
    store.put_familiarity("user5@example.org", "n10.0.0.0/24", now - 1000)  # older: ignored
    assert store.flush()
    assert (rows("familiarity"), rows("familiarity_log")) == (0, 301)
    found = {login: last for login, _, last in store.load_familiarity()}
    assert len(found) == 100 and found["user5@example.org"] == pytest.approx(now - 300 + 205)
    for i in range(300):  # past the threshold: the writer merges after its commit
        store.put_familiarity(f"user{i}@example.org", "n10.0.0.0/24", now + i)
    assert store.flush()
    assert store.flush()  # the merge follows the commit that woke the first waiter
    assert (rows("familiarity"), rows("familiarity_log")) == (300, 0)
    store.put_familiarity("late@example.org", "dphone", now)
    store.close()
    reopened = SqliteStore(tmp_path)  # merged at open
    assert (rows("familiarity"), rows("familiarity_log")) == (301, 0)
    found = {(login, marker): last for login, marker, last in reopened.load_familiarity()}
    assert len(found) == 301
    assert found[("user5@example.org", "n10.0.0.0/24")] == pytest.approx(now + 5)
    assert found[("late@example.org", "dphone")] == pytest.approx(now)
    reopened.close()
