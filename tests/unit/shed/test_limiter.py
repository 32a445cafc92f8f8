"""Gradient concurrency limiter, client-side throttling and class shares."""

from __future__ import annotations

import random

from rempart.shed.admission import decide_shares, target_shares
from rempart.shed.classes import Criticality as C
from rempart.shed.config import LimiterSettings
from rempart.shed.limiter import GradientLimiter
from rempart.shed.throttle import AdaptiveThrottle, reject_probability


def simulate(capacity: int, work: float, steps: int = 400) -> GradientLimiter:
    """A saturated M/D/c-like upstream: RTT grows with the queue beyond ``capacity``."""
    limiter = GradientLimiter(LimiterSettings(initial=5, min_limit=1, max_limit=500))
    for _ in range(steps):
        inflight = limiter.limit  # demand always exceeds the limit
        queue = max(0.0, inflight - capacity)
        rtt = work * (1 + queue / capacity)
        limiter.update(rtt, inflight, rtt_min=work if queue < 1 else rtt, elapsed=0.1)
    return limiter


def test_limit_converges_near_capacity_whatever_it_is() -> None:
    # Starting below capacity (so the no-load RTT is seen), the limit settles where queueing
    # makes RTT reach about ``tolerance`` (1.5) x no-load RTT.
    for capacity in (8, 50):
        limit = simulate(capacity, 0.01).limit
        assert capacity * 0.8 <= limit <= capacity * 1.5 * 1.2, (capacity, limit)


def test_limit_shrinks_when_latency_rises_and_halves_on_errors() -> None:
    limiter = GradientLimiter(LimiterSettings(initial=100, min_limit=2, max_limit=500))
    limiter.update(0.010, 100)
    before = limiter.limit
    limiter.update(0.050, 100)
    assert limiter.limit < before
    before = limiter.limit
    limiter.update(0.010, 100, error_ratio=0.5)
    assert limiter.limit == before / 2


def test_limit_does_not_grow_when_application_limited() -> None:
    limiter = GradientLimiter(LimiterSettings(initial=50))
    for _ in range(50):
        limiter.update(0.01, inflight=3)
    assert limiter.limit == 50


def test_throttle_formula_and_window() -> None:
    assert reject_probability(100, 50) == 0.0
    assert abs(reject_probability(100, 10) - 80 / 101) < 1e-12
    throttle = AdaptiveThrottle(window=2, rng=random.Random(1))
    rejected = sum(throttle.should_reject(0.5) for _ in range(1000))  # nothing accepted
    assert 900 < rejected < 1000
    assert throttle.probability(10.0) == 0.0  # the window has passed


def test_shares_fill_capacity_by_priority() -> None:
    demand = {C.CRITICAL_PLUS: 50, C.CRITICAL: 100, C.SHEDDABLE_PLUS: 100, C.SHEDDABLE: 5000}
    assert target_shares(300, demand) == {
        C.CRITICAL_PLUS: 100, C.CRITICAL: 100, C.SHEDDABLE_PLUS: 100, C.SHEDDABLE: 1,
    }  # fmt: skip
    assert target_shares(200, demand)[C.SHEDDABLE_PLUS] == 50
    assert target_shares(100, demand)[C.SHEDDABLE_PLUS] == 0


def test_shares_cut_at_once_recover_gradually_and_respect_floors() -> None:
    demand = {C.CRITICAL_PLUS: 500.0, C.SHEDDABLE: 1000.0}
    cut = decide_shares(100, demand, {}, overloaded=True)
    assert cut[C.SHEDDABLE] == 0 and cut[C.CRITICAL_PLUS] == 100  # floor
    up = decide_shares(10_000, demand, cut, overloaded=False)
    assert up[C.SHEDDABLE] == 10
    assert decide_shares(10_000, {}, {C.SHEDDABLE: 50}, overloaded=True)[C.SHEDDABLE] == 25
