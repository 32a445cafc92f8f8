"""Shedding episodes: when admission turns customers away, say so in the log and the journal.

An episode of a service starts on the first tick where any class is admitted below 100 % and
ends once every class has been fully admitted again for ``end_after`` seconds (so a share that
flickers 100 → 90 → 100 is one episode, not many). :class:`EpisodeTracker` watches one
service's state after each tick of the control loop and returns typed events:

* :class:`EpisodeStarted`: the classes shed and their shares, the limit, the estimated capacity,
  the demand and the latency that triggered it;
* :class:`EpisodeSummary`: every ``summary_interval`` seconds while it lasts, the same figures
  and the requests turned away so far;
* :class:`EpisodeEnded`: duration, the lowest share each class fell to, and how many requests
  were turned away per class (from HAProxy's ``st_shed`` counters, summed tick by tick);
* :class:`LimitMoved`: the concurrency limit moved by more than ``limit_change`` (relative) since
  the last reported value, inside an episode or not.

The control loop logs every event (:func:`describe`) and hands it to its listeners; the server
journals it with :func:`journal_entry`. The written form, one flat record per event:

| kind         | fields after ts, kind                                                          |
|--------------|--------------------------------------------------------------------------------|
| shed_start   | service, started, limit, capacity_rps, shares, demand_rps, rtt_ms, rtt_noload_ms, queued |
| shed_summary | service, started, limit, capacity_rps, shares, shed_rps, turned_away           |
| shed_end     | service, started, duration_s, lowest_shares, turned_away, limit                |
| shed_limit   | service, before, after, shedding                                               |

``shares``, ``lowest_shares``, ``demand_rps``, ``shed_rps`` and ``turned_away`` are objects keyed
by class label (``critical_plus`` … ``sheddable``); ``started`` (unix seconds) names the episode.
:func:`episodes_of` reads such records back into :class:`EpisodeView` rows for the incident report.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from rempart.config import knob
from rempart.shed.classes import CLASSES
from rempart.shed.state import ServiceState


class ShedRecordKind(enum.StrEnum):
    START = "shed_start"
    SUMMARY = "shed_summary"
    END = "shed_end"
    LIMIT = "shed_limit"


SHED_KINDS = frozenset(ShedRecordKind)


@dataclass(frozen=True, slots=True)
class EpisodeSettings:
    """``[shed.episodes]``: when an episode ends, how often it is summarised, which limit moves
    are worth a line."""

    end_after: float = knob(
        5.0, "seconds every class must stay fully admitted before an episode ends", ge=0, le=3600
    )
    summary_interval: float = knob(
        60.0, "seconds between summary lines while an episode lasts", ge=1, le=86400
    )
    limit_change: float = knob(
        0.25, "relative move of the concurrency limit worth a log line", ge=0.01, le=100
    )


@dataclass(frozen=True, slots=True)
class EpisodeStarted:
    at: float
    service: str
    limit: float
    capacity_rps: float | None
    shares: dict[str, int]  # the classes admitted below 100 %
    demand_rps: dict[str, float]
    rtt_ms: float | None
    rtt_noload_ms: float | None
    queued: int


@dataclass(frozen=True, slots=True)
class EpisodeSummary:
    at: float
    service: str
    started: float
    limit: float
    capacity_rps: float | None
    shares: dict[str, int]
    shed_rps: dict[str, float]
    turned_away: dict[str, int]


@dataclass(frozen=True, slots=True)
class EpisodeEnded:
    at: float
    service: str
    started: float
    lowest_shares: dict[str, int]
    turned_away: dict[str, int]
    limit: float

    @property
    def duration(self) -> float:
        return self.at - self.started


@dataclass(frozen=True, slots=True)
class LimitMoved:
    at: float
    service: str
    before: float
    after: float
    shedding: bool


ShedEvent: TypeAlias = EpisodeStarted | EpisodeSummary | EpisodeEnded | LimitMoved


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _capacity(value: float | None) -> float | None:
    return None if value is None or value == float("inf") else round(value, 1)


@dataclass
class _Episode:
    started: float
    lowest: dict[str, int]
    turned_away: dict[str, int] = field(default_factory=lambda: {c.label: 0 for c in CLASSES})
    quiet_since: float | None = None  # every class fully admitted since then
    last_summary: float = 0.0


class EpisodeTracker:
    """One service's episodes; :meth:`observe` after every successful tick."""

    def __init__(self, service: str, settings: EpisodeSettings, limit: float) -> None:
        self.service = service
        self.settings = settings
        self.reported_limit = limit
        self.episode: _Episode | None = None
        self._shed_seen: dict[str, int] | None = None  # st_shed counters at the last tick

    def _turned_away_since_last(self, state: ServiceState) -> dict[str, int]:
        """Requests HAProxy refused per class since the last tick. A counter below its last
        value means the stick-table entry expired and started again from zero."""
        now = {cls.label: cs.shed_total for cls, cs in state.classes.items()}
        before, self._shed_seen = self._shed_seen, now
        if before is None:
            return dict.fromkeys(now, 0)
        return {k: v - before[k] if v >= before.get(k, 0) else v for k, v in now.items()}

    def observe(self, state: ServiceState, now: float) -> list[ShedEvent]:
        """The events this tick's state gives rise to (``now``: unix time)."""
        events: list[ShedEvent] = []
        delta = self._turned_away_since_last(state)
        shares = state.shares()
        partial = {cls.label: pct for cls, pct in shares.items() if pct < 100}
        episode = self.episode
        if episode is None and partial:
            episode = self.episode = _Episode(now, lowest=dict(partial), last_summary=now)
            events.append(
                EpisodeStarted(
                    now,
                    self.service,
                    round(state.limit, 2),
                    _capacity(state.capacity),
                    partial,
                    {c.label: s.demand_rps for c, s in state.classes.items()},
                    _ms(state.rtt),
                    _ms(state.rtt_noload),
                    state.queued,
                )
            )
        elif episode is not None:
            for label, n in delta.items():
                episode.turned_away[label] += max(0, n)
            for label, pct in partial.items():
                episode.lowest[label] = min(pct, episode.lowest.get(label, 100))
            if partial:
                episode.quiet_since = None
            elif episode.quiet_since is None:
                episode.quiet_since = now
            if episode.quiet_since is not None and now - episode.quiet_since >= (
                self.settings.end_after
            ):
                events.append(
                    EpisodeEnded(
                        now,
                        self.service,
                        episode.started,
                        dict(episode.lowest),
                        dict(episode.turned_away),
                        round(state.limit, 2),
                    )
                )
                self.episode = None
            elif now - episode.last_summary >= self.settings.summary_interval:
                episode.last_summary = now
                events.append(
                    EpisodeSummary(
                        now,
                        self.service,
                        episode.started,
                        round(state.limit, 2),
                        _capacity(state.capacity),
                        {c.label: pct for c, pct in shares.items()},
                        {c.label: s.shed_rps for c, s in state.classes.items()},
                        dict(episode.turned_away),
                    )
                )
        before = self.reported_limit
        if abs(state.limit - before) > self.settings.limit_change * max(before, 1.0):
            self.reported_limit = state.limit
            events.append(
                LimitMoved(
                    now, self.service, round(before, 2), round(state.limit, 2), bool(self.episode)
                )
            )
        return events


