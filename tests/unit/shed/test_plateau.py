"""The plateau limiter and the admitted rate against a simulated upstream of fixed width.

The upstream runs ``width`` requests at a time, ``work`` seconds each; below its width every
slot also idles for a short turnaround between requests (the proxy's round trip), which an
upstream with a queue of its own hides. HAProxy's queue is a fluid: admitted requests arrive,
the upstream drains it at its rate, requests older than the queue timeout leave it. The
controller's real pieces (:class:`PlateauLimiter`, :class:`AdmittedRate`, the share fill and
dither, :func:`settle_shares`) run on the figures HAProxy would give them, tick by tick.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from rempart.shed.admission import settle_shares
from rempart.shed.admit_rate import AdmittedRate, ShareDither, exact_shares
from rempart.shed.classes import Criticality as C
from rempart.shed.config import LimiterSettings
from rempart.shed.limiter import GradientLimiter
from rempart.shed.plateau import PlateauLimiter

DT = 0.2  # the control loop's period in the benchmark


def served_rate(limit: int, width: int, work: float, turnaround: float = 0.02) -> float:
    """Requests per second the upstream completes with ``limit`` sent to it."""
    if limit <= width:
        return limit / (work * (1 + turnaround))
    return width / work


def climb(
    width: int,
    work: float,
    initial: float,
    ticks: int,
    *,
    slow: tuple[int, int] | None = None,
    noise: float = 0.03,
    seed: int = 1,
) -> tuple[PlateauLimiter, list[int]]:
    """A constantly saturated upstream; ``slow`` = (first, last) tick of a tenfold latency."""
    rng = random.Random(seed)
    limiter = PlateauLimiter(LimiterSettings(initial=initial, min_limit=1, max_limit=500))
    history = []
    for tick in range(ticks):
        latency = work * (10 if slow and slow[0] <= tick < slow[1] else 1)
        rate = served_rate(limiter.limit, width, latency)
        limiter.observe(rate * DT * (1 + rng.gauss(0, noise)), DT, saturated=True)
        history.append(limiter.limit)
    return limiter, history


def test_limit_converges_to_the_width_from_below_and_from_above() -> None:
    for width, initial in ((10, 3), (10, 40), (20, 31), (50, 10), (50, 200)):
        _, history = climb(width, 0.04, initial, 900)
        late = history[300:]  # after 60 s simulated
        # Steps of 2 % are at the noise of one epoch's rate (3 % a tick here): a wide upstream
        # may sit one step under its width now and then.
        near = [x for x in late if 0.96 * width <= x <= width + max(1, width // 10)]
        assert len(near) >= 0.8 * len(late), (width, initial, sorted(set(late)))
        # Probes go one step (a tenth of the limit, at least 1) either side, and are undone.
        low, high = min(width - 1, 0.85 * width), max(width + 1, 1.2 * width)
        assert all(low <= x <= high for x in late), (width, initial, sorted(set(late)))


def test_a_width_of_ten_is_reached_within_30_seconds_from_either_side() -> None:
    for initial in (3, 40):
        _, history = climb(10, 0.04, initial, 600)
        assert history[150] in (10, 11), (initial, history[:150:10])  # 150 ticks = 30 s
        late = history[150:]
        assert set(late) <= {9, 10, 11, 12}  # a probe beyond a step kept on noise, undone
        assert late.count(10) + late.count(11) >= 0.9 * len(late)


def test_it_converges_where_the_gradient_overshoots() -> None:
    # The gradient's fixed point is tolerance x width + allowance: 12 for a width of 10.
    gradient = GradientLimiter(LimiterSettings(initial=40, tolerance=1.1, minrtt_interval=0))
    for _ in range(600):
        inflight = gradient.limit
        gradient.update(0.04 * max(1.0, inflight / 10), inflight, rtt_min=0.04)
    _, history = climb(10, 0.04, 40, 600)
    assert gradient.limit > 11.5
    assert history[-1] == 10


def test_limit_holds_steady_under_constant_saturation() -> None:
    limiter, history = climb(10, 0.04, 10, 3000)  # 10 minutes
    assert history.count(10) >= 0.9 * len(history)  # probes: one epoch every ~16 s each way
    assert set(history) <= {9, 10, 11}  # probes one step either side, undone
    assert limiter.moves <= 4  # noise may keep a probe now and then, and undo it


def test_limit_stays_at_the_width_through_a_tenfold_latency_jump() -> None:
    # The width is the same; only the rate falls (the admitted rate follows, tested below).
    _, history = climb(10, 0.04, 10, 2400, slow=(600, 1500))
    during, after = history[600:1500], history[1650:]
    assert during.count(10) >= 0.8 * len(during)
    assert after.count(10) >= 0.8 * len(after)
    assert set(during + after) <= {9, 10, 11}


def test_no_learning_without_a_queue_and_halving_on_errors() -> None:
    limiter = PlateauLimiter(LimiterSettings(initial=30))
    for _ in range(200):
        limiter.observe(20, DT, saturated=False)  # demand-limited: nothing to learn
    assert limiter.limit == 30 and limiter.phase == "hold"
    limiter.observe(20, DT, saturated=True, error_ratio=0.5)
    assert limiter.limit == 15


@dataclass
class Flood:
    """HAProxy's queue (a fluid) in front of the simulated upstream, under a sheddable flood."""

    width: int = 10
    work: float = 0.04
    demand: dict[C, float] = field(
        default_factory=lambda: {C.CRITICAL_PLUS: 20.0, C.CRITICAL: 40.0, C.SHEDDABLE: 2500.0}
    )
    queue_timeout: float = 1.0
    seed: int = 3

    def run(
        self, ticks: int, slow: tuple[int, int] | None = None, flood_from: int = 0
    ) -> list[dict[str, float]]:
        rng = random.Random(self.seed)
        limiter = PlateauLimiter(LimiterSettings(initial=20, min_limit=1))
        admitted = AdmittedRate(queue_delay=0.1)
        dither = ShareDither()
        shares = dict.fromkeys(C, 100)
        queue = {c: 0.0 for c in C}  # requests waiting, per class
        out = []
        for tick in range(ticks):
            work = self.work * (10 if slow and slow[0] <= tick < slow[1] else 1)
            quiet = tick < flood_from  # only the payments before the flood
            demand = {c: r for c, r in self.demand.items() if not quiet or c == C.CRITICAL_PLUS}
            arrivals = {
                c: r * shares[c] / 100 * DT * (1 + rng.gauss(0, 0.05)) for c, r in demand.items()
            }
            # The flood begins just before the controller reads the counters: its first
            # requests wait in the queue, the responses counted are the quiet traffic's.
            late = tick == flood_from > 0
            for cls, count in arrivals.items():
                if not late or cls == C.CRITICAL_PLUS:
                    queue[cls] += count
            capacity = served_rate(limiter.limit, self.width, work) * DT
            served = {}
            for cls in C:  # by priority: critical first
                served[cls] = min(queue[cls], capacity)
                capacity -= served[cls]
                queue[cls] -= served[cls]
            for cls, count in arrivals.items():
                if late and cls != C.CRITICAL_PLUS:
                    queue[cls] += count
            rate = served_rate(limiter.limit, self.width, work)
            for cls in C:  # the oldest left waiting beyond the queue timeout time out
                queue[cls] = min(queue[cls], rate * self.queue_timeout)
            queued = round(sum(queue.values()))
            total = sum(served.values())
            limiter.observe(total, DT, saturated=queued > 0)
            target = admitted.update(
                total, DT, queued=queued, saturated=queued > 0, estimate=limiter.limit / work
            )
            exact = exact_shares(target, demand, protected=admitted.capacity)
            shares = settle_shares(dither.next(exact), shares)
            out.append(
                {
                    "limit": limiter.limit,
                    "served_rps": total / DT,
                    "critical_rps": (served[C.CRITICAL_PLUS] + served[C.CRITICAL]) / DT,
                    "critical_pct": min(shares[C.CRITICAL_PLUS], shares[C.CRITICAL]),
                    "sheddable_pct": shares[C.SHEDDABLE],
                    "queued": queued,
                }
            )
        return out


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def test_admission_hands_out_the_served_rate_and_holds_it_steady() -> None:
    ticks = Flood().run(900)  # 3 minutes
    late = ticks[150:]
    full = 10 / 0.04
    assert mean([t["served_rps"] for t in late]) >= 0.95 * full  # the upstream kept busy
    assert all(t["critical_pct"] == 100 for t in ticks)  # critical never turned away
    assert all(t["queued"] <= 0.5 * full for t in late)  # HAProxy's queue short (< 0.5 s)
    # The sheddable share: (250 - 60) / 2500 = 7.6 %, within half a point over 5 s windows.
    means = [mean([t["sheddable_pct"] for t in late[i : i + 25]]) for i in range(0, 725, 25)]
    assert all(6.5 <= m <= 8.5 for m in means), means
    assert max(means) - min(means) <= 1.0, means


