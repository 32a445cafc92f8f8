"""Scores of one run: takeovers, friction on legitimate users, detection times, closure minutes.

Owns the accounting (`Scorer.record` per event, `Scorer.result` at the end) and the result's
JSON shape. Also keeps a per-bucket timeline (attempts by class and effect) for the chart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rempart.model import LEGACY_MAIL, Protocol, Verdict
from rempart.sim.defender import PostureChange
from rempart.sim.events import LEGIT_CLASSES, Event
from rempart.sim.outcome import ALLOWED, DELAYED, DENIED, EFFECTS, STEPPED_UP

TIMELINE_BUCKET_S = 900.0


@dataclass
class ClassCounts:
    attempts: int = 0
    failed: int = 0  # let through to the password check, and the password was wrong
    effects: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EFFECTS, 0))
    affected: dict[str, set[str]] = field(
        default_factory=lambda: {DELAYED: set(), STEPPED_UP: set(), DENIED: set()}
    )
    logins: set[str] = field(default_factory=set)


@dataclass
class CohortCounts:
    """Legacy-mail (IMAP, POP3, SMTP) attempts of one group of legitimate users."""

    logins: int  # users in the group
    attempts: int = 0
    denied: int = 0
    users: set[str] = field(default_factory=set)  # with at least one legacy-mail attempt
    users_denied: set[str] = field(default_factory=set)

    def result(self) -> dict[str, int]:
        return {
            "logins": self.logins,
            "attempts": self.attempts,
            "denied": self.denied,
            "users": len(self.users),
            "users_denied": len(self.users_denied),
        }


class Scorer:
    def __init__(
        self,
        duration_s: float,
        attack_starts: dict[str, float],
        cohorts: dict[str, frozenset[str]] | None = None,
    ) -> None:
        self.duration_s = duration_s
        self.attack_starts = attack_starts
        self.classes: dict[str, ClassCounts] = {}
        self.legit_users: dict[tuple[str, Protocol], set[str]] = {}
        self.takeovers: dict[str, set[str]] = {}
        self.takeover_attempts = 0
        self.first_deny: dict[str, float] = {}
        self.first_posture_code: float | None = None
        # Legitimate users denied twice within an hour: cut off, not greylisted once.
        self._last_deny: dict[str, float] = {}
        self.denied_repeatedly: set[str] = set()
        self.reasons: dict[str, int] = {}
        # Groups of legitimate users reported apart (e.g. exposed users with an app password).
        self.cohorts = {name: CohortCounts(len(logins)) for name, logins in (cohorts or {}).items()}
        self._cohort_of = {
            login: self.cohorts[name]
            for name, logins in (cohorts or {}).items()
            for login in logins
        }
        nbuckets = int(duration_s // TIMELINE_BUCKET_S) + 1
        self.timeline: dict[str, dict[str, list[int]]] = {
            group: {e: [0] * nbuckets for e in EFFECTS} for group in ("legit", "attack")
        }

    def record(self, event: Event, verdict: Verdict, effect: str, takeover: bool) -> None:
        counts = self.classes.get(event.source)
        if counts is None:
            counts = self.classes[event.source] = ClassCounts()
        counts.attempts += 1
        if not event.correct and effect != DENIED:
            counts.failed += 1
        counts.effects[effect] += 1
        group = "legit" if event.legit else "attack"
        self.timeline[group][effect][int(event.t // TIMELINE_BUCKET_S)] += 1
        if event.legit:
            key = (event.source, event.protocol)
            seen = self.legit_users.get(key)
            if seen is None:
                seen = self.legit_users[key] = set()
            seen.add(event.login)
            if self._cohort_of and event.protocol in LEGACY_MAIL:
                cohort = self._cohort_of.get(event.login)
                if cohort is not None:
                    cohort.attempts += 1
                    cohort.users.add(event.login)
                    if effect == DENIED:
                        cohort.denied += 1
                        cohort.users_denied.add(event.login)
        if effect == DENIED and event.legit:
            last = self._last_deny.get(event.login)
            if last is not None and event.t - last < 3600.0:
                self.denied_repeatedly.add(event.login)
            self._last_deny[event.login] = event.t
        if effect != ALLOWED:
            counts.affected[effect].add(event.login)
            for reason in verdict.reasons:
                reason_key = f"{group}:{reason.code}"
                self.reasons[reason_key] = self.reasons.get(reason_key, 0) + 1
            if not event.legit and effect == DENIED and event.source not in self.first_deny:
                self.first_deny[event.source] = event.t
        if takeover:
            self.takeover_attempts += 1
            self.takeovers.setdefault(event.source, set()).add(event.login)
        if (
            self.first_posture_code is None
            and effect != ALLOWED
            and any(r.code.startswith("posture") for r in verdict.reasons)
        ):
            self.first_posture_code = event.t

    def result(
        self,
        postures: list[PostureChange],
        policy: str,
        scenario: str,
        seed: int,
        time_scale: float = 1.0,
    ) -> dict[str, Any]:
        legit = [self.classes[c] for c in LEGIT_CLASSES if c in self.classes]
        attack_names = [c for c in self.classes if c not in LEGIT_CLASSES]
        attack_start = min(self.attack_starts.values(), default=None)

        def users(effect: str, classes: list[ClassCounts]) -> int:
            return len(set().union(*(c.affected[effect] for c in classes))) if classes else 0

        by_protocol: dict[Protocol, set[str]] = {}
        for (source, protocol), logins in self.legit_users.items():
            by_protocol.setdefault(protocol, set()).update(logins)
            self.classes[source].logins.update(logins)
        closures = _closure_intervals(postures, self.duration_s, time_scale)
        closure_minutes = sum(
            (end - start) / 60 * len(by_protocol.get(proto, ())) for proto, start, end in closures
        )
        posture_times = [p.t * time_scale for p in postures if p.posture != "normal"]
        strict_times = [p.t * time_scale for p in postures if p.posture in ("strict", "closed")]
        if self.first_posture_code is not None:
            posture_times.append(self.first_posture_code)
        first_deny = min(self.first_deny.values(), default=None)
        return {
            "scenario": scenario,
            "policy": policy,
            "seed": seed,
            "takeovers": len(set().union(*self.takeovers.values())),  # distinct accounts
            "takeover_attempts": self.takeover_attempts,
            "legit": {
                "attempts": sum(c.attempts for c in legit),
                "denied": sum(c.effects[DENIED] for c in legit),
                "delayed": sum(c.effects[DELAYED] for c in legit),
                "stepped_up": sum(c.effects[STEPPED_UP] for c in legit),
                "users_denied": users(DENIED, legit),
                "users_delayed": users(DELAYED, legit),
                "users_stepped_up": users(STEPPED_UP, legit),
            },
            "time_to_first_deny_s": _since(first_deny, attack_start),
            "time_to_posture_change_s": _since(min(posture_times, default=None), attack_start),
            "time_to_strict_s": _since(min(strict_times, default=None), attack_start),
            "posture_changes": sum(1 for p in postures if p.posture != "normal"),
            "legit_users_denied_repeatedly": len(self.denied_repeatedly),
            "closure_user_minutes": round(closure_minutes, 1),
            "closures": [
                {"protocol": p.value, "start_s": round(s, 1), "end_s": round(e, 1)}
                for p, s, e in closures
            ],
            "classes": {
                name: {
                    "attempts": c.attempts,
                    **c.effects,
                    "failed": c.failed,
                    "users": len(c.logins) if c.logins else None,
                    "users_denied": len(c.affected[DENIED]),
                    "users_delayed": len(c.affected[DELAYED]),
                    "users_stepped_up": len(c.affected[STEPPED_UP]),
                    **(
                        {
                            "takeovers": len(self.takeovers.get(name, ())),
                            "time_to_first_deny_s": _since(
                                self.first_deny.get(name), self.attack_starts.get(name)
                            ),
                        }
                        if name in attack_names
                        else {}
                    ),
                }
                for name, c in sorted(self.classes.items())
            },
            "reasons": dict(sorted(self.reasons.items())),
            **(
                {"cohorts": {name: c.result() for name, c in self.cohorts.items()}}
                if self.cohorts
                else {}
            ),
            "timeline": {"bucket_s": TIMELINE_BUCKET_S, **self.timeline},
        }


def _since(t: float | None, start: float | None) -> float | None:
    if t is None or start is None:
        return None
    return round(max(0.0, t - start), 1)


def _closure_intervals(
    postures: list[PostureChange], duration_s: float, time_scale: float
) -> list[tuple[Protocol, float, float]]:
    """(protocol, start, end) in scenario seconds for every "closed" stretch."""
    open_at: dict[Protocol, float] = {}
    out: list[tuple[Protocol, float, float]] = []
    for change in sorted(postures, key=lambda c: c.t):
        t = change.t * time_scale
        if change.posture == "closed":
            open_at.setdefault(change.protocol, t)
        elif change.protocol in open_at:
            out.append((change.protocol, open_at.pop(change.protocol), min(t, duration_s)))
    out.extend((p, s, duration_s) for p, s in open_at.items())
    return out
