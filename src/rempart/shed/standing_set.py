"""Sources in good standing: addresses from which a login recently succeeded.

A source is in good standing while at least one login succeeded from it within `ttl`, and at
most `max_logins` distinct logins did (an address many accounts sign in from, a CGNAT or an
office, is shared: a stranger behind it would ride on its standing). The mark HAProxy holds is
``<address> <until>`` in ``standing.map``, `until` being the epoch second the standing ends
(the last success plus `ttl`, rounded up to `granularity` so that repeated successes do not
rewrite the map every time); HAProxy itself ignores an entry whose `until` is past.

A block-list entry covering a source revokes its standing (`revoke`); HAProxy refuses blocked
sources before it looks at standing anyway. Pure and synchronous: no I/O, one writer (the
standing feed's loop). Like `EdgeSet`, every change records which keys may have changed
(`take_touched`) so that only differences are pushed.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable

from rempart.shed.edge_set import Net


class StandingSet:
    """The desired content of HAProxy's ``standing.map``, maintained incrementally."""

    def __init__(
        self, ttl: float, max_logins: int, granularity: int = 60, max_sources: int = 1_000_000
    ) -> None:
        self.ttl = ttl
        self.max_logins = max_logins
        self.granularity = max(1, granularity)
        self.max_sources = max_sources
        # source key -> login -> last success; at most max_logins + 1 logins are remembered
        self._logins: dict[str, dict[str, float]] = {}
        self._marks: dict[str, int] = {}  # source key -> until (epoch seconds)
        self._scheduled: dict[str, float] = {}  # source key -> when to look at it again
        self._deadlines: list[tuple[float, str]] = []
        self._touched: set[str] = set()

    # --- reading -------------------------------------------------------------------------------
    def desired(self) -> dict[str, int]:
        """Every mark HAProxy must hold now: source key -> until."""
        return dict(self._marks)

    def get(self, key: str) -> int | None:
        return self._marks.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self._marks

    def __len__(self) -> int:
        return len(self._marks)

    def take_touched(self) -> set[str]:
        touched, self._touched = self._touched, set()
        return touched

    def give_back(self, keys: Iterable[str]) -> None:
        self._touched.update(keys)

    def next_deadline(self) -> float | None:
        return self._deadlines[0][0] if self._deadlines else None

    # --- changes ---------------------------------------------------------------------------------
    def success(self, source: str, login: str, now: float) -> None:
        """A login succeeded from `source` at `now`; anything but a host address is ignored."""
        try:
            net = Net.parse(source)
        except ValueError:
            return
        if net.plen != net.bits:
            return
        key = net.key()
        logins = self._logins.get(key)
        if logins is None:
            if len(self._logins) >= self.max_sources:
                return  # bounded memory; the sweep frees room as standing ends
            logins = self._logins[key] = {}
        if login:
            logins.pop("", None)  # a restored mark's unknown login gives way to the first seen
        if login in logins or len(logins) <= self.max_logins:
            logins[login] = now
        self._recompute(key, now)

    def restore(self, key: str, until: int, now: float) -> None:
        """A mark read back from ``standing.map`` after a restart (its logins are not known)."""
        if until <= now or key in self._logins:
            return
        self._logins[key] = {"": until - self.ttl}
        self._recompute(key, now)

    def revoke(self, net: Net) -> int:
        """Drop the standing of every source inside `net` (blocked); how many lost it."""
        if net.plen == net.bits:
            keys = [net.key()] if net.key() in self._logins else []
        else:
            keys = [k for k in self._logins if net.contains(Net.parse(k))]
        for key in keys:
            del self._logins[key]
            self._scheduled.pop(key, None)
            if self._marks.pop(key, None) is not None:
                self._touched.add(key)
        return len(keys)

    def expire(self, now: float, limit: int = 20_000) -> int:
        """Age out logins and marks whose time has passed, at most `limit` sources."""
        seen = 0
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now and seen < limit:
            at, key = heapq.heappop(deadlines)
            if self._scheduled.get(key) == at:  # else rescheduled or dropped since
                del self._scheduled[key]
                self._recompute(key, now)
                seen += 1
        return seen

    # --- computation -----------------------------------------------------------------------------
    def _recompute(self, key: str, now: float) -> None:
        logins = self._logins.get(key, {})
        horizon = now - self.ttl
        for login in [name for name, at in logins.items() if at <= horizon]:
            del logins[login]
        mark: int | None = None
        if logins:
            if len(logins) <= self.max_logins:
                last = max(logins.values())
                mark = math.ceil((last + self.ttl) / self.granularity) * self.granularity
            upcoming = min(logins.values()) + self.ttl  # when the count can next change
            if self._scheduled.get(key) != upcoming:
                self._scheduled[key] = upcoming
                heapq.heappush(self._deadlines, (upcoming, key))
        else:
            self._logins.pop(key, None)
            self._scheduled.pop(key, None)
        if self._marks.get(key) == mark:
            return
        if mark is None:
            del self._marks[key]
        else:
            self._marks[key] = mark
        self._touched.add(key)
