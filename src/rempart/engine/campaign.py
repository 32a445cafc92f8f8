"""Campaign detection: per-protocol live baselines, an anomaly score, and a graded posture.

Every reported attempt feeds its protocol's current tick (10 s by default): attempts, failures,
unknown-login failures, failures from networks unfamiliar to the account, leaked-pair hits, and
distinct failing source IPs, subnets, autonomous systems (when an `[asn] database` is
configured) and IPs failing from a network unfamiliar to the account (linear-counting sketches). Each figure has an adaptive baseline of its share of attempts —
exponentially weighted mean and variance, learned only while the protocol is calm (a tick is
learned one window late and dropped if anything anomalous comes first, so the first seconds
of an attack never become the new normal), with a profile per hour of the day once that hour
has been seen on earlier days. The expected count over a window is that share times the
window's attempts. Volume alone therefore never scores — every client reconnecting after an
outage raises attempts and failures together — while an attack adds failures, unfamiliar
failures, unknown logins and failing sources out of proportion.

When a tick closes, each figure is scored as a z-score:

- raw counts (which come in bursts: one client retrying) over the last minute (what there is
  of it in the detector's first minute), with a variance
  floor: z = (observed - expected) / sqrt(max(expected, 1) + (sd * attempts)^2);
- distinct sources (one client is one source, so they cannot burst) over every window of the
  last 1 to 6 ticks, by the exact Poisson tail P(X >= observed) of an expected count that adds
  `prior_events` (Jeffreys' half event) over the attempts the baseline has learned from, so a
  figure never seen so far is not taken as impossible; capped by the normal z with the
  share's own spread. A few sources failing from networks unfamiliar to their accounts, in a
  protocol where that never happens, thus count within seconds, while a figure that is
  common needs a large excess.

**Cold start.** A detector with nothing learned does not wait: the figures that mean the same
on any service are scored from the first tick against conservative priors, each a share of
attempts with a wide spread (`PRIORS`), worth `prior_ticks` pseudo-observations of the
baseline. With a prior (mean m, spread s) and n attempts a minute, the z of a share p tends to
(p - m) / s as n grows, so each prior is really a pair of share thresholds, guarded at
m + 6 s and strict at m + 12 s whatever the service's size; at small n the Poisson term and
the floor of `min_failures_per_minute` make it harder still:

| figure | prior share | guarded at | strict at | why it is safe |
|---|---|---|---|---|
| failures | 3 % ± 1.5 % | 12 % | 21 % | mail services fail 1-5 % of logins (stale clients, typos); a client reconnecting after an outage raises attempts and failures together |
| failing IPs | 2 % ± 1 % | 8 % | 14 % | one broken client is one source however often it retries |
| failing subnets | 2 % ± 1 % | 8 % | 14 % | as failing IPs |
| unknown logins | 1 % ± 1 % | 7 % | 13 % | users mistype their password far more often than their login; a leak replay tries 30-60 % logins that do not exist |
| leaked pairs | 0.2 % ± 0.2 % | 1.4 % | 2.6 % | only counts with an ingested leak |

On priors alone nothing scores unless failures come from at least `PRIOR_MIN_SUBNETS` subnets
in the minute: one client retrying, however hard, is never a campaign.

Familiarity is empty on a fresh deployment, so every network is unfamiliar to every account:
the unfamiliar figures (and failing ASNs, which depend on the service's geography) have no
prior and score only once the baseline has learned `warmup_minutes` of calm traffic. As calm
ticks are learned they blend with the prior (a plain average while the samples are few, then
the half-life), so the service's own figures take over within the hour; an attack running
since the start scores against the prior and, once the posture rises, is never learned.

The anomaly score is the largest z, and only counts once failures pass an absolute floor per
minute. The posture rises normal → guarded → strict one level per tick when a tick scores at
least `prompt_score`; weaker evidence (between a level's threshold and `prompt_score`, when
an operator sets it above the threshold) must hold for consecutive ticks. It steps back down
one level after a calm period. `closed` is reached only if an operator sets it or the
configuration allows it explicitly.
"""

from __future__ import annotations

import base64
import math
from collections import deque
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

