"""Posture records: each protocol's posture with who set it, why, since and until when.

A posture is set by the campaign detector or by an operator. An operator either *holds* it
(until a TTL or until changed: the detector is paused for that protocol) or *hands the
protocol back* to the detector, which then moves it from that level as traffic warrants.
Setting `normal` hands back by default, so ending an incident never silently switches
detection off; holding `normal` must be asked for.

The record is what the Store persists, the replication carries and the journal writes; its
JSON form (`as_json` / `from_json`) is the one stored and sent.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace
from typing import Any

from rempart.model import Posture, Protocol

MAX_HOLD_DAYS = 30
MAX_HOLD_SECONDS = MAX_HOLD_DAYS * 86400.0  # a longer hold is a typo, or a "until changed"


def _micros(now: float) -> float:
    """`since` to the microsecond, as the change record's `ts` carries it (records.micros), so a
    peer or a restart rebuilds the very same record from the journal or the replication."""
    return int(now * 1e6) / 1e6


class PostureSource(enum.StrEnum):
    DETECTOR = "detector"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class PostureRecord:
    protocol: Protocol
    level: Posture
    source: PostureSource
    by: str  # "detector", "api", "console:alice", "cli" ...
    reason: str
    since: float
    until: float | None = None  # a hold's end (None: until changed, or not held)
    held: bool = False  # an operator hold: the detector does not move this protocol

    @classmethod
    def initial(cls, protocol: Protocol) -> PostureRecord:
        return cls(protocol, Posture.NORMAL, PostureSource.DETECTOR, "detector", "", 0.0)

    def hold_active(self, now: float) -> bool:
        return self.held and (self.until is None or now < self.until)

    def detector_until(self) -> float:
        """What the campaign detector is told: hold until then (0: not held, inf: until
        changed)."""
        if not self.held:
            return 0.0
        return math.inf if self.until is None else self.until

    def handed_back(self, now: float, reason: str) -> PostureRecord:
        """The same level, no longer held (a hold whose TTL ran out)."""
        return replace(self, held=False, until=None, since=_micros(now), reason=reason)

    def as_json(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol.value,
            "level": self.level.value,
            "source": self.source.value,
            "by": self.by,
            "reason": self.reason,
            "since": self.since,
            "until": self.until,
            "held": self.held,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PostureRecord:
        """The record from its JSON form; ValueError/KeyError/TypeError when malformed."""
        until = data.get("until")
        return cls(
            Protocol(data["protocol"]),
            Posture.parse(data["level"]),
            PostureSource(data["source"]),
            str(data["by"]),
            str(data.get("reason", "")),
            float(data["since"]),
            None if until is None else float(until),
            bool(data["held"]),
        )


def operator_record(
    protocol: Protocol,
    level: Posture,
    by: str,
    reason: str,
    now: float,
    ttl: float = 0.0,
    hold: bool | None = None,
) -> PostureRecord:
    """An operator's posture. `hold` None keeps the older API's meaning: a TTL or a raised level
    holds (until the TTL, else until changed); `normal` without a TTL hands back to the
    detector. ValueError for a negative TTL or a TTL on a hand-back."""
    if not 0 <= ttl <= MAX_HOLD_SECONDS:  # also refuses NaN
        raise ValueError(
            f"a posture's ttl must be between 0 and {MAX_HOLD_DAYS} days (0: until changed)"
        )
    if hold is None:
        hold = bool(ttl) or level is not Posture.NORMAL
    if ttl and not hold:
        raise ValueError("a ttl applies to a held posture only (hold = true)")
    until = now + ttl if hold and ttl else None
    return PostureRecord(
        protocol, level, PostureSource.OPERATOR, by, reason, _micros(now), until, hold
    )


def detector_record(protocol: Protocol, level: Posture, now: float, rising: bool) -> PostureRecord:
    reason = "campaign detected" if rising else "calm period elapsed"
    return PostureRecord(protocol, level, PostureSource.DETECTOR, "detector", reason, _micros(now))