def _classes(values: dict[str, Any], unit: str = "") -> str:
    return ", ".join(f"{label} {value}{unit}" for label, value in values.items()) or "none"


def _turned(values: dict[str, int]) -> str:
    total = sum(values.values())
    detail = ", ".join(f"{label} {n}" for label, n in values.items() if n)
    return f"{total} requests turned away" + (f" ({detail})" if detail else "")


def describe(event: ShedEvent) -> str:
    """One log line for ``event``."""
    match event:
        case EpisodeStarted():
            rtt = (
                f", rtt {event.rtt_ms} ms (no-load {event.rtt_noload_ms} ms)"
                if event.rtt_ms
                else ""
            )
            cap = f", capacity ~{event.capacity_rps:g} req/s" if event.capacity_rps else ""
            return (
                f"shed: shedding started on {event.service}: admitting "
                f"{_classes(event.shares, ' %')}; limit {event.limit:g}{cap}{rtt}, "
                f"queued {event.queued}"
            )
        case EpisodeSummary():
            return (
                f"shed: still shedding on {event.service} after "
                f"{event.at - event.started:.0f} s: admitting {_classes(event.shares, ' %')}; "
                f"limit {event.limit:g}; {_turned(event.turned_away)} so far"
            )
        case EpisodeEnded():
            return (
                f"shed: shedding ended on {event.service} after {event.duration:.1f} s: "
                f"{_turned(event.turned_away)}; lowest shares {_classes(event.lowest_shares, ' %')}"
            )
        case LimitMoved():
            return (
                f"shed: concurrency limit of {event.service} moved {event.before:g} → "
                f"{event.after:g}" + (" (shedding)" if event.shedding else "")
            )


