"""Two `rempart serve` nodes sharing one real Redis: a spray split across them is denied on
the combined count, lists and posture set on one are enforced on the other, and both keep
answering (and say so in /metrics) while Redis is away, then reconnect."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.rig import RempartProcess
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis

SPRAYER = "203.0.113.66"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[RedisServer, RempartProcess, RempartProcess]]:
    redis_server = RedisServer(tmp_path / "redis").start()
    config = (
        "[state]\n"
        'backend = "redis"\n'
        f'redis_url = "{redis_server.url}"\n'
        "sync_interval = 0.05\n"
        "[journal]\n"
        "enabled = false\n"
    )
    a = RempartProcess(tmp_path / "node-a", config)
    b = RempartProcess(tmp_path / "node-b", config)
    try:
        a.start()
        b.start()
        yield redis_server, a, b
    finally:
        a.stop()
        b.stop()
        redis_server.stop()


def eventually(check: Callable[[], bool], timeout: float = 3.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s")


def allow(node: RempartProcess, ip: str = SPRAYER, login: str = "victim@example.org") -> dict:
    status, body = node.command(
        "allow", {"login": login, "remote": ip, "pwhash": "0abc", "protocol": "imap"}
    )
    assert status == 200, body
    return body


def report_failure(node: RempartProcess, login: str, ip: str = SPRAYER) -> None:
    body = {"login": login, "remote": ip, "pwhash": "0abc", "protocol": "imap"}
    status, _ = node.command("report", {**body, "success": False, "policy_reject": False})
    assert status == 200


def redis_up(node: RempartProcess) -> float:
    status, text = node.request("GET", "/metrics", password=None)
    assert status == 200
    match = re.search(r"^rempart_redis_up (\S+)$", text, re.M)
    assert match, "rempart_redis_up missing from /metrics"
    return float(match.group(1))


def test_two_nodes_agree_through_redis(cluster) -> None:
    redis_server, a, b = cluster
    eventually(lambda: redis_up(a) == 1 and redis_up(b) == 1)

    # A spray from one IP, split across the nodes: neither reaches the threshold alone.
    for i in range(10):
        report_failure(a, f"a{i}@example.org")
        report_failure(b, f"b{i}@example.org")
    eventually(lambda: allow(a)["status"] == -1 and allow(b)["status"] == -1)
    assert "spray_pattern" in allow(b)["r_attrs"]["reasons"]

    # A block entry added on A is enforced on B.
    status, _ = a.command(
        "addBLEntry", {"ip": "198.51.100.23", "expire_secs": 3600, "reason": "abuse desk"}
    )
    assert status == 200
    took = eventually(lambda: allow(b, "198.51.100.23")["status"] == -1)
    assert took < 2.0
    _, listed = b.command("getBL")
    # (with the sprayer, which the spray rule blocked for a while)
    assert "198.51.100.23/32" in [e.get("ip") for e in listed["bl_entries"]]

    # Posture set on A shows on B.
    status, _ = a.request(
        "POST", "/v1/posture", {"protocol": "pop3", "level": "strict", "reason": "botnet"}
    )
    assert status == 200
    eventually(lambda: b.request("GET", "/v1/posture")[1]["posture"]["pop3"]["level"] == "strict")
    # The whole record travels: who set it, why, and the hold with its end.
    status, _ = a.request(
        "POST",
        "/v1/posture",
        {"protocol": "smtp", "level": "guarded", "reason": "spray", "ttl": 3600, "by": "ann"},
    )
    assert status == 200
    eventually(lambda: b.request("GET", "/v1/posture")[1]["posture"]["smtp"]["held"] is True)
    smtp = b.request("GET", "/v1/posture")[1]["posture"]["smtp"]
    assert smtp["set_by"] == "ann" and smtp["reason"] == "spray" and smtp["until"] is not None
    status, body = a.request(
        "POST",
        "/v1/posture",
        {"protocol": "smtp", "level": "guarded", "reason": "x", "ttl": 60, "hold": False},
    )
    assert status == 400 and "hold" in str(body)

    _, stats = b.command("stats")
    assert stats["redis"]["up"] is True
    assert stats["redis"]["reports_received"] >= 10
    assert len(stats["redis"]["peers"]) == 1

    # Redis goes away: both nodes still decide from their own state and say Redis is down.
    redis_server.stop()
    eventually(lambda: redis_up(a) == 0 and redis_up(b) == 0)
    for node in (a, b):
        assert allow(node)["status"] == -1
        assert allow(node, "198.51.100.23")["status"] == -1
        assert allow(node, "192.0.2.1", "someone@example.org")["status"] == 0
        _, stats = node.command("stats")
        assert stats["redis"]["up"] is False
    # A list change during the outage answers at once (durable locally, queued for Redis).
    start = time.monotonic()
    status, _ = a.command(
        "addBLEntry", {"ip": "198.51.100.24", "expire_secs": 3600, "reason": "during outage"}
    )
    assert status == 200
    assert time.monotonic() - start < 3.0

    # Redis returns (empty: no persistence in this test): they reconnect and resume.
    redis_server.start()
    eventually(lambda: redis_up(a) == 1 and redis_up(b) == 1, timeout=10.0)
    eventually(lambda: allow(b, "198.51.100.24")["status"] == -1, timeout=5.0)
    # It came back empty: a node seeded it again with the lists it knew.
    import redis

    shared = redis.Redis.from_url(redis_server.url)
    eventually(lambda: shared.exists("rempart:list:block:ip:198.51.100.23") == 1)
    status, _ = b.command(
        "addBLEntry", {"ip": "198.51.100.25", "expire_secs": 3600, "reason": "after"}
    )
    assert status == 200
    eventually(lambda: allow(a, "198.51.100.25")["status"] == -1)