from rempart.config import CampaignSettings
from rempart.engine.distinct import Sketch, item_hash

LEVELS = ("normal", "guarded", "strict", "closed")
# Counted per window; each is scored as a share of attempts. Raw counts can come in bursts (one
# client retrying), so they are judged with a normal z and a variance floor; distinct sources
# cannot (one client is one source), so they are judged by their Poisson tail even when few.
RAW = ("failures", "unknown", "unfamiliar_failures", "leaked")
DISTINCT = ("failing_ips", "failing_subnets", "failing_asns", "unfamiliar_ips")
SCORED = RAW + DISTINCT
# Conservative priors for a detector with nothing learned: (share of attempts, spread). See the
# module docstring for the thresholds they imply and why they hold on a quiet start.
PRIORS: dict[str, tuple[float, float]] = {
    "failures": (0.03, 0.015),
    "unknown": (0.01, 0.01),
    "leaked": (0.002, 0.002),
    "failing_ips": (0.02, 0.01),
    "failing_subnets": (0.02, 0.01),
}
# On priors alone, a campaign needs failures from at least this many subnets in the minute: a
# single broken client or attacking address is the per-address rules' business.
PRIOR_MIN_SUBNETS = 5
STATE_VERSION = 1


def _excess(observed: float, expected: float, spread: float) -> float:
    """How far `observed` stands above `expected`, as a z-score; never negative.

    The smaller of two views: the exact Poisson tail P(X >= observed) turned into a normal
    z, right for a few events where a normal approximation is not; and the normal z with the
    baseline's own spread added to the Poisson variance, so a figure that naturally varies
    from minute to minute needs a larger excess.
    """
    if observed <= expected or expected <= 0.0:
        return 0.0
    normal = (observed - expected) / math.sqrt(expected + spread * spread)
    return min(_poisson_z(observed, expected), normal)


_NORMAL = NormalDist()


def _poisson_z(observed: float, expected: float) -> float:
    """The normal z of the Poisson upper tail P(X >= observed | expected)."""
    x = round(observed)
    if x > 100:  # the signed root of the deviance is as good as exact here
        k = x - 0.5
        if k <= expected:
            return 0.0
        return math.sqrt(2.0 * (k * math.log(k / expected) - (k - expected)))
    # log P(X = x), then the tail as P(X = x) * (1 + l/(x+1) + l^2/((x+1)(x+2)) + ...).
    log_p = -expected + x * math.log(expected) - math.lgamma(x + 1)
    total = term = 1.0
    j = x
    while term > 1e-12 * total and j < x + 1000:
        j += 1
        term *= expected / j
        total += term
    log_p += math.log(total)
    if log_p >= math.log(0.5):
        return 0.0
    if log_p < -700.0:  # below what a float holds: the tail's asymptote
        return math.sqrt(-2.0 * log_p - math.log(-4.0 * math.pi * log_p))
    return -_NORMAL.inv_cdf(math.exp(log_p))


class _Tick:
    __slots__ = ("attempts", "failures", "leaked", "unfamiliar_failures", "unknown")

    def __init__(self) -> None:
        self.attempts = self.failures = self.unknown = 0
        self.unfamiliar_failures = self.leaked = 0


class _Baseline:
    """EWMA mean and variance of one figure; per hour of day once an hour has history."""

    __slots__ = ("hourly", "mean", "samples", "var")

    def __init__(self, prior: tuple[float, float] | None = None, weight: float = 0.0) -> None:
        # A prior is `weight` pseudo-samples of its mean and variance: the first real samples
        # blend with it as a plain average would.
        self.mean = prior[0] if prior else 0.0
        self.var = prior[1] ** 2 if prior else 0.0
        self.samples = round(weight) if prior else 0
        self.hourly: dict[int, tuple[float, float, int]] = {}

    def learn(self, value: float, alpha: float, hour: int) -> None:
        # A plain average until the samples outnumber the half-life's (1/alpha): the first
        # windows of the day, a few attempts each, must not weigh for hours.
        self.samples += 1
        a = max(alpha, 1.0 / self.samples)
        delta = value - self.mean
        self.mean += a * delta
        self.var = (1 - a) * (self.var + a * delta * delta)
        mean, var, n = self.hourly.get(hour, (0.0, 0.0, 0))
        a = max(alpha, 1.0 / (n + 1))
        delta = value - mean
        self.hourly[hour] = (mean + a * delta, (1 - a) * (var + a * delta * delta), n + 1)

    def share(self, hour: int, per_day_samples: int) -> tuple[float, float]:
        """(mean, standard deviation) of the share, the hour's profile where it has history."""
        mean, var = self.mean, self.var
        hourly = self.hourly.get(hour)
        # An hour's own profile counts once it holds more than a day's worth of that hour.
        if hourly is not None and hourly[2] > per_day_samples:
            mean, var = max(mean, hourly[0]), max(var, hourly[1])
        return mean, math.sqrt(var)


