"""A real `rempart serve` keeps each protocol's posture record across a restart: level, who set
it (detector or operator), why, since and until when, and whether an operator holds it. After
SIGTERM and after kill -9 (every change was acknowledged, so it is on disk) the records are the
same; a hold whose TTL ran out while the server was down is handed back to the detector at
start; the detector's learned baselines come back too. Over a real redis-server, two nodes
agree on postures, holds and TTLs after either restarts, including a change made while one
was down."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.rig import RempartProcess
from tests.integration.test_detector_persistence import baselines, feed, saved_state, settle

CONFIG = """
[campaign]
tick_seconds = 1.0
save_seconds = 1.0
"""
RECORD = ("level", "source", "set_by", "reason", "since", "until", "held")


def postures(server: RempartProcess) -> dict[str, dict[str, Any]]:
    """Each protocol's posture record as `GET /v1/posture` gives it (without live figures)."""
    status, doc = server.request("GET", "/v1/posture")
    assert status == 200, doc
    return {p: {k: v[k] for k in RECORD} for p, v in doc["posture"].items()}


def set_posture(server: RempartProcess, **body: Any) -> dict[str, Any]:
    status, doc = server.request("POST", "/v1/posture", body)
    assert status == 200, doc
    return doc["posture"]


def learned_baselines(data_dir: Path, learned: dict[str, Any]) -> dict[str, Any]:
    """The saved baselines of the protocols that had learned something (a posture set on
    another protocol since gives it a detector state of its own, on the priors)."""
    saved = baselines(saved_state(data_dir))
    return {p: saved.get(p) for p in baselines(learned)}


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s")


def operator_postures(server: RempartProcess) -> None:
    """One posture held with a TTL, one held until changed, one handed back to the detector."""
    imap = set_posture(
        server, protocol="imap", level="strict", reason="stuffing wave", by="ann", ttl="2h"
    )
    assert imap["held"] is True and imap["until"] is not None
    pop3 = set_posture(
        server, protocol="pop3", level="closed", reason="botnet", by="bob", hold=True
    )
    assert pop3["held"] is True and pop3["until"] is None
    smtp = set_posture(
        server, protocol="smtp", level="guarded", reason="watching", by="cid", hold=False
    )
    assert smtp["held"] is False and smtp["until"] is None


def test_postures_and_baselines_survive_sigterm_and_kill_9(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = RempartProcess(data, CONFIG).start()
    try:
        feed(server, 8)  # something learned, so the baselines are not the priors
        operator_postures(server)
        before = postures(server)
        assert before["imap"]["source"] == "operator" and before["web"]["source"] == "detector"
        learned = settle(data, server)

        server.stop()  # SIGTERM
        server.start()
        assert postures(server) == before
        assert learned_baselines(data, learned) == baselines(learned)

        # An acknowledged change, then kill -9 at once: it was durable before the answer.
        set_posture(server, protocol="app", level="strict", reason="app spray", by="dee", ttl=1800)
        set_posture(server, protocol="smtp", level="normal", reason="calm", by="cid", hold=False)
        acknowledged = postures(server)
        assert acknowledged["app"]["held"] is True and acknowledged["smtp"]["level"] == "normal"
        server.kill()
        server.start()
        assert postures(server) == acknowledged
        time.sleep(2.5)  # a few ticks and a save after the restart change nothing learned
        assert learned_baselines(data, learned) == baselines(learned)
        assert postures(server) == acknowledged
    finally:
        server.stop()


def test_a_hold_that_expires_while_the_server_is_down_is_handed_back_at_start(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    server = RempartProcess(data, CONFIG).start()
    try:
        web = set_posture(
            server, protocol="web", level="strict", reason="short hold", by="ann", ttl=3
        )
        pop3 = set_posture(
            server, protocol="pop3", level="guarded", reason="long hold", by="ann", ttl="1h"
        )
        assert web["held"] is True and pop3["held"] is True
        server.kill()  # no goodbye: the expiry must come from the stored record
        time.sleep(max(0.0, web["until"] - time.time()) + 0.5)
        start = time.time()
        server.start()
        eventually(lambda: postures(server)["web"]["reason"] == "hold expired")
        after = postures(server)
        assert after["web"]["level"] == "strict"  # the detector moves it from here
        assert after["web"]["until"] is None and after["web"]["reason"] == "hold expired"
        assert after["web"]["since"] >= start - 1
        # The hold still running is untouched.
        assert after["pop3"] == {k: pop3[k] for k in RECORD}
        # Handed back for good: the expiry is stored, not re-derived at each start.
        server.stop()
        server.start()
        assert postures(server)["web"] == after["web"]
    finally:
        server.stop()


@pytest.mark.redis
def test_two_redis_nodes_agree_on_postures_after_a_restart(tmp_path: Path) -> None:
    from tests.redis_server import RedisServer

    redis_server = RedisServer(tmp_path / "redis").start()
    config = CONFIG + (
        f'[state]\nbackend = "redis"\nredis_url = "{redis_server.url}"\nsync_interval = 0.05\n'
        "[journal]\nenabled = false\n"
    )
    a = RempartProcess(tmp_path / "node-a", config)
    b = RempartProcess(tmp_path / "node-b", config)
    try:
        a.start()
        b.start()
        operator_postures(a)
        expected = postures(a)
        try:
            eventually(lambda: postures(b) == expected)
        except AssertionError:
            raise AssertionError(f"{postures(b)} != {expected}") from None

        b.stop()  # SIGTERM; meanwhile A changes two postures
        set_posture(a, protocol="imap", level="guarded", reason="easing", by="ann", ttl="30m")
        set_posture(a, protocol="pop3", level="normal", reason="wave over", by="bob", hold=False)
        expected = postures(a)
        assert expected["pop3"]["held"] is False and expected["imap"]["until"] is not None
        b.start()
        eventually(lambda: postures(b) == postures(a))
        assert postures(b) == expected

        a.kill()  # A killed: it comes back with what the cluster holds
        set_posture(b, protocol="web", level="strict", reason="web stuffing", by="eve", hold=True)
        expected = postures(b)
        a.start()
        eventually(lambda: postures(a) == postures(b))
        assert postures(a) == expected
    finally:
        a.stop()
        b.stop()
        redis_server.stop()
