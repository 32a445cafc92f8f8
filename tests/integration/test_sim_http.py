"""The HTTP runner against a real `rempart serve` on loopback, compared with the in-process run.

Both runners replay the same compressed timeline (1.5 simulated hours in 10 s); the in-process
runner uses the real engine with the server's default settings. Stated tolerance: takeovers
within ±1, attack and legitimate attempts refused (deny or step-up) within ±5 % (+3), since the
wall clock jitters each event by the request latency and the server's windows start at a
different bucket boundary.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rempart.process import ServeProcess
from rempart.sim import experiment, scenario

SECRET = "sim-http-test-password"  # 16 characters at least, as serve requires
SC = scenario.parse(
    {
        "name": "http-mini",
        "duration_h": 1.5,
        "population": {"users": 150, "institution_accounts": 2, "aggregator_share": 0.02},
        "leak": {"size_per_user": 1.0},
        "attack": [{"kind": "stuffing", "start_h": 0.25, "duration_h": 1.0, "rate_per_min": 20}],
    }
)
TIME_SCALE = 540.0  # 1.5 h in 10 s


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    serve = ServeProcess(tmp_path / "data", "", SECRET).start()
    yield serve.base
    serve.stop()


def _refused(result: dict, legit: bool) -> int:
    from rempart.sim.events import LEGIT_CLASSES

    total = 0
    for name, c in result["classes"].items():
        if (name in LEGIT_CLASSES) == legit:
            total += c["denied"] + c["stepped_up"]
    return total


def test_http_runner_matches_in_process(server: str) -> None:
    inputs = experiment.Inputs.load()
    over_http = experiment.run_http(
        SC, 1, inputs, server, SECRET, TIME_SCALE, max_requests=20_000, max_seconds=45
    )
    in_process = experiment.run_one(SC, "rempart", 1, inputs, time_scale=TIME_SCALE)
    r = over_http["runner"]
    assert not r["truncated"] and r["http_errors"] == 0
    assert r["events"] == in_process["runner"]["events"]
    assert r["requests"] == 2 * r["events"]
    assert in_process["takeovers"] < in_process["valid_leaked_pairs"]  # the attack is stopped
    assert abs(over_http["takeovers"] - in_process["takeovers"]) <= 1
    for legit in (False, True):
        a, b = _refused(over_http, legit), _refused(in_process, legit)
        assert abs(a - b) <= 0.05 * max(a, b) + 3, (legit, a, b)
