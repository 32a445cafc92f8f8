"""Baseline: no protection at all; every attempt goes to the password check."""

from __future__ import annotations

from rempart.model import ALLOW, Attempt, Outcome, Verdict


class NoProtection:
    name = "none"

    def decide(self, attempt: Attempt, now: float) -> Verdict:
        return ALLOW

    def report(self, attempt: Attempt, outcome: Outcome, now: float) -> None:
        return None
