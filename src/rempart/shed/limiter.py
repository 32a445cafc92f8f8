"""Adaptive concurrency limit from the gradient of RTT (Netflix concurrency-limits, Envoy).

Each update compares the sampled RTT with the no-load RTT (a windowed minimum that slowly ages
upward, so a genuinely slower upstream is re-learned) and rescales the limit::

    gradient  = clamp(tolerance * rtt_noload / rtt_sample, 0.5, 1.0)
    new_limit = limit * gradient + queue_allowance(limit)        # log10-sized growth probe
    limit     = (1 - smoothing) * limit + smoothing * new_limit   # clamped to [min, max]

The limit grows while RTT stays near its no-load value and shrinks as soon as queueing shows up
in latency, so it settles near the upstream's real concurrency whatever its capacity. An error
ratio above ``error_ratio`` halves the limit (errors are often fast and hide in latency).
"""

from __future__ import annotations

import math

from rempart.shed.config import LimiterSettings

NOLOAD_AGING_PER_SECOND = 0.002  # rtt_noload may rise by 0.2 %/s toward samples


class GradientLimiter:
    """One concurrency limit; feed it RTT samples, read ``limit``."""

    def __init__(self, settings: LimiterSettings) -> None:
        self.settings = settings
        self.limit: float = settings.initial
        self.rtt_noload: float | None = None
        self.last_rtt: float | None = None
        self.last_gradient: float = 1.0

    @staticmethod
    def queue_allowance(limit: float) -> float:
        return max(1.0, math.log10(max(limit, 1.0)))

    def update(
        self,
        rtt: float,
        inflight: float,
        *,
        rtt_min: float | None = None,
        elapsed: float = 0.0,
        error_ratio: float = 0.0,
    ) -> float:
        """Take one sample (seconds); ``inflight`` is the concurrency while it was measured."""
        s = self.settings
        floor = rtt if rtt_min is None else min(rtt_min, rtt)
        if self.rtt_noload is None:
            self.rtt_noload = floor
        else:
            aged = self.rtt_noload * (1.0 + NOLOAD_AGING_PER_SECOND * max(elapsed, 0.0))
            self.rtt_noload = min(aged, floor)
        self.last_rtt = rtt
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
