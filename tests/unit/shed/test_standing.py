"""Good standing: the set of sources (pure), the feed (engine events to HAProxy's map), and the
generated configuration honouring a mark in real HAProxy only while it is unexpired."""

from __future__ import annotations

import asyncio
import http.client
import time
from pathlib import Path

import pytest

from rempart.config import ConfigError, from_table
from rempart.engine.engine import Engine
from rempart.engine.lists import ListEntry
from rempart.model import Attempt, ListName, Outcome, Protocol
from rempart.shed.config import parse_shed
from rempart.shed.edge_set import Net
from rempart.shed.feed_metrics import StandingFeedCollector
from rempart.shed.feed_settings import StandingSettings
from rempart.shed.runtime import HAProxyRuntime
from rempart.shed.standing_feed import StandingFeed, map_entries
from rempart.shed.standing_map import STANDING_MAP, read_standing
from rempart.shed.standing_set import StandingSet

from .conftest import RealHAProxy

pytestmark = pytest.mark.timeout(60)
T0 = 1_800_000_000.0  # a round epoch second (a multiple of 60)


# --- the set ---------------------------------------------------------------------------------
def test_a_success_gives_standing_until_ttl_after_the_last_one() -> None:
    standing = StandingSet(ttl=3600, max_logins=3, granularity=60)
    standing.success("192.0.2.1", "alice", T0 + 10)
    assert standing.desired() == {"192.0.2.1": T0 + 3660}  # rounded up to the minute
    assert standing.take_touched() == {"192.0.2.1"}
    standing.success("192.0.2.1", "alice", T0 + 20)  # same minute: nothing to push
    assert standing.take_touched() == set()
    standing.success("192.0.2.1", "alice", T0 + 1000)
    assert standing.get("192.0.2.1") == T0 + 4620 and standing.take_touched() == {"192.0.2.1"}
    assert standing.expire(T0 + 3611) == 0  # the first success aged out, the last did not
    assert "192.0.2.1" in standing
    assert standing.expire(T0 + 4600) == 1
    assert len(standing) == 0 and standing.take_touched() == {"192.0.2.1"}
    assert standing.next_deadline() is None


def test_an_address_shared_by_many_accounts_has_no_standing_until_they_age_out() -> None:
    standing = StandingSet(ttl=100, max_logins=2, granularity=1)
    standing.success("192.0.2.7", "a", T0)
    standing.success("192.0.2.7", "b", T0 + 50)
    assert "192.0.2.7" in standing
    standing.success("192.0.2.7", "c", T0 + 60)  # a third account: a CGNAT, an office
    assert "192.0.2.7" not in standing
    standing.success("192.0.2.7", "d", T0 + 61)  # memory stays bounded at max_logins + 1
    assert len(standing._logins["192.0.2.7"]) == 3
    standing.expire(T0 + 100)  # "a" ages out: two accounts again
    assert standing.get("192.0.2.7") == T0 + 160
    standing.expire(T0 + 160)
    assert len(standing) == 0 and not standing._logins


def test_addresses_are_normalised_and_networks_or_garbage_ignored() -> None:
    standing = StandingSet(ttl=100, max_logins=2, granularity=1)
    standing.success("::ffff:192.0.2.3", "a", T0)
    standing.success("2001:DB8::1", "a", T0)
    standing.success("192.0.2.0/24", "a", T0)
    standing.success("not an address", "a", T0)
    standing.success("", "a", T0)
    assert set(standing.desired()) == {"192.0.2.3", "2001:db8::1"}


def test_a_block_revokes_standing_and_memory_is_bounded() -> None:
    standing = StandingSet(ttl=100, max_logins=2, granularity=1, max_sources=3)
    for host in ("192.0.2.1", "192.0.2.2", "198.51.100.1", "198.51.100.2"):
        standing.success(host, "a", T0)
    assert set(standing.desired()) == {"192.0.2.1", "192.0.2.2", "198.51.100.1"}  # 3 at most
    standing.take_touched()
    assert standing.revoke(Net.parse("192.0.2.0/24")) == 2
    assert standing.revoke(Net.parse("198.51.100.1")) == 1
    assert standing.revoke(Net.parse("203.0.113.1")) == 0
    assert len(standing) == 0 and standing.take_touched() == {
        "192.0.2.1",
        "192.0.2.2",
        "198.51.100.1",
    }
    assert standing.expire(T0 + 1000) == 0  # nothing left to look at


