"""How a class's admitted share moves from one decision to the next.

The target shares come from filling the admitted rate greedily from the most critical class down
(:func:`rempart.shed.admit_rate.exact_shares`). Cuts apply at once; recovery is gradual
(``recover_step`` percent per decision) so the upstream is not flooded again the moment it looks
healthy. A class is never cut below its floor (critical_plus keeps 100 % by default: it is
protected by queue priority and per-client rate limits instead).
"""

from __future__ import annotations

from collections.abc import Mapping

from rempart.shed.classes import CLASSES, Criticality

FULL = 100
DEFAULT_FLOORS: Mapping[Criticality, int] = {Criticality.CRITICAL_PLUS: FULL}


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
