"""Baseline: wforce's shipped example policy (wforce/wforce.conf), re-expressed in Python.

The example keeps one StringStatsDB, "OneHourDB": six windows of ten minutes, one field
`diffFailedPasswords` (a HyperLogLog in wforce, an exact set here). On report, a failure that
was not a policy reject adds the pwhash under the IP and under IP:login. On allow: more than
50 different failed passwords from the IP in the hour → reject (-1); more than 3 for this
IP:login → delay 3 seconds. The `bulkRetrievers` netmask group is empty in the example.
"""

from __future__ import annotations

from rempart.model import ALLOW, Action, Attempt, Outcome, Reason, Verdict

IP_REJECT = Verdict(
    Action.DENY, reasons=(Reason("ip_failures", "too many different failed passwords by IP"),)
)
PAIR_DELAY = Verdict(
    Action.DELAY,
    delay_s=3.0,
    reasons=(Reason("ip_login_failures", "too many different failed passwords by IP/login"),),
)


class TimeWindowSets:
    """wforce's twAdd/twGet for an "hll" field: distinct values over the last `windows` slots."""

    def __init__(self, slot_s: float = 600.0, windows: int = 6) -> None:
        self.slot_s, self.windows = slot_s, windows
        self.data: dict[str, dict[int, set[str]]] = {}

    def add(self, key: str, value: str, now: float) -> None:
        slot = int(now // self.slot_s)
        slots = self.data.get(key)
        if slots is None:
            slots = self.data[key] = {}
        values = slots.get(slot)
        if values is None:
            values = slots[slot] = set()
            for old in [s for s in slots if s <= slot - self.windows]:
                del slots[old]
        values.add(value)

    def get(self, key: str, now: float) -> int:
        slots = self.data.get(key)
        if not slots:
            return 0
        first = int(now // self.slot_s) - self.windows + 1
        live = [v for s, v in slots.items() if s >= first]
        if len(live) == 1:
            return len(live[0])
        return len(set().union(*live))


class WforceExample:
    name = "wforce"

    def __init__(self, ip_limit: int = 50, pair_limit: int = 3) -> None:
        self.ip_limit, self.pair_limit = ip_limit, pair_limit
        self.db = TimeWindowSets()

    def decide(self, attempt: Attempt, now: float) -> Verdict:
        if self.db.get(attempt.ip, now) > self.ip_limit:
            return IP_REJECT
        if self.db.get(f"{attempt.ip}:{attempt.login}", now) > self.pair_limit:
            return PAIR_DELAY
        return ALLOW

    def report(self, attempt: Attempt, outcome: Outcome, now: float) -> None:
        if outcome.success or outcome.policy_reject:
            return
        self.db.add(attempt.ip, attempt.pwhash, now)
        self.db.add(f"{attempt.ip}:{attempt.login}", attempt.pwhash, now)