def test_admission_follows_a_tenfold_latency_jump_and_recovers() -> None:
    ticks = Flood().run(1200, slow=(400, 700))
    jump = ticks[400:700]
    # The slow upstream serves 25 req/s, less than the 60 req/s of critical demand: within a
    # second sheddable is cut to nothing and critical to what is left after critical_plus
    # (floor 100 %): (25 - 20) / 40 = 12.5 %.
    assert all(t["sheddable_pct"] == 0 for t in jump[5:])
    assert all(t["critical_pct"] == 100 for t in ticks[:400])
    assert 5 <= mean([t["critical_pct"] for t in jump[25:]]) <= 25
    assert mean([t["served_rps"] for t in jump[25:]]) >= 0.9 * 10 / 0.4
    assert all(t["critical_pct"] == 100 for t in ticks[720:])  # back within 4 s
    after = ticks[800:]  # 20 s after the upstream is fast again
    assert mean([t["served_rps"] for t in after]) >= 0.95 * 10 / 0.04
    assert 6.5 <= mean([t["sheddable_pct"] for t in after]) <= 8.5
    assert all(9 <= t["limit"] <= 11 for t in after)


def test_a_flood_after_a_quiet_spell_never_cuts_the_critical_classes() -> None:
    # Before the flood the upstream serves 20 req/s of payments; then logins (critical) and the
    # flood start at once. The first tick that queues measured what was asked, not what can be
    # done: taken as the capacity, it would turn logins away.
    ticks = Flood().run(300, flood_from=100)
    assert all(t["critical_pct"] == 100 for t in ticks)
    assert all(t["sheddable_pct"] == 100 for t in ticks[:100])
    assert 6.5 <= mean([t["sheddable_pct"] for t in ticks[150:]]) <= 8.5
