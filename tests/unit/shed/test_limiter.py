"""Gradient concurrency limiter, client-side throttling and class shares."""

from __future__ import annotations

import random

from rempart.shed.admission import settle_shares
from rempart.shed.admit_rate import exact_shares
from rempart.shed.classes import Criticality as C
from rempart.shed.config import LimiterSettings
from rempart.shed.limiter import GradientLimiter
from rempart.shed.throttle import AdaptiveThrottle, reject_probability


def simulate(
    capacity: int,
    work: float,
    steps: int = 400,
    *,
    initial: float = 5,
    tolerance: float = 1.5,
    minrtt_interval: float = 10.0,
    dt: float = 0.1,
) -> tuple[GradientLimiter, list[float]]:
    """A saturated upstream (demand always exceeds the limit) with ``capacity`` workers.

    RTT grows with the queue beyond capacity; every sample includes that queueing, as it does
    under a constant flood. Returns the limiter and the concurrency admitted at each step.
    """
    settings = LimiterSettings(
        initial=initial,
        min_limit=1,
        max_limit=500,
        tolerance=tolerance,
        minrtt_interval=minrtt_interval,
    )
    limiter = GradientLimiter(settings, rng=random.Random(7))
    admitted: list[float] = []
    for step in range(steps):
        inflight = limiter.concurrency()
        admitted.append(inflight)
        rtt = work * max(1.0, inflight / capacity)
        limiter.update(rtt, inflight, rtt_min=rtt, now=step * dt)
    return limiter, admitted


def test_limit_converges_near_capacity_whatever_it_is() -> None:
    # Starting below capacity, the limit settles where queueing makes RTT reach about
    # ``tolerance`` (1.5) x no-load RTT.
    for capacity in (8, 50):
        limit = simulate(capacity, 0.01)[0].limit
        assert capacity * 0.8 <= limit <= capacity * 1.5 * 1.2, (capacity, limit)


def test_limit_converges_from_above_capacity_under_constant_saturation() -> None:
    # Start at 4x capacity: every sample is queued, so without re-measurement the no-load RTT
    # is learnt as 4x the real one and the limit never comes down.
    capacity, work, tolerance = 10, 0.02, 1.1
    stuck, _ = simulate(capacity, work, 600, initial=40, tolerance=tolerance, minrtt_interval=0)
    assert stuck.limit > 3 * capacity
    assert stuck.rtt_noload is not None and stuck.rtt_noload > 3 * work
    limiter, admitted = simulate(capacity, work, 600, initial=40, tolerance=tolerance)
    assert limiter.measurements >= 5  # every ~10 s (jittered) over 60 s simulated
    assert limiter.rtt_noload is not None and abs(limiter.rtt_noload - work) < 1e-9
    fixed_point = tolerance * capacity + GradientLimiter.queue_allowance(capacity)
    assert capacity * 0.9 <= limiter.limit <= fixed_point + 1, limiter.limit
    late = admitted[300:]  # the second half: converged, and briefly pinned low when measuring
    assert max(late) <= fixed_point + 1
    assert sum(a <= 3 for a in late) <= 0.05 * len(late)  # measuring costs under 5 % of time


def test_noload_rtt_is_remeasured_when_the_upstream_gets_slower() -> None:
    limiter = GradientLimiter(LimiterSettings(initial=10, minrtt_interval=5.0, minrtt_jitter=0))
    now = 0.0
    for _ in range(100):  # 10 s at 10 ms
        limiter.update(0.010, limiter.concurrency(), now=now)
        now += 0.1
    assert limiter.rtt_noload is not None and abs(limiter.rtt_noload - 0.010) < 1e-9
    for _ in range(150):  # the upstream now needs 30 ms even unloaded
        limiter.update(0.030, limiter.concurrency(), now=now)
        now += 0.1
    assert abs(limiter.rtt_noload - 0.030) < 1e-9  # not stuck at the old minimum


def test_measurement_pins_concurrency_but_keeps_the_reserve() -> None:
    settings = LimiterSettings(initial=50, minrtt_concurrency=3, minrtt_duration=0.3)
    limiter = GradientLimiter(settings)
    limiter.update(0.01, 50, now=0.0)
    before = limiter.limit
    limiter.update(0.01, 50, now=0.3)  # first measurement starts right after the first sample
    assert limiter.measuring
    assert limiter.concurrency() == 3
    assert limiter.concurrency(reserve=12) == 12
    assert limiter.limit == before  # kept, and in force again afterwards
    limiter.update(0.01, 3, now=0.5)
    limiter.update(0.01, 3, now=0.7)
    assert not limiter.measuring and limiter.concurrency() == limiter.limit


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


def whole(rate: float, demand: dict[C, float]) -> dict[C, int]:
    return {cls: int(pct) for cls, pct in exact_shares(rate, demand).items()}


def test_shares_fill_capacity_by_priority() -> None:
    demand = {C.CRITICAL_PLUS: 50, C.CRITICAL: 100, C.SHEDDABLE_PLUS: 100, C.SHEDDABLE: 5000}
    assert whole(300, demand) == {
        C.CRITICAL_PLUS: 100, C.CRITICAL: 100, C.SHEDDABLE_PLUS: 100, C.SHEDDABLE: 1,
    }  # fmt: skip
    assert whole(200, demand)[C.SHEDDABLE_PLUS] == 50
    assert whole(100, demand)[C.SHEDDABLE_PLUS] == 0


def test_shares_cut_at_once_recover_gradually_and_respect_floors() -> None:
    demand = {C.CRITICAL_PLUS: 500.0, C.SHEDDABLE: 1000.0}
    cut = settle_shares(whole(100, demand), {})
    assert cut[C.SHEDDABLE] == 0 and cut[C.CRITICAL_PLUS] == 100  # floor
    up = settle_shares(whole(10_000, demand), cut)
    assert up[C.SHEDDABLE] == 10