def test_restored_marks_keep_their_end_and_expired_ones_are_dropped() -> None:
    standing = StandingSet(ttl=3600, max_logins=2, granularity=60)
    standing.restore("192.0.2.1", int(T0 + 600), T0)
    standing.restore("192.0.2.2", int(T0 - 1), T0)
    assert standing.desired() == {"192.0.2.1": T0 + 600}
    standing.restore("192.0.2.3", int(T0 + 600), T0)
    for login in ("a", "b"):  # the unknown login of a restored mark is not a third account
        standing.success("192.0.2.3", login, T0 + 1)
    assert standing.get("192.0.2.3") == T0 + 3660
    standing.expire(T0 + 600)
    assert set(standing.desired()) == {"192.0.2.3"}


def test_settings_name_the_bad_field() -> None:
    with pytest.raises(ConfigError, match=r"shed\.standing\.protocols.*'webb'"):
        from_table(StandingSettings, {"protocols": ["webb"]}, "shed.standing")
    with pytest.raises(ConfigError, match=r"shed\.standing\.max_logins"):
        from_table(StandingSettings, {"max_logins": 0}, "shed.standing")


# --- the feed --------------------------------------------------------------------------------
def shed_for(socket: str, map_dir: Path) -> object:
    return parse_shed(
        {
            "haproxy": {"runtime_socket": socket, "map_dir": str(map_dir)},
            "services": [{"name": "web", "upstream": "127.0.0.1:9", "probe_path": ""}],
        }
    )


def feed_for(engine: Engine, socket: str, map_dir: Path, **settings: object) -> StandingFeed:
    shed = shed_for(socket, map_dir)
    standing = from_table(StandingSettings, settings, "shed.standing")
    feed = StandingFeed(shed, standing, HAProxyRuntime(socket, 0.5))  # type: ignore[arg-type]
    engine.listeners.append(feed.listener)
    return feed


def report(engine: Engine, ip: str, login: str, success: bool, **kw: object) -> None:
    protocol = kw.pop("protocol", Protocol.WEB)
    attempt = Attempt(login=login, ip=ip, protocol=protocol)  # type: ignore[arg-type]
    engine.report(attempt, Outcome(success=success, **kw))  # type: ignore[arg-type]


def test_the_feed_counts_reported_successes_only_and_blocks_revoke(tmp_path: Path) -> None:
    engine = Engine.in_memory()
    feed = feed_for(engine, str(tmp_path / "absent.sock"), tmp_path, protocols=["web", "app"])
    report(engine, "192.0.2.1", "alice", True)
    report(engine, "192.0.2.2", "bob", False)  # a failure earns nothing
    report(engine, "192.0.2.3", "carol", True, policy_reject=True)  # refused by policy
    report(engine, "192.0.2.4", "dave", True, protocol=Protocol.IMAP)  # not a listed protocol
    report(engine, "192.0.2.5", "erin", True, protocol=Protocol.APP)
    asyncio.run(feed.sync_once(check=True))
    assert set(feed.standing.desired()) == {"192.0.2.1", "192.0.2.5"}
    assert feed.counters.failures == 1 and not feed.counters.runtime_ok
    assert set(read_standing(tmp_path)) == {"192.0.2.1", "192.0.2.5"}  # HAProxy loads it
    engine.add_entry(ListName.BLOCK, ListEntry("ip", "192.0.2.5", 0.0, "test", time.time()))
    asyncio.run(feed.sync_once())
    assert set(read_standing(tmp_path)) == {"192.0.2.1"} and feed.counters.revoked == 1
    # A restarted Rempart reads its marks back from the file.
    again = feed_for(Engine.in_memory(), str(tmp_path / "absent.sock"), tmp_path)
    assert again.standing.desired() == feed.standing.desired()
    metrics = {
        sample.name: sample.value
        for family in StandingFeedCollector(feed).collect()
        for sample in family.samples
    }
    assert metrics["rempart_haproxy_standing_sources"] == 1
    assert metrics["rempart_haproxy_standing_in_sync"] == 0
    assert metrics["rempart_haproxy_standing_earned_total"] == 2
    assert metrics["rempart_haproxy_standing_revoked_total"] == 1
    assert metrics["rempart_haproxy_standing_failures_total"] == 2


