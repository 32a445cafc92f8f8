"""AdmissionMiddleware on a real uvicorn server (loopback): critical routes survive a flood."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks.shed.asgi_experiment import ASGI_LOAD, run, uvicorn_available
from tests.conftest import need

pytestmark = pytest.mark.timeout(60)


def test_critical_routes_survive_a_flood_through_the_middleware(tmp_path: Path) -> None:
    need("uvicorn", uvicorn_available(), "pip install -e '.[test]' (uvicorn is in the test extra)")
    load = replace(ASGI_LOAD, baseline_seconds=2, flood_seconds=6)
    assert load.flood_rps >= 10 * load.capacity_rps
    result = run(tmp_path, load, enforce=True)
    flood = result["flood"]
    for name, rate in (("critical_plus", load.critical_plus_rps), ("critical", load.critical_rps)):
        attempted = flood[name]["sent"] + flood[name]["unsent"]
        assert attempted >= 0.9 * load.flood_seconds * rate, flood[name]
        # The benchmark (20 s) measures >= 99.9 %; this short run on a shared CI machine, where
        # the flood is parsed by the same Python process, allows 2 % (without shedding: ~1 % ok).
        assert flood[name]["success_ratio"] >= 0.98, flood[name]
    sheddable = flood["sheddable"]
    assert sheddable["shed"] > 5 * sheddable["ok"], sheddable  # refused with 503 + Retry-After
    assert result["shed_total"]["sheddable"] >= sheddable["shed"]  # counted by the middleware
    assert result["shed_total"]["critical_plus"] == 0
    assert result["minrtt_measurements"] >= 1
    assert result["final_limit"] < 3 * load.capacity  # adapted to the app, not unbounded
