"""Real HAProxy in front of a bounded upstream: critical routes survive a sheddable flood."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from benchmarks.shed.experiment import Load, haproxy_binary, run
from rempart.shed.config import parse_shed
from rempart.shed.controller import Controller
from rempart.shed.runtime import HAProxyRuntime
from tests.conftest import need

pytestmark = [pytest.mark.haproxy, pytest.mark.timeout(60)]


def require_haproxy() -> None:
    need(
        "haproxy",
        haproxy_binary() is not None,
        "install Debian's haproxy (apt-get install haproxy)",
    )


def test_critical_routes_survive_a_flood_with_shedding(tmp_path: Path) -> None:
    require_haproxy()
    load = Load(baseline_seconds=2, flood_seconds=6)  # 2500 req/s: 10x the 250 req/s capacity
    assert load.flood_rps >= 10 * load.capacity_rps
    result = run(tmp_path / "on", load, enforce=True)
    flood = result["flood"]
    for name, rate in (("critical_plus", load.critical_plus_rps), ("critical", load.critical_rps)):
        attempted = flood[name]["sent"] + flood[name]["unsent"]
        assert attempted >= 0.9 * load.flood_seconds * rate, flood[name]
        assert flood[name]["success_ratio"] >= 0.999, flood[name]  # over every attempt
    sheddable = flood["sheddable"]
    assert sheddable["shed"] > sheddable["ok"], sheddable  # the flood was refused, cleanly
    assert sheddable["failed"] < 0.02 * sheddable["sent"], sheddable
    assert result["final_shares"]["sheddable"] < 100
    assert result["final_shares"]["critical_plus"] == 100


def test_unreachable_runtime_socket_keeps_last_state(tmp_path: Path) -> None:
    settings = parse_shed(
        {
            "haproxy": {"runtime_socket": str(tmp_path / "absent.sock"), "map_dir": str(tmp_path)},
            "services": [{"name": "web", "upstream": "127.0.0.1:9", "probe_path": ""}],
        }
    )
    controller = Controller(settings, HAProxyRuntime(settings.haproxy.runtime_socket, 0.2))
    before = controller.state.services["web"].shares()
    state = asyncio.run(controller.tick())
    assert state.runtime_ok is False and "absent.sock" in (state.last_error or "")
    assert state.services["web"].shares() == before
    assert not (tmp_path / "admission.map").exists()  # nothing rewritten from a blind tick
