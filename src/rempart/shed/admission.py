"""Which share of each class to admit, given an upstream's capacity and each class's demand.

Capacity is filled greedily from the most critical class down; the class at the margin gets a
partial share (percent of its requests admitted), the classes below it get nothing. Cuts apply at
once; recovery is gradual (``recover_step`` percent per decision) so the upstream is not flooded
again the moment it looks healthy. A class is never cut below its floor (critical_plus keeps 100 %
by default: it is protected by queue priority and per-client rate limits instead).
"""

from __future__ import annotations

from collections.abc import Mapping

from rempart.shed.classes import CLASSES, Criticality

FULL = 100
DEFAULT_FLOORS: Mapping[Criticality, int] = {Criticality.CRITICAL_PLUS: FULL}


def target_shares(capacity: float, demand: Mapping[Criticality, float]) -> dict[Criticality, int]:
    """Greedy fill of ``capacity`` (requests/s) by class priority → percent admitted per class."""
    remaining = max(capacity, 0.0)
    shares: dict[Criticality, int] = {}
    for cls in CLASSES:
        want = max(demand.get(cls, 0.0), 0.0)
        if want <= remaining:
            shares[cls] = FULL
            remaining -= want
        else:
            shares[cls] = int(FULL * remaining / want)
            remaining = 0.0
    return shares


def decide_shares(
    capacity: float,
    demand: Mapping[Criticality, float],
    previous: Mapping[Criticality, int],
    *,
    overloaded: bool,
    recover_step: int = 10,
    floors: Mapping[Criticality, int] = DEFAULT_FLOORS,
) -> dict[Criticality, int]:
    """Next admitted percentages; ``overloaded`` (queueing seen) halves the lowest admitted."""
    target = target_shares(capacity, demand)
    if overloaded:
        admitted = [c for c in CLASSES if min(target[c], previous.get(c, FULL)) > 0]
        if admitted:
            lowest = admitted[-1]
            target[lowest] = min(target[lowest], previous.get(lowest, FULL) // 2)
    return settle_shares(target, previous, recover_step=recover_step, floors=floors)


def settle_shares(
    target: Mapping[Criticality, int],
    previous: Mapping[Criticality, int],
    *,
    recover_step: int = 10,
    floors: Mapping[Criticality, int] = DEFAULT_FLOORS,
) -> dict[Criticality, int]:
    """``target`` with cuts at once, rises of at most ``recover_step`` points, and floors."""
    shares: dict[Criticality, int] = {}
    for cls in CLASSES:
        before = previous.get(cls, FULL)
        want = target.get(cls, FULL)
        share = want if want <= before else min(want, before + recover_step)
        shares[cls] = max(share, floors.get(cls, 0))
    return shares
