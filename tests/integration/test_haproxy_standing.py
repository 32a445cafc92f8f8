"""A flood of the login route itself through real HAProxy, with a real `rempart serve` feeding
good standing: users who signed in before keep getting in, new users are queued or shed."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.shed.experiment import Load, haproxy_binary
from benchmarks.shed.standing import StandingLoad, run
from tests.conftest import need

pytestmark = [pytest.mark.haproxy, pytest.mark.timeout(90)]


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Not under pytest's basetemp: another run may make it 0700, and HAProxy reads the maps.
    path = Path(tempfile.mkdtemp(prefix="rempart-standing-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_users_in_good_standing_get_in_during_a_login_route_flood(workdir: Path) -> None:
    need(
        "haproxy",
        haproxy_binary() is not None,
        "install Debian's haproxy (apt-get install haproxy)",
    )
    load = Load(baseline_seconds=2, flood_seconds=8)  # 2,500 req/s: 10x the 250 req/s capacity
    spec = StandingLoad(load=load, standing_users=40, new_users=40, user_rps=20)
    result = run(workdir, spec)
    base, flood = result["baseline"], result["flood"]
    assert base["standing"]["success_ratio"] >= 0.99, base
    assert base["new"]["success_ratio"] >= 0.99, base  # unloaded, everyone gets in

    standing, new, attack = flood["standing"], flood["new"], flood["flood"]
    attempted = standing["sent"] + standing["unsent"]
    assert attempted >= 0.9 * load.flood_seconds * spec.user_rps, standing
    assert standing["success_ratio"] >= 0.99, standing  # over every attempt
    # Bounded: served ahead of the queue, about one unit of upstream work after the unloaded.
    assert standing["p99_ms"] <= 2 * base["standing"]["p99_ms"] + 250, (standing, base)
    # The flood was refused, cleanly, and strangers share its fate.
    assert attack["ok"] < 0.5 * attack["sent"], attack
    assert attack["shed"] > attack["ok"], attack
    assert new["success_ratio"] < standing["success_ratio"] - 0.2, (new, standing)
    assert result["upstream_rps"] >= 0.5 * result["capacity_rps"], result