def journal_entry(event: ShedEvent) -> tuple[str, float, dict[str, Any]]:
    """``(kind, time, fields)`` for ``Journal.append``: the record of ``event``."""
    match event:
        case EpisodeStarted():
            return (
                ShedRecordKind.START,
                event.at,
                {
                    "service": event.service,
                    "started": event.at,
                    "limit": event.limit,
                    "capacity_rps": event.capacity_rps,
                    "shares": event.shares,
                    "demand_rps": event.demand_rps,
                    "rtt_ms": event.rtt_ms,
                    "rtt_noload_ms": event.rtt_noload_ms,
                    "queued": event.queued,
                },
            )
        case EpisodeSummary():
            return (
                ShedRecordKind.SUMMARY,
                event.at,
                {
                    "service": event.service,
                    "started": event.started,
                    "limit": event.limit,
                    "capacity_rps": event.capacity_rps,
                    "shares": event.shares,
                    "shed_rps": event.shed_rps,
                    "turned_away": event.turned_away,
                },
            )
        case EpisodeEnded():
            return (
                ShedRecordKind.END,
                event.at,
                {
                    "service": event.service,
                    "started": event.started,
                    "duration_s": round(event.duration, 3),
                    "lowest_shares": event.lowest_shares,
                    "turned_away": event.turned_away,
                    "limit": event.limit,
                },
            )
        case LimitMoved():
            return (
                ShedRecordKind.LIMIT,
                event.at,
                {
                    "service": event.service,
                    "before": event.before,
                    "after": event.after,
                    "shedding": event.shedding,
                },
            )


@dataclass
class EpisodeView:
    """One episode as the journal tells it (``ended`` None: still running at the last record)."""

    service: str
    started: float
    ended: float | None = None
    lowest_shares: dict[str, int] = field(default_factory=dict)
    turned_away: dict[str, int] = field(default_factory=dict)
    limits: list[float] = field(default_factory=list)

    @property
    def total_turned_away(self) -> int:
        return sum(self.turned_away.values())


def _int_map(value: object) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    return {str(k): int(v) for k, v in value.items() if isinstance(v, int | float)}


def episodes_of(records: Iterable[dict[str, Any]]) -> list[EpisodeView]:
    """Episodes from ``shed_*`` records (other kinds ignored), oldest first. An episode whose
    start lies before the records begin is still listed, from its end or summary record."""
    found: dict[tuple[str, float], EpisodeView] = {}
    for rec in records:
        kind = rec.get("kind")
        if kind not in (ShedRecordKind.START, ShedRecordKind.SUMMARY, ShedRecordKind.END):
            continue
        try:
            key = (str(rec["service"]), float(rec["started"]))
        except (KeyError, TypeError, ValueError):
            continue
        view = found.setdefault(key, EpisodeView(*key))
        limit = rec.get("limit")
        if isinstance(limit, int | float):
            view.limits.append(float(limit))
        shares = _int_map(rec.get("lowest_shares") or rec.get("shares"))
        for label, pct in shares.items():
            if pct < 100:
                view.lowest_shares[label] = min(pct, view.lowest_shares.get(label, 100))
        if kind != ShedRecordKind.START:
            view.turned_away = _int_map(rec.get("turned_away")) or view.turned_away
        if kind == ShedRecordKind.END:
            view.ended = float(rec.get("ts", key[1]))
    return sorted(found.values(), key=lambda v: v.started)
