"""How many requests per second to admit to one upstream: what it serves, steered by HAProxy's queue.

While HAProxy queues for the server, the upstream is working at its limit and the responses it
sends per second (HAProxy's ``hrsp_*`` counters, smoothed) *are* its capacity; admission hands
that rate out and corrects it so that the queue holds about ``queue_delay`` seconds of work::

    rate = utilization * served + (target_queue - queued) / HORIZON

A queue longer than the target lowers the rate at once (the correction can take it to zero: an
upstream that slows down tenfold is followed within a tick), a shorter one raises it. The queue
sits in HAProxy, where requests wait by criticality: it absorbs bursts of admitted sheddable
traffic and the rounding of shares to whole percents, the upstream never waits for work, and a
critical request waits at most for the next free slot, never behind sheddable traffic inside the
upstream.

When HAProxy does not queue, the served rate only says what was asked; the capacity is then
estimated as ``limit / rtt`` (Little's law on the latest latency sample), and the queue term
leaves room above it. The average only takes the served rate as it is for intervals HAProxy
queued through from start to end: the first tick of a flood, after an idle upstream, measured
what was asked, and would otherwise cut even the critical classes.

The critical classes are filled from the capacity without the queue's correction
(:func:`exact_shares`, ``protected``): they wait ahead of the queue, so a long one is no
reason to turn them away.

:class:`ShareDither` turns each class's exact share (a float percent) into the whole percents
the map holds, carrying the rounding over to the next ticks so that the admitted share averages
to the exact one.
"""

from __future__ import annotations

from collections.abc import Mapping

from rempart.shed.admission import FULL
from rempart.shed.classes import CLASSES, Criticality

PROTECTED = (Criticality.CRITICAL_PLUS, Criticality.CRITICAL)

HORIZON = 1.0  # seconds over which a queue error is corrected
SMOOTHING = 0.3  # weight of one tick in the served-rate average
MIN_QUEUE = 2.0  # requests the target queue holds at least


class AdmittedRate:
    """One service's admitted request rate; call :meth:`update` every tick."""

    def __init__(self, queue_delay: float, utilization: float = 1.0) -> None:
        self.queue_delay = queue_delay
        self.utilization = utilization
        self.served_rps: float | None = None  # smoothed responses per second
        self.target_queue = MIN_QUEUE
        self.rate: float = 0.0
        self.saturated = False  # HAProxy queued at the previous update
        self.capacity: float = 0.0  # the rate without the queue's correction

    def update(
        self,
        served: float,
        seconds: float,
        *,
        queued: int,
        saturated: bool,
        estimate: float | None,
    ) -> float:
        """``served`` responses in ``seconds``; ``queued`` waiting in HAProxy for the server;
        ``estimate`` the Little's-law capacity (req/s) used while HAProxy does not queue."""
        # Only an interval HAProxy queued through, start to end, measures the capacity; in any
        # other the upstream served what was asked, and the capacity is at least the estimate.
        measured = saturated and self.saturated
        self.saturated = saturated
        if seconds > 0 and served >= 0:
            now = served / seconds
            if not measured and estimate is not None:
                now = max(now, estimate)
            before = self.served_rps
            self.served_rps = now if before is None else before + SMOOTHING * (now - before)
        elif self.served_rps is None and estimate is not None:
            self.served_rps = estimate
        base = self.served_rps or 0.0
        if not saturated and estimate is not None:
            base = max(base, estimate)
        self.target_queue = max(MIN_QUEUE, self.queue_delay * base)
        self.capacity = self.utilization * base
        self.rate = max(0.0, self.capacity + (self.target_queue - queued) / HORIZON)
        return self.rate


def exact_shares(
    rate: float, demand: Mapping[Criticality, float], protected: float | None = None
) -> dict[Criticality, float]:
    """Greedy fill of ``rate`` (requests/s) by class priority → exact percent per class.

    The critical classes are filled from ``protected`` (default ``rate``) when it is larger:
    a queue in HAProxy is no reason to turn them away, since they wait ahead of it."""
    remaining = max(rate, 0.0)
    floor = max(protected if protected is not None else rate, 0.0)
    shares: dict[Criticality, float] = {}
    for cls in CLASSES:
        want = max(demand.get(cls, 0.0), 0.0)
        if cls in PROTECTED:
            budget = max(remaining, floor)
            shares[cls] = FULL if want <= budget else FULL * budget / want
            taken = min(want, budget)
            remaining, floor = max(0.0, remaining - taken), max(0.0, floor - taken)
            continue
        if want <= remaining:
            shares[cls] = float(FULL)
            remaining -= want
        else:
            shares[cls] = FULL * remaining / want
            remaining = 0.0
    return shares


class ShareDither:
    """Whole percents whose average follows exact shares (error diffusion per class)."""

    def __init__(self) -> None:
        self.carry: dict[Criticality, float] = {}

    def next(self, exact: Mapping[Criticality, float]) -> dict[Criticality, int]:
        out: dict[Criticality, int] = {}
        for cls, value in exact.items():
            if value >= FULL or value <= 0:
                self.carry[cls] = 0.0
                out[cls] = FULL if value >= FULL else 0
                continue
            wanted = value + self.carry.get(cls, 0.0)
            pct = max(0, min(FULL, round(wanted)))
            self.carry[cls] = max(-1.0, min(1.0, wanted - pct))
            out[cls] = pct
        return out
