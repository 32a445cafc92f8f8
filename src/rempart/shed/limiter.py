"""Adaptive concurrency limit from the gradient of RTT (Netflix Gradient2, Envoy adaptive).

Each update compares the sampled RTT with the no-load RTT and rescales the limit::

    gradient  = clamp(tolerance * rtt_noload / rtt_sample, 0.5, 1.0)
    new_limit = limit * gradient + queue_allowance(limit)        # log10-sized growth probe
    limit     = (1 - smoothing) * limit + smoothing * new_limit   # clamped to [min, max]

The fixed point under saturation is ``limit ≈ tolerance * capacity + queue_allowance``: the
limit grows while RTT stays near its no-load value and shrinks as soon as queueing shows up in
latency, so it settles near the upstream's real concurrency whatever its capacity. An error ratio
above ``error_ratio`` halves the limit (errors are often fast and hide in latency).

The no-load RTT is *measured*, not guessed. Under constant saturation every sample includes
queueing, so a windowed minimum only ever learns a queued RTT (and a limit that started above
capacity would stay there). As in Envoy's adaptive concurrency filter, the limiter therefore
re-measures it every ``minrtt_interval`` seconds (± ``minrtt_jitter``, so that many instances do
not pin together): for ``minrtt_duration`` seconds the admitted concurrency drops to
``minrtt_concurrency`` (:meth:`GradientLimiter.concurrency`), samples taken once the upstream
has drained give the new no-load RTT, which replaces the old one (it may go up or down), and the
previous limit is restored. The first measurement happens after the first sample, so a limiter
that starts above capacity corrects itself within one interval.
"""

from __future__ import annotations

import math
import random
import time

from rempart.shed.config import LimiterSettings


class GradientLimiter:
    """One concurrency limit; feed it RTT samples, read :meth:`concurrency` (or ``limit``)."""

    def __init__(self, settings: LimiterSettings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.rng = rng or random.Random()
        self.limit: float = settings.initial
        self.rtt_noload: float | None = None
        self.last_rtt: float | None = None
        self.last_gradient: float = 1.0
        self.measuring = False
        self.measurements = 0  # completed no-load re-measurements
        self.next_measure: float | None = None  # monotonic time of the next re-measurement
        self._measure_start = 0.0
        self._measure_samples: list[float] = []

    @staticmethod
    def queue_allowance(limit: float) -> float:
        return max(1.0, math.log10(max(limit, 1.0)))

    def concurrency(self, reserve: float = 0.0) -> float:
        """The concurrency to admit now: the limit, or the pinned value while re-measuring.

        ``reserve`` is the concurrency the caller must keep even while re-measuring (the
        critical classes' share), so that a measurement never starves them.
        """
        if self.measuring:
            pinned = max(self.settings.minrtt_concurrency, reserve)
            return max(self.settings.min_limit, min(self.limit, pinned))
        return self.limit

    def _schedule(self, now: float, first: bool = False) -> None:
        s = self.settings
        if s.minrtt_interval <= 0:
            self.next_measure = None
            return
        jitter = 1.0 + s.minrtt_jitter * (2.0 * self.rng.random() - 1.0)
        self.next_measure = now + (s.minrtt_duration if first else s.minrtt_interval * jitter)

    def _measure(self, sample: float, now: float) -> None:
        s = self.settings
        drain = 2.0 * (self.last_rtt or sample)
        if now - self._measure_start >= min(drain, s.minrtt_duration / 2):
            self._measure_samples.append(sample)
        if now - self._measure_start >= s.minrtt_duration and self._measure_samples:
            self.rtt_noload = min(self._measure_samples)
            self._measure_samples = []
            self.measuring = False
            self.measurements += 1
            self._schedule(now)

    def update(
        self,
        rtt: float,
        inflight: float,
        *,
        rtt_min: float | None = None,
        now: float | None = None,
        error_ratio: float = 0.0,
    ) -> float:
        """Take one sample (seconds); ``inflight`` is the concurrency while it was measured."""
        s = self.settings
        now = time.monotonic() if now is None else now
        floor = rtt if rtt_min is None else min(rtt_min, rtt)
        if self.measuring:
            self._measure(floor, now)
            self.last_rtt = rtt
            return self.limit
        if self.rtt_noload is None:
            self.rtt_noload = floor
            self._schedule(now, first=True)
        else:
            self.rtt_noload = min(self.rtt_noload, floor)
        self.last_rtt = rtt
        if self.next_measure is not None and now >= self.next_measure:
            self.measuring = True
            self._measure_start = now
            self._measure_samples = []
            return self.limit
        if error_ratio > s.error_ratio:
            self.last_gradient = 0.5
            self.limit = max(s.min_limit, self.limit * 0.5)
            return self.limit
        gradient = max(0.5, min(1.0, s.tolerance * self.rtt_noload / max(rtt, 1e-9)))
        self.last_gradient = gradient
        if gradient >= 1.0 and inflight < self.limit / 2:
            return self.limit  # application-limited: no evidence that more would be fine
        new_limit = self.limit * gradient + self.queue_allowance(self.limit)
        limit = (1.0 - s.smoothing) * self.limit + s.smoothing * new_limit
        self.limit = max(s.min_limit, min(s.max_limit, limit))
        return self.limit
