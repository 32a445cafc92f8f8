"""Baseline: fail2ban-style per-IP bans (maxretry failures within findtime → ban for bantime).

Counts authentication failures per exact source address, as fail2ban does from log lines; a
banned address is dropped (deny) until the ban expires. Policy rejects leave no failure line.
"""

from __future__ import annotations

from collections import deque

from rempart.model import ALLOW, Action, Attempt, Outcome, Reason, Verdict

BANNED = Verdict(Action.DENY, reasons=(Reason("ip_banned", "address banned after failures"),))


class Fail2Ban:
    name = "fail2ban"

    def __init__(self, maxretry: int = 5, findtime: float = 600.0, bantime: float = 3600.0) -> None:
        self.maxretry, self.findtime, self.bantime = maxretry, findtime, bantime
        self.failures: dict[str, deque[float]] = {}
        self.banned_until: dict[str, float] = {}
        self.bans = 0

    def decide(self, attempt: Attempt, now: float) -> Verdict:
        until = self.banned_until.get(attempt.ip)
        if until is not None:
            if now < until:
                return BANNED
            del self.banned_until[attempt.ip]
        return ALLOW

    def report(self, attempt: Attempt, outcome: Outcome, now: float) -> None:
        if outcome.success or outcome.policy_reject:
            return
        times = self.failures.get(attempt.ip)
        if times is None:
            times = self.failures[attempt.ip] = deque()
        times.append(now)
        while times and times[0] <= now - self.findtime:
            times.popleft()
        if len(times) >= self.maxretry:
            self.banned_until[attempt.ip] = now + self.bantime
            self.bans += 1
            times.clear()
