"""Baseline: close the protocol for everyone when the service-wide failure rate jumps.

What the mail provider did: when the share of failed logins on a legacy protocol over the last
ten minutes passes a threshold, IMAP and POP3 are closed together for every user, for
`close_for` seconds (by default longer than any scenario: the provider closed them for days).
"""

from __future__ import annotations

import math

from rempart.model import ALLOW, Action, Attempt, Outcome, Protocol, Reason, Verdict
from rempart.sim.defender import PostureChange

CLOSED = Verdict(Action.DENY, reasons=(Reason("protocol_closed", "protocol closed for all"),))
GROUP = frozenset({Protocol.IMAP, Protocol.POP3})


class ProtocolClosure:
    name = "closure"

    def __init__(
        self,
        threshold: float = 0.05,
        window: float = 600.0,
        min_attempts: int = 50,
        close_for: float = math.inf,
        watched: frozenset[Protocol] = GROUP,
    ) -> None:
        self.threshold, self.window, self.min_attempts = threshold, window, min_attempts
        self.close_for, self.watched = close_for, watched
        self.closed_until: dict[Protocol, float] = {}
        self.buckets: dict[Protocol, dict[int, list[int]]] = {p: {} for p in watched}
        self.posture_changes: list[PostureChange] = []

    def decide(self, attempt: Attempt, now: float) -> Verdict:
        until = self.closed_until.get(attempt.protocol)
        if until is not None:
            if now < until:
                return CLOSED
            del self.closed_until[attempt.protocol]
            self.posture_changes.append(PostureChange(now, attempt.protocol, "normal"))
        return ALLOW

    def report(self, attempt: Attempt, outcome: Outcome, now: float) -> None:
        protocol = attempt.protocol
        if outcome.policy_reject or protocol not in self.watched:
            return
        minute = int(now // 60)
        buckets = self.buckets[protocol]
        counts = buckets.get(minute)
        if counts is None:
            counts = buckets[minute] = [0, 0]
            for old in [m for m in buckets if m <= minute - self.window / 60]:
                del buckets[old]
        counts[0] += 1
        if not outcome.success:
            counts[1] += 1
            attempts = sum(c[0] for c in buckets.values())
            failures = sum(c[1] for c in buckets.values())
            if attempts >= self.min_attempts and failures / attempts > self.threshold:
                for p in self.watched:
                    if p not in self.closed_until:
                        self.closed_until[p] = now + self.close_for
                        self.posture_changes.append(PostureChange(now, p, "closed"))
                        self.buckets[p].clear()