def get(port: int, source: str, headers: dict[str, str] | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
    try:
        conn.request("POST", "/login", headers={"Host": "bank", **(headers or {})})
        answer = conn.getresponse()
        answer.read()
        return answer.status
    finally:
        conn.close()


@pytest.mark.haproxy
def test_haproxy_honours_only_unexpired_marks_from_the_map(haproxy: RealHAProxy) -> None:
    hp = haproxy.settings.haproxy
    runtime = HAProxyRuntime(hp.runtime_socket)
    admission = str(Path(hp.map_dir) / "admission.map")
    standing_map = str(Path(hp.map_dir) / STANDING_MAP)
    # The control loop closed the login class entirely: every stranger is cut.
    asyncio.run(runtime.set_map(admission, {"web/critical": "0"}))
    port = haproxy.front_port
    assert get(port, "127.0.11.1") == 503
    # A leftover entry of an earlier run, and an expired one, both of which the feed removes.
    asyncio.run(runtime.command(f"add map {standing_map} 127.0.11.9 {int(time.time()) + 600}"))
    asyncio.run(runtime.command(f"add map {standing_map} 127.0.11.8 {int(time.time()) - 1}"))
    assert get(port, "127.0.11.9") == 200
    assert get(port, "127.0.11.8") == 503  # expired: HAProxy itself treats it as no mark

    engine = Engine.in_memory()
    feed = feed_for(engine, hp.runtime_socket, Path(hp.map_dir), ttl=3)
    report(engine, "127.0.11.1", "alice", True)
    asyncio.run(feed.sync_once(check=True))
    assert feed.counters.runtime_ok and feed.counters.resyncs == 1
    held = map_entries(asyncio.run(runtime.command(f"show map {standing_map}")))
    assert held == {k: str(v) for k, v in feed.standing.desired().items()}
    assert set(held) == {"127.0.11.1"}
    assert get(port, "127.0.11.1") == 200  # in good standing: not cut
    assert get(port, "127.0.11.9") == 503  # the leftover was removed
    # A later success moves the mark's end: HAProxy's entry is updated in place.
    before = held["127.0.11.1"]
    attempt = Attempt(login="alice", ip="127.0.11.1", protocol=Protocol.WEB)
    engine.report(attempt, Outcome(success=True), now=time.time() + 1.0)
    asyncio.run(feed.sync_once())
    held = map_entries(asyncio.run(runtime.command(f"show map {standing_map}")))
    assert held == {"127.0.11.1": str(feed.standing.get("127.0.11.1"))}
    assert int(held["127.0.11.1"]) > int(before)
    # Forged: a client naming a source in good standing is still a stranger.
    assert get(port, "127.0.11.2", {"X-Forwarded-For": "127.0.11.1"}) == 503
    # Many sources at once go in batches, all applied; a block takes one away.
    for i in range(400):
        report(engine, f"127.12.{i // 200}.{i % 200 + 1}", f"user{i}", True)
    engine.add_entry(ListName.BLOCK, ListEntry("ip", "127.12.1.5", 0.0, "test", time.time()))
    asyncio.run(feed.sync_once())
    held = map_entries(asyncio.run(runtime.command(f"show map {standing_map}")))
    assert len(held) == 400 and "127.12.1.5" not in held
    assert get(port, "127.12.1.4") == 200
    # Expiry: the feed removes the mark once the ttl has passed.
    time.sleep(4.2)
    asyncio.run(feed.sync_once())
    assert get(port, "127.0.11.1") == 503
    assert map_entries(asyncio.run(runtime.command(f"show map {standing_map}"))) == {}
