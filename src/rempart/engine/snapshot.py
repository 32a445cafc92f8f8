"""Typed read-only views of the engine for metrics, stats, the dashboard and the operator API.

`Engine.snapshot()` copies what these readers need, so none of them reaches into the engine's
dictionaries, lists or detector.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rempart.engine.posture import PostureRecord
from rempart.model import Action, Posture, Protocol


@dataclass(frozen=True, slots=True)
class PostureView:
    """A protocol's posture record with the detector's latest score and figures."""

    record: PostureRecord
    score: float = 0.0
    figures: dict[str, float] = field(default_factory=dict)

    @property
    def level(self) -> Posture:
        return self.record.level

    def as_json(self, now: float) -> dict[str, Any]:
        r = self.record
        return {
            "level": r.level.value,
            "source": r.source.value,
            "set_by": r.by,
            "reason": r.reason,
            "since": r.since or None,
            "until": r.until,
            "held": r.hold_active(now),
            "score": self.score,
            "figures": self.figures,
        }


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    decisions: dict[Action, int]
    failures: int  # reports this node received (its peers' are not counted)
    successes: int
    reasons: dict[str, int]  # verdicts per reason code since start
    tracked_keys: int
    evictions: int
    blocklist_entries: int
    allowlist_entries: int
    accounts_known: int
    postures: dict[Protocol, PostureView]  # every protocol but OTHER
    detector: dict[str, dict[str, Any]]  # the campaign detector's own view, per protocol

    def levels(self) -> dict[str, str]:
        """Posture level per protocol name (the status page, the dashboard, `stats`)."""
        return {p.value: v.level.value for p, v in self.postures.items()}