@dataclass(slots=True)
class ProtocolState:
    ips: Sketch
    subnets: Sketch
    strangers: Sketch  # failing IPs on networks unfamiliar to the account
    asns: Sketch  # failing autonomous systems (with an `[asn] database` only)
    level: str = "normal"
    score: float = 0.0
    above: int = 0
    calm_since: float | None = None
    manual_until: float = 0.0  # an operator's setting holds until then (inf: until changed)
    figures: dict[str, float] = field(default_factory=dict)
    ticks: deque[_Tick] = field(default_factory=deque)
    baselines: dict[str, _Baseline] = field(default_factory=dict)
    tick_index: int = -1
    raised_at: float = 0.0  # when the posture last left normal
    unsettled: bool = False  # not warm, raised, and a prior figure above its prior's mean
    learned_ticks: int = 0
    evidence: float = 0.0  # attempts the baselines learned from (same half-life)
    # Closed ticks waiting to be learned: (hour, share of each scored figure, tick's attempts).
    pending: deque[tuple[int, tuple[float, ...], int]] = field(default_factory=deque)

    @classmethod
    def empty(cls, window_ticks: int) -> ProtocolState:
        """A protocol's state before its first attempt: empty sketches over the window."""
        size = window_ticks
        return cls(
            ips=Sketch(size, False),
            subnets=Sketch(size, False),
            strangers=Sketch(size, False),
            asns=Sketch(size, False),
        )


