"""LiveStats: what the listener counts, what a tick reports, how top lists rank and prune."""

from __future__ import annotations

from rempart.engine.engine import Engine
from rempart.model import Attempt, Outcome, Protocol
from rempart.ops import live
from rempart.ops.live import LiveStats, subnet_of


def test_subnet_of() -> None:
    assert subnet_of("192.0.2.77") == "192.0.2.0/24"
    assert subnet_of("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert subnet_of("2001:db8::1") == "2001:db8:0:0::/64"


def test_listener_and_tick_deltas() -> None:
    engine = Engine.in_memory()
    stats = LiveStats(engine)
    engine.listeners.append(stats.listener)
    now = 1_790_000_000.0
    for i in range(5):
        a = Attempt(f"u{i}@example.org", "198.51.100.9", Protocol.IMAP)
        engine.decide(a, now=now)
        engine.report(a, Outcome(success=False), now=now)
    first = stats.tick(now + 1)
    assert sum(first["decisions"]["imap"].values()) == 5
    assert first["reports"] == {"imap": {"failure": 5}}
    second = stats.tick(now + 2)
    assert second["decisions"] == {} and second["reports"] == {}
    top = stats.tops()
    assert top["ips"][0] == {"key": "198.51.100.9", "count": 5, "reasons": top["ips"][0]["reasons"]}
    assert top["subnets"][0]["key"] == "198.51.100.0/24"
    assert len(top["logins"]) == 5


def test_refusals_carry_reasons_and_actions_are_kept() -> None:
    engine = Engine.in_memory()
    stats = LiveStats(engine)
    engine.listeners.append(stats.listener)
    engine.set_posture(Protocol.IMAP, "strict", "operator:bob", "testing")
    assert stats.actions[-1]["kind"] == "posture" and stats.actions[-1]["reason"] == "testing"
    assert stats.postures()["imap"] == "strict"
    now = 1_790_000_000.0
    for j in range(300):  # a spray: many logins from one address
        a = Attempt(f"v{j}@example.org", "203.0.113.5", Protocol.IMAP)
        if engine.decide(a, now=now + j).action == 0:
            engine.report(a, Outcome(success=False), now=now + j)
    assert any(item["reasons"] for item in stats.tops()["ips"])


def test_tables_rotate_and_prune(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(live, "MAX_KEYS", 10)
    table = live._Table()
    for i in range(30):
        table.cur[f"k{i}"] = i
    table.prune()
    assert len(table.cur) == 5 and "k29" in table.cur
    table.rotate()
    assert table.cur == {} and table.top(2)[0]["key"] == "k29"
    table.rotate()
    assert table.top() == []


def test_a_decision_workers_figures_join_the_primarys() -> None:
    """What a worker hands over once a second (`figures`) is added to the primary's counters
    by how much it grew (not twice), its top sources merge with the primary's, its actions
    are shown once, and a restarted worker's counts start again from zero."""
    now = 1_790_000_000.0
    worker_engine, primary_engine = Engine.in_memory(), Engine.in_memory()
    worker, primary = LiveStats(worker_engine), LiveStats(primary_engine)
    worker_engine.listeners.append(worker.listener)
    primary_engine.listeners.append(primary.listener)
    for i in range(3):
        a = Attempt(f"p{i}@example.org", "192.0.2.1", Protocol.IMAP)
        primary_engine.report(a, Outcome(success=False), now=now)
    for i in range(4):
        a = Attempt(f"w{i}@example.org", "192.0.2.1", Protocol.IMAP)
        worker_engine.decide(a, now=now)
        worker_engine.report(a, Outcome(success=False), now=now)
    worker_engine.set_posture(Protocol.POP3, "strict", "operator:eve", "drill")
    primary.tick(now)  # the primary's own reports so far

    first = worker.figures(pid=100)
    assert first["actions"][-1]["reason"] == "drill"
    primary.absorb(0, first)
    point = primary.tick(now + 1)
    assert point["reports"] == {"imap": {"failure": 4}}
    assert sum(point["decisions"]["imap"].values()) == 4
    assert primary.tops(max_age=0)["ips"][0]["count"] == 3 + 4
    assert primary.actions[-1]["reason"] == "drill"

    primary.absorb(0, worker.figures(pid=100))  # nothing new
    assert primary.tick(now + 2)["reports"] == {}
    assert worker.figures(pid=100)["actions"] == []  # handed out once

    restarted = LiveStats(Engine.in_memory())
    restarted.reports[Protocol.IMAP][0] = 2  # the new process's own first failures
    primary.absorb(0, restarted.figures(pid=101))
    assert primary.tick(now + 3)["reports"] == {"imap": {"failure": 2}}
    assert primary.totals()["imap"]["failure"] == 3 + 4 + 2
