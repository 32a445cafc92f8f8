"""A real `rempart serve` keeps its campaign detector's learned baselines across a restart:
saved every `save_seconds` and at shutdown (SIGTERM), so after kill -9 what was learned up to
the last save (here 1 s, default 60 s) comes back; a corrupt saved state gives a warning and a
cold start."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.rig import RempartProcess

CONFIG = """
[campaign]
tick_seconds = 1.0
save_seconds = 1.0
"""


def saved_state(data_dir: Path) -> dict[str, Any] | None:
    db = sqlite3.connect(data_dir / "state.sqlite3")
    try:
        row = db.execute("SELECT value FROM settings WHERE key = 'campaign.state'").fetchone()
    finally:
        db.close()
    return json.loads(row[0]) if row else None


def baselines(state: dict[str, Any] | None) -> dict[str, Any]:
    assert state is not None
    return {p: s["baselines"] for p, s in state["protocols"].items()}


def learned_ticks(state: dict[str, Any] | None) -> int:
    return 0 if state is None else state["protocols"].get("imap", {}).get("learned_ticks", 0)


def feed(server: RempartProcess, seconds: float) -> None:
    """Calm IMAP traffic: 40 reports a second, one in twenty failing."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        for _ in range(40):
            n += 1
            body = {
                "login": f"user{n % 300}@example.org",
                "remote": f"198.51.{n % 100}.{n % 250 + 1}",
                "pwhash": "0abc",
                "success": n % 20 != 0,
                "policy_reject": False,
                "protocol": "imap",
            }
            status, _ = server.command("report", body)
            assert status == 200
        time.sleep(max(0.0, 1.0 - (time.monotonic() % 1.0)))


def settle(data_dir: Path, server: RempartProcess) -> dict[str, Any]:
    """Wait until the saved state stops changing (window drained, last save written)."""
    last = None
    for _ in range(60):
        time.sleep(1.5)
        state = saved_state(data_dir)
        if state is not None and last is not None and baselines(state) == baselines(last):
            return state
        last = state
    raise AssertionError("the saved detector state kept changing:\n" + "".join(server.output))


def test_baselines_survive_sigterm_and_kill_9(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = RempartProcess(data, CONFIG).start()
    try:
        feed(server, 15)
        before = settle(data, server)
        assert learned_ticks(before) >= 5
        server.stop()  # SIGTERM: saved at shutdown too
        after_term = saved_state(data)
        assert baselines(after_term) == baselines(before)

        server.start()  # restores, then saves what it restored
        time.sleep(3)
        assert baselines(saved_state(data)) == baselines(before)

        feed(server, 5)  # more learning, then kill -9 after the next save
        learned = settle(data, server)
        assert learned_ticks(learned) > learned_ticks(before)
        server.kill()
        server.start()
        time.sleep(3)
        assert baselines(saved_state(data)) == baselines(learned)
    finally:
        server.stop()


def test_corrupt_saved_state_warns_and_starts_cold(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = RempartProcess(data, CONFIG).start()
    server.stop()
    db = sqlite3.connect(data / "state.sqlite3")
    db.execute("INSERT OR REPLACE INTO settings VALUES ('campaign.state', '{\"version\": 1, \"x')")
    db.commit()
    db.close()
    server.start()
    try:
        status, _ = server.command("ping")
        assert status == 200
        output = "".join(server.output)
        assert "campaign.state" in output and "starting cold" in output
        time.sleep(2.5)  # the next save replaces the corrupt state with a fresh one
        state = saved_state(data)
        assert state is not None and state["version"] == 1
    finally:
        server.stop()


@pytest.mark.redis
def test_a_node_starting_in_redis_mode_takes_the_clusters_baselines(tmp_path: Path) -> None:
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
        feed(a, 10)
        learned = settle(tmp_path / "node-a", a)
        assert learned_ticks(learned) >= 5
        b.start()  # a new node: nothing local, the cluster's state from Redis
        time.sleep(3)
        # It resumed from the cluster's state (and drained the calm ticks still pending in it).
        taken = saved_state(tmp_path / "node-b")
        assert learned_ticks(taken) >= learned_ticks(learned)
        mean = baselines(taken)["imap"]["failures"][0]
        assert abs(mean - baselines(learned)["imap"]["failures"][0]) < 0.01
    finally:
        a.stop()
        b.stop()
        redis_server.stop()