class CampaignDetector:
    """One detector for all protocols; `observe` is O(1) and does no I/O."""

    def __init__(self, settings: CampaignSettings) -> None:
        self.settings = settings
        self.protocols: dict[str, ProtocolState] = {}
        self.alpha = 1 - 0.5 ** (settings.tick_seconds / (settings.half_life_minutes * 60))
        self.ticks_per_day = int(86400 / settings.tick_seconds / 24)

    def state(self, protocol: str) -> ProtocolState:
        st = self.protocols.get(protocol)
        if st is None:
            st = self.protocols[protocol] = ProtocolState.empty(self.settings.window_ticks)
            st.baselines = {f: _Baseline(PRIORS.get(f), self.settings.prior_ticks) for f in SCORED}
        return st

    def observe(
        self,
        protocol: str,
        now: float,
        failed: bool,
        unknown: bool,
        familiar: bool,
        leaked: bool,
        ip: str,
        subnet: str,
        asn: str = "",
        ip_hash: int = -1,
    ) -> list[tuple[str, str, str]]:
        """Count one reported attempt; returns posture changes (protocol, from, to) if a tick
        closed. `asn` is the source's AS key, "" without an ASN table; `ip_hash` is
        `item_hash(ip)` when the caller has it already (-1: not yet)."""
        st = self.state(protocol)
        changes = self._roll(protocol, st, now)
        tick = st.ticks[-1]
        tick.attempts += 1
        if failed:
            tick.failures += 1
            if unknown:
                tick.unknown += 1
            size = self.settings.window_ticks
            if ip_hash < 0:
                ip_hash = item_hash(ip)
            if not familiar:
                tick.unfamiliar_failures += 1
                st.strangers.add(ip_hash, st.tick_index, size)
            st.ips.add(ip_hash, st.tick_index, size)
            st.subnets.add(item_hash(subnet), st.tick_index, size)
            if asn:
                st.asns.add(item_hash(asn), st.tick_index, size)
        if leaked:
            tick.leaked += 1
        return changes

    def tick(self, now: float) -> list[tuple[str, str, str]]:
        """Close elapsed ticks of every protocol (called by a timer when traffic is quiet)."""
        changes: list[tuple[str, str, str]] = []
        for protocol, st in self.protocols.items():
            changes += self._roll(protocol, st, now)
        return changes

    def _roll(self, protocol: str, st: ProtocolState, now: float) -> list[tuple[str, str, str]]:
        index = int(now // self.settings.tick_seconds)
        if index <= st.tick_index:
            return []
        changes: list[tuple[str, str, str]] = []
        if st.tick_index >= 0:
            elapsed = index - st.tick_index
            if elapsed > self.settings.window_ticks + 1:
                # A long quiet gap: close the last busy tick, then score only the final
                # window's worth of empty ticks.
                change = self._close(protocol, st, st.tick_index)
                if change:
                    changes.append(change)
                st.ticks.clear()
                st.ticks.append(_Tick())
                elapsed = self.settings.window_ticks
            for step in range(elapsed):
                change = self._close(protocol, st, index - elapsed + step)
                if change:
                    changes.append(change)
                if step < elapsed - 1:
                    st.ticks.append(_Tick())
                    self._trim(st)
        st.tick_index = index
        st.ticks.append(_Tick())
        self._trim(st)
        return changes

    def _trim(self, st: ProtocolState) -> None:
        while len(st.ticks) > self.settings.window_ticks:
            st.ticks.popleft()

    def _counts(self, st: ProtocolState, closing: int, span: int) -> tuple[int, dict[str, int]]:
        """Attempts and the scored counts over the last `span` ticks ending at `closing`."""
        ticks = list(st.ticks)[-span:]
        size = self.settings.window_ticks
        return sum(t.attempts for t in ticks), {
            "failures": sum(t.failures for t in ticks),
            "unknown": sum(t.unknown for t in ticks),
            "unfamiliar_failures": sum(t.unfamiliar_failures for t in ticks),
            "leaked": sum(t.leaked for t in ticks),
            "failing_ips": st.ips.estimate(span, closing, size),
            "failing_subnets": st.subnets.estimate(span, closing, size),
            "failing_asns": st.asns.estimate(span, closing, size),
            "unfamiliar_ips": st.strangers.estimate(span, closing, size),
        }

    def _close(self, protocol: str, st: ProtocolState, closing: int) -> tuple[str, str, str] | None:
        s = self.settings
        size = s.window_ticks
        minutes = len(st.ticks) * s.tick_seconds / 60
        attempts, counts = self._counts(st, closing, size)
        failures = counts["failures"]
        hour = int((closing * s.tick_seconds) // 3600) % 24
        warm = st.learned_ticks * s.tick_seconds >= s.warmup_minutes * 60
        # Before warm-up only the figures with a prior are judged (see PRIORS).
        judged_raw = RAW if warm else tuple(n for n in RAW if n in PRIORS)
        judged_distinct = DISTINCT if warm else tuple(n for n in DISTINCT if n in PRIORS)
        score = 0.0
        if judged_raw or judged_distinct:
            expected_shares = {
                name: st.baselines[name].share(hour, self.ticks_per_day) for name in SCORED
            }
            # What the baseline may have missed: `prior_events` over the attempts it has seen;
            # a figure with a prior has it as its floor while the prior still weighs.
            unseen = s.prior_events / max(st.evidence, 1.0)
            learned_weight = st.learned_ticks / (st.learned_ticks + s.prior_ticks)
            longest = min(size, len(st.ticks))
            for span in range(1, longest + 1):
                if span == size:
                    n, window = attempts, counts
                else:
                    n, window = self._counts(st, closing, span)
                if not n:
                    continue
                # Raw counts over the window, or what there is of it in the first minute.
                for name in judged_raw if span == longest else ():
                    mean, sd = expected_shares[name]
                    expected = mean * n
                    z = (window[name] - expected) / math.sqrt(max(expected, 1.0) + (sd * n) ** 2)
                    score = max(score, z)
                for name in judged_distinct:
                    mean, sd = expected_shares[name]
                    floor = unseen * learned_weight if name in PRIORS else unseen
                    score = max(score, _excess(window[name], (mean + floor) * n, sd * n))
        # A posture raised before anything was learned has no baseline of the service to call
        # a minute calm: it is calm only when no prior figure is above its prior's mean (so a
        # low-and-slow botnet left alone after the loud part of a wave ends keeps it raised),
        # for at most `prior_hold_hours`, after which the plain calm score decides.
        st.unsettled = (
            not warm
            and st.level != "normal"
            and attempts > 0
            and any(counts[name] > PRIORS[name][0] * attempts for name in PRIORS)
        )
        if not warm and counts["failing_subnets"] < PRIOR_MIN_SUBNETS:
            score = 0.0  # one source is the per-address rules' business, not a campaign
        anomalous = score >= s.guarded_score  # even below the floor
        if failures / minutes < s.min_failures_per_minute:
            score = 0.0
        st.score = score
        st.figures = {"attempts": round(attempts / minutes, 2)}
        st.figures.update({k: round(v / minutes, 2) for k, v in counts.items()})
        st.figures["failure_ratio"] = round(100.0 * failures / attempts, 2) if attempts else 0.0
        st.figures["score"] = round(score, 2)
        # Learn only from calm periods, so an attack never becomes the new normal: a tick is
        # learned one window late, and forgotten if anything anomalous comes first (the first
        # seconds of an attack score low, before it passes the floor or a threshold).
        if st.level != "normal" or anomalous:
            st.pending.clear()
        elif attempts:
            shares = tuple(counts[name] / attempts for name in SCORED)
            st.pending.append((hour, shares, st.ticks[-1].attempts))
            if len(st.pending) > size:
                self._learn(st, *st.pending.popleft())
        return self._move(protocol, st, closing * s.tick_seconds)

    def _learn(
        self, st: ProtocolState, hour: int, shares: tuple[float, ...], attempts: int
    ) -> None:
        for name, share in zip(SCORED, shares, strict=True):
            st.baselines[name].learn(share, self.alpha, hour)
        st.learned_ticks += 1
        st.evidence = (1 - self.alpha) * st.evidence + attempts

    def _move(self, protocol: str, st: ProtocolState, now: float) -> tuple[str, str, str] | None:
        s = self.settings
        if st.manual_until and now < st.manual_until:
            return None
        st.manual_until = 0.0
        target = "normal"
        if st.score >= s.closed_score and s.allow_auto_close:
            target = "closed"
        elif st.score >= s.strict_score:
            target = "strict"
        elif st.score >= s.guarded_score:
            target = "guarded"
        current = LEVELS.index(st.level)
        wanted = LEVELS.index(target)
        if wanted > current:
            st.above += 1
            st.calm_since = None
            if st.score >= s.prompt_score:
                # Strong evidence: one level up at once, at most one level per tick.
                target = LEVELS[current + 1]
            elif st.above < s.consecutive_ticks:
                return None  # weak evidence must hold
            st.above = 0
            if current == 0:
                st.raised_at = now
            before, st.level = st.level, target
            return protocol, before, target
        st.above = 0
        if current == 0:
            return None
        if st.score >= s.calm_score or (
            st.unsettled and now - st.raised_at < s.prior_hold_hours * 3600
        ):
            st.calm_since = None
            return None
        if st.calm_since is None:
            st.calm_since = now
        if now - st.calm_since >= s.calm_minutes * 60:
            st.calm_since = now
            before, st.level = st.level, LEVELS[current - 1]
            return protocol, before, st.level
        return None

    def set_manual(self, protocol: str, level: str, until: float) -> None:
        st = self.state(protocol)
        st.level = level
        st.manual_until = until
        st.above = 0
        st.calm_since = None

    def restore(self, protocol: str, level: str) -> None:
        """Resume a posture kept across a restart; the detector may lower it after calm."""
        self.state(protocol).level = level

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {
            p: {
                "level": st.level,
                "score": round(st.score, 2),
                "figures": dict(st.figures),
                "manual_until": st.manual_until or None,
            }
            for p, st in self.protocols.items()
        }

    # --- persistence ---------------------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        """What the detector has learned and the tick state it needs, JSON-ready (versioned).

        The posture level is not included: the engine persists and restores each protocol's
        posture itself; this keeps the baselines (hourly profiles included), the ticks of the
        current window, the calm ticks waiting to be learned, and the calm period under way."""
        return {
            "version": STATE_VERSION,
            "tick_seconds": self.settings.tick_seconds,
            "window_ticks": self.settings.window_ticks,
            "protocols": {p: _dump_protocol(st) for p, st in self.protocols.items()},
        }

    def load(self, data: Any) -> None:
        """Resume from `dump()`'s output; ValueError (nothing changed) if it is not one."""
        try:
            loaded = self._parse(data)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise ValueError(f"not a campaign detector state: {exc!r}") from None
        self.protocols.update(loaded)

    def _parse(self, data: dict[str, Any]) -> dict[str, ProtocolState]:
        if data["version"] != STATE_VERSION:
            raise ValueError(f"version {data['version']!r}, expected {STATE_VERSION}")
        same_ticks = (
            float(data["tick_seconds"]) == self.settings.tick_seconds
            and int(data["window_ticks"]) == self.settings.window_ticks
        )
        out: dict[str, ProtocolState] = {}
        for protocol, saved in dict(data["protocols"]).items():
            size = self.settings.window_ticks
            st = ProtocolState.empty(size)
            st.baselines = {}
            for name in SCORED:
                mean, var, samples, hourly = saved["baselines"][name]
                b = _Baseline()
                b.mean, b.var, b.samples = float(mean), float(var), int(samples)
                b.hourly = {int(h): (float(m), float(v), int(n)) for h, (m, v, n) in hourly.items()}
                if not (math.isfinite(b.mean) and math.isfinite(b.var) and b.var >= 0):
                    raise ValueError(f"{protocol}.{name}: not a finite mean and variance")
                st.baselines[name] = b
            st.learned_ticks = int(saved["learned_ticks"])
            st.evidence = float(saved["evidence"])
            st.calm_since = None if saved["calm_since"] is None else float(saved["calm_since"])
            st.raised_at = float(saved["raised_at"])
            st.pending = deque(
                (int(h), tuple(float(x) for x in shares), int(n))
                for h, shares, n in saved["pending"]
            )
            for _, shares, _ in st.pending:
                if len(shares) != len(SCORED):
                    raise ValueError(f"{protocol}: a pending tick of {len(shares)} figures")
            if same_ticks:
                st.tick_index = int(saved["tick_index"])
                for values in saved["ticks"][-size:]:
                    tick = _Tick()
                    (
                        tick.attempts,
                        tick.failures,
                        tick.unknown,
                        tick.unfamiliar_failures,
                        tick.leaked,
                    ) = (int(v) for v in values)
                    st.ticks.append(tick)
                for name in ("ips", "subnets", "strangers", "asns"):
                    epoch, bitmaps = saved["sketches"][name]
                    sketch: Sketch = getattr(st, name)
                    raw = base64.b64decode(bitmaps, validate=True)
                    if len(raw) != len(sketch.bitmaps):
                        raise ValueError(f"{protocol}.{name}: a sketch of {len(raw)} bytes")
                    sketch.epoch, sketch.bitmaps[:] = int(epoch), raw
                    sketch.last = -1
            out[str(protocol)] = st
        return out


def _dump_protocol(st: ProtocolState) -> dict[str, Any]:
    return {
        "baselines": {
            name: [b.mean, b.var, b.samples, {str(h): list(v) for h, v in b.hourly.items()}]
            for name, b in st.baselines.items()
        },
        "learned_ticks": st.learned_ticks,
        "evidence": st.evidence,
        "calm_since": st.calm_since,
        "raised_at": st.raised_at,
        "pending": [[h, list(shares), n] for h, shares, n in st.pending],
        "tick_index": st.tick_index,
        "ticks": [
            [t.attempts, t.failures, t.unknown, t.unfamiliar_failures, t.leaked] for t in st.ticks
        ],
        "sketches": {
            name: [sk.epoch, base64.b64encode(bytes(sk.bitmaps)).decode("ascii")]
            for name in ("ips", "subnets", "strangers", "asns")
            if (sk := getattr(st, name)) is not None
        },
    }
