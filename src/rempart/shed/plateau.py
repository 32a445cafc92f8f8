"""Concurrency limit found on the upstream's throughput plateau (hill climbing on served req/s).

An upstream that runs ``W`` requests at a time serves ``min(L, W) / work`` requests per second
when ``L`` are sent to it: the served rate grows with the limit ``L`` up to the upstream's width
and stays flat above it, where the extra requests only wait inside the upstream (in its own
FIFO, where HAProxy's priority ordering no longer applies). The limiter looks for that knee with
HAProxy's own count of responses, not with latency (which on a loaded host stays above any
no-load figure and has no fixed point of its own):

* It only learns while HAProxy queues for the server (demand exceeds the limit, ``saturated``):
  otherwise the served rate says how much was asked, not how much can be done. A tick without
  a queue is left out of the epoch; :data:`IDLE_TICKS` in a row call a probe off.
* It measures the served rate over an *epoch* (``epoch`` seconds and at least
  :data:`MIN_RESPONSES` responses, the first tick after a change skipped while the upstream
  settles), holding the limit, then over one epoch at ``L - step`` and, later, one at
  ``L + step`` (``step`` is a tenth of the limit, at least 1; halved after each step not
  worth taking, down to a fortieth, and doubled by each step worth it after the first of a
  run, up to two fifths, so that a limit far off comes back in a few epochs).
* A step is worth it when it changes the served rate by at least 60 % of what it would if every
  slot it adds (or removes) were fully used: ``|Δrate| ≥ GAIN * rate * step / L``. Going down
  that loses less keeps the lower limit; going up that gains that much keeps the higher one, and
  a kept step is followed at once by another in the same direction (so a limit far off converges
  in one epoch per step). A step down must also cost less than that share of one slot (or of
  5 % of the limit, the noise of one epoch, on a wide upstream), so that a long step across the
  knee is not kept. A step that is not worth it is undone; if it was more than 1, a step half as
  long is tried at once the same way. A step of 1 that looks worth it is judged again over two
  epochs before it is kept.
* Each rejected upward probe doubles the hold before the next (up to :data:`MAX_HOLDS` epochs):
  once converged the limit spends little time above the width, where critical requests would
  wait inside the upstream, and little below it, where throughput is lost.

An upstream whose latency jumps keeps its width: the limit stays, the served rate falls, and the
admission (:mod:`rempart.shed.admit_rate`) hands out that lower rate. An error ratio above
``error_ratio`` (errors are often fast and hide in the rate) halves the limit at once.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from rempart.shed.config import LimiterSettings

log = logging.getLogger("rempart.shed.plateau")

# Share of a step's full-use throughput that makes the step worth it. Below the width a slot
# is fully used; one step above it, it only fills the proxy's turnaround between requests
# (3-5 % at a width of 10 on a loaded host), which is not worth a request waiting inside the
# upstream, where priority no longer applies.
GAIN = 0.6
MIN_RESPONSES = 40  # responses an epoch needs, whatever its length
MIN_HOLDS = 2  # epochs held between probes after a move
MAX_HOLDS = 16  # the longest hold between upward probes once converged
MAX_FINE = 2  # a step is at least a tenth of the limit / 2**MAX_FINE
MIN_FINE = -2  # and at most a tenth of it * 2**-MIN_FINE
IDLE_TICKS = 5  # ticks without a queue that call a probe off


@dataclass
class Epoch:
    """Responses counted at one limit."""

    limit: int
    settle: int = 1  # ticks still to skip after the limit changed
    served: float = 0.0
    seconds: float = 0.0
    epochs: int = 1  # epoch lengths it lasts (2 once a step of 1 looked worth it)


class PlateauLimiter:
    """Feed it every tick's served responses (:meth:`observe`); read ``limit``."""

    def __init__(self, settings: LimiterSettings) -> None:
        self.settings = settings
        self.limit = self._clamp(settings.initial)
        self.base = self.limit  # the limit held between probes
        self.phase = "hold"  # "hold", "down" (probing base - step) or "up" (base + step)
        self.held_rate: float | None = None  # served req/s at ``base`` (mean of its epochs)
        self.held_epochs = 0  # epochs in that mean
        self.last_rate: float | None = None  # served req/s of the last completed epoch
        self.holds = MIN_HOLDS  # hold epochs between probes
        self.held = 0  # hold epochs completed since the last probe
        self.next_probe = "down"
        self.moves = 0  # probes kept
        self.fine = 0  # halvings of the step
        self.run = 0  # steps kept in a row
        self.idle = 0  # ticks without a queue in a row
        self.epoch = Epoch(self.limit)

    def _clamp(self, value: float) -> int:
        s = self.settings
        return int(max(math.ceil(s.min_limit), min(math.floor(s.max_limit), round(value))))

    def step(self) -> int:
        return max(1, round(self.base * 2.0**-self.fine / 10))

    def _set(self, limit: int, phase: str) -> None:
        self.limit, self.phase = limit, phase
        self.epoch = Epoch(limit)

    def observe(
        self, served: float, seconds: float, *, saturated: bool, error_ratio: float = 0.0
    ) -> int:
        """One tick: ``served`` responses in ``seconds``; ``saturated`` when HAProxy queued for
        the server at the end of it. Returns the limit to enforce now."""
        if error_ratio > self.settings.error_ratio:
            self.base = self._clamp(self.limit * 0.5)
            self.held_rate, self.held, self.held_epochs = None, 0, 0
            self._set(self.base, "hold")
            return self.limit
        if served < 0 or seconds <= 0:  # the first read, or HAProxy's counters went back
            self.epoch = Epoch(self.limit)
            return self.limit
        if not saturated:
            # Demand-limited: this tick says how much was asked, not how much can be done.
            self.idle += 1
            if self.idle >= IDLE_TICKS and (self.phase != "hold" or self.epoch.served):
                self._set(self.base, "hold")
            return self.limit
        self.idle = 0
        epoch = self.epoch
        if epoch.settle > 0:
            epoch.settle -= 1
            return self.limit
        epoch.served += served
        epoch.seconds += seconds
        if epoch.seconds < self.settings.epoch * epoch.epochs or epoch.served < MIN_RESPONSES:
            return self.limit
        self._decide(epoch.served / epoch.seconds)
        return self.limit

    def _worth(self, rate: float, reference: float, step: int) -> float:
        """The rate change that makes a step of ``step`` worth it from ``reference``."""
        return GAIN * reference * step / max(self.base, 1)

    def _decide(self, rate: float) -> None:
        self.last_rate = rate
        log.debug(
            "plateau: %s epoch at %d: %.1f req/s over %.2f s (held %s at %d)",
            self.phase,
            self.limit,
            rate,
            self.epoch.seconds,
            None if self.held_rate is None else round(self.held_rate, 1),
            self.base,
        )
        if self.phase == "hold":
            # The mean of the epochs at this base (at most the last MAX_HOLDS), so that one
            # noisy epoch does not decide the next comparison.
            n = min(self.held_epochs, MAX_HOLDS - 1)
            before = self.held_rate if self.held_rate is not None else rate
            self.held_rate = (before * n + rate) / (n + 1)
            self.held_epochs += 1
            self.held += 1
            if self.held < self.holds:
                self.epoch = Epoch(self.limit, settle=0)
                return
            self.held = 0
            direction, self.next_probe = (
                self.next_probe,
                "up" if self.next_probe == "down" else "down",
            )
            target = self.base - self.step() if direction == "down" else self.base + self.step()
            if self._clamp(target) == self.base:
                self.epoch = Epoch(self.limit, settle=0)
                return
            self._set(self._clamp(target), direction)
            return
        held = self.held_rate if self.held_rate is not None else rate
        step = abs(self.limit - self.base)
        if self.phase == "down":
            # Going down must cost less than (a share of) one slot, or 5 % of the limit on a
            # wide upstream: a long step that crosses the knee costs less than its length
            # would below it, yet already gives up served requests.
            kept = held - rate < self._worth(rate, held, min(step, max(1, round(self.base / 20))))
        else:
            kept = rate - held >= self._worth(rate, held, step)
        if kept and step == 1 and self.epoch.epochs == 1:
            # One slot is a few percent of the rate, as much as one epoch's noise: a step of 1
            # that looks worth it is judged again over two epochs before it is kept.
            self.epoch.epochs = 2
            return
        if kept:
            # The step paid (or cost nothing): keep it and try one more the same way.
            self.moves += 1
            self.run += 1
            if self.run >= 2:
                self.fine = max(MIN_FINE, self.fine - 1)
            self.base, self.held_rate, self.holds = self.limit, rate, MIN_HOLDS
            self.held_epochs = 1
            step = self.step()
            target = self._clamp(self.base + (step if self.phase == "up" else -step))
            if target == self.base:
                self._set(self.base, "hold")
            else:
                self._set(target, self.phase)
            return
        self.run = 0
        if step > 1:
            # Too far: try again at once the same way with half the step (a binary search on
            # the knee), compared with the same held rate.
            self.fine = min(MAX_FINE, max(0, self.fine) + 1)
            smaller = min(step - 1, self.step())
            self._set(
                self._clamp(self.base + (smaller if self.phase == "up" else -smaller)), self.phase
            )
            return
        if self.phase == "up":
            self.holds = min(MAX_HOLDS, self.holds * 2)
        self._set(self.base, "hold")
