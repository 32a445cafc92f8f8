"""The block-list feed: engine events and the lists themselves to HAProxy's blocklist.map,
resync against a real HAProxy, nothing lost while its runtime socket is unreachable."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from rempart.engine.engine import Engine
from rempart.engine.lists import ListEntry
from rempart.model import ListName
from rempart.shed.blocklist_map import BLOCKLIST_MAP
from rempart.shed.config import parse_shed
from rempart.shed.feed_settings import HostileFeedSettings
from rempart.shed.hostile_feed import HostileFeed, map_keys
from rempart.shed.runtime import HAProxyRuntime

from .conftest import RealHAProxy
from .test_haproxy import get

pytestmark = pytest.mark.timeout(60)


def entry(kind: str, value: str, expires: float = 0.0) -> ListEntry:
    return ListEntry(kind, value, expires, "test", time.time())


def feed_for(engine: Engine, socket: str, map_dir: Path) -> HostileFeed:
    shed = parse_shed(
        {
            "haproxy": {"runtime_socket": socket, "map_dir": str(map_dir)},
            "services": [{"name": "web", "upstream": "127.0.0.1:9", "probe_path": ""}],
        }
    )
    feed = HostileFeed(engine, shed, HostileFeedSettings(), HAProxyRuntime(socket, 0.5))
    engine.listeners.append(feed.listener)
    return feed


def test_unreachable_haproxy_loses_nothing_and_the_file_follows_the_lists(tmp_path: Path) -> None:
    engine = Engine.in_memory()
    engine.add_entry(ListName.BLOCK, entry("ip", "192.0.2.1"))  # before the feed: loaded
    feed = feed_for(engine, str(tmp_path / "absent.sock"), tmp_path)
    engine.add_entry(ListName.BLOCK, entry("netmask", "198.51.100.0/24"))  # an event
    engine.add_entry(ListName.BLOCK, entry("login", "alice"))  # not a source
    asyncio.run(feed.sync_once(check=True))
    assert feed.counters.failures == 1 and not feed.counters.runtime_ok
    text = (tmp_path / BLOCKLIST_MAP).read_text()
    assert text == "192.0.2.1 1\n198.51.100.0/24 1\n"  # a (re)started HAProxy loads it
    engine.remove_entry(ListName.BLOCK, "ip", "192.0.2.1")
    asyncio.run(feed.sync_once())
    assert feed.counters.failures == 2
    assert (tmp_path / BLOCKLIST_MAP).read_text() == "198.51.100.0/24 1\n"


def test_reconcile_picks_up_changes_no_event_announced(tmp_path: Path) -> None:
    engine = Engine.in_memory()
    feed = feed_for(engine, str(tmp_path / "absent.sock"), tmp_path)
    engine.apply_peer_list_add(ListName.BLOCK, entry("ip", "192.0.2.9"))  # a Redis peer's
    assert "192.0.2.9" not in feed.edge
    assert asyncio.run(feed.reconcile()) == 1
    assert feed.edge.desired() == {"192.0.2.9"}
    assert feed.edge.take_touched() == {"192.0.2.9"}  # pushed at the next exchange
    assert asyncio.run(feed.reconcile()) == 0


@pytest.mark.haproxy
def test_resync_makes_haproxy_hold_exactly_the_desired_sources(haproxy: RealHAProxy) -> None:
    hp = haproxy.settings.haproxy
    map_file = str(Path(hp.map_dir) / BLOCKLIST_MAP)
    runtime = HAProxyRuntime(hp.runtime_socket)
    # Left over from an earlier run: a source no longer blocked.
    assert asyncio.run(runtime.command(f"add map {map_file} 127.0.9.1 1")).strip() == ""
    assert get(haproxy.front_port, "/x", source="127.0.9.1")[0] == 403
    engine = Engine.in_memory()
    engine.add_entry(ListName.BLOCK, entry("ip", "127.0.9.2"))
    engine.add_entry(ListName.BLOCK, entry("netmask", "127.0.10.0/24"))
    engine.add_entry(ListName.ALLOW, entry("ip", "127.0.10.7"))
    feed = feed_for(engine, hp.runtime_socket, Path(hp.map_dir))
    asyncio.run(feed.sync_once(check=True))
    assert feed.counters.runtime_ok and feed.counters.resyncs == 1
    held = map_keys(asyncio.run(runtime.command(f"show map {map_file}")))
    assert held == feed.edge.desired() and "127.0.9.1" not in held
    port = haproxy.front_port
    assert get(port, "/x", source="127.0.9.1")[0] == 200  # lifted
    assert get(port, "/x", source="127.0.9.2")[0] == 403
    assert get(port, "/x", source="127.0.10.6")[0] == 403
    assert get(port, "/x", source="127.0.10.7")[0] == 200  # allowed inside a blocked network
    # Many changes at once go in batches, all applied.
    for i in range(600):
        engine.add_entry(ListName.BLOCK, entry("ip", f"127.1.{i // 250}.{i % 250 + 1}"))
    asyncio.run(feed.sync_once())
    held = map_keys(asyncio.run(runtime.command(f"show map {map_file}")))
    assert len(held) == len(feed.edge.desired()) and held == feed.edge.desired()
    assert get(port, "/x", source="127.1.2.99")[0] == 403
