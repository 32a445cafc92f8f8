"""Learned fetchers survive a restart of the service (through the Store, like posture)."""

from __future__ import annotations

from pathlib import Path

from rempart.config import from_mapping
from rempart.model import Attempt, Outcome, Protocol
from rempart.server import Service

T0 = 1_800_000_000.0


def test_learned_fetcher_survives_a_restart(tmp_path: Path) -> None:
    settings = from_mapping({"journal": {"enabled": False}})
    service = Service(settings, tmp_path, "pw", leaks=None)
    fetcher = "192.0.2.10"
    for k in range(60):
        a = Attempt(login=f"a{k}@example.org", ip=fetcher, protocol=Protocol.POP3, pwhash="0ab")
        service.engine.report(a, Outcome(success=True), T0 - 4 * 86400)
    assert service.engine.fetchers.learned(fetcher, T0)
    assert service.flush()
    service.close()

    again = Service(settings, tmp_path, "pw", leaks=None)
    try:
        assert again.engine.fetchers.learned(fetcher, T0)
        assert not again.engine.fetchers.learned("192.0.2.11", T0)
    finally:
        again.close()


def test_a_fetchers_figures_since_the_hourly_save_survive_a_stop(tmp_path: Path) -> None:
    settings = from_mapping({"journal": {"enabled": False}})
    service = Service(settings, tmp_path, "pw", leaks=None)
    fetcher = "192.0.2.10"
    for k in range(60):  # learned at the 50th account: saved then
        a = Attempt(login=f"a{k}@example.org", ip=fetcher, protocol=Protocol.POP3, pwhash="0ab")
        service.engine.report(a, Outcome(success=True), T0 - 4 * 86400)
    for k in range(30):  # failures after the save, within the hour
        a = Attempt(login=f"a{k}@example.org", ip=fetcher, protocol=Protocol.POP3, pwhash="0ab")
        service.engine.report(a, Outcome(success=False), T0 - 4 * 86400 + 60)
    failures = service.engine.fetchers.records[fetcher].failures
    assert failures == 30
    service.close()

    again = Service(settings, tmp_path, "pw", leaks=None)
    try:
        assert again.engine.fetchers.records[fetcher].failures == failures
    finally:
        again.close()
