"""The one interface every simulated policy implements, so all run in the same runner.

Owns `Defender` (decide before authentication, report after, both on a virtual clock) and the
optional `Posture` record a defender may keep when it changes a protocol's posture (closing
it, or going strict), which the scorer turns into time-to-posture-change and closure minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol as TypingProtocol

from rempart.model import Attempt, Outcome, Protocol, Verdict


@dataclass(frozen=True, slots=True)
class PostureChange:
    """From `t` on, `protocol` is in `posture` ("normal", "strict" or "closed")."""

    t: float
    protocol: Protocol
    posture: str


class Defender(TypingProtocol):
    """A login policy under test; `now` is the virtual (or wall) clock in seconds."""

    name: str

    def decide(self, attempt: Attempt, now: float) -> Verdict: ...

    def report(self, attempt: Attempt, outcome: Outcome, now: float) -> None: ...


def posture_log(defender: object) -> list[PostureChange]:
    """The defender's posture changes, if it keeps any (attribute `posture_changes`)."""
    return list(getattr(defender, "posture_changes", ()))
