"""Client-side adaptive throttling (Google SRE book, "Handling Overload").

A client (or a proxy acting for one client key) rejects locally with probability
``max(0, (requests - K * accepts) / (requests + 1))`` over a sliding window, K = 2: once the
backend refuses more than half of what is asked, most of the excess never leaves the client.
"""

from __future__ import annotations

import random
from collections import deque

K_DEFAULT = 2.0


def reject_probability(requests: float, accepts: float, k: float = K_DEFAULT) -> float:
    """The SRE formula; 0 while accepts keep up with requests / K."""
    return max(0.0, (requests - k * accepts) / (requests + 1.0))


class AdaptiveThrottle:
    """Counts requests and accepts in ``window`` seconds, in one-second buckets."""

    def __init__(
        self, window: float = 60.0, k: float = K_DEFAULT, rng: random.Random | None = None
    ):
        self.window = max(1, int(window))
        self.k = k
        self.rng = rng or random.Random()
        self._buckets: deque[list[int]] = deque()  # [second, requests, accepts]
        self.requests = 0
        self.accepts = 0

    def _expire(self, now: float) -> list[int]:
        second = int(now)
        while self._buckets and self._buckets[0][0] <= second - self.window:
            _, req, acc = self._buckets.popleft()
            self.requests -= req
            self.accepts -= acc
        if not self._buckets or self._buckets[-1][0] != second:
            self._buckets.append([second, 0, 0])
        return self._buckets[-1]

    def probability(self, now: float) -> float:
        self._expire(now)
        return reject_probability(self.requests, self.accepts, self.k)

    def should_reject(self, now: float) -> bool:
        """Decide one request; counts it as a request either way (as the SRE book does)."""
        bucket = self._expire(now)
        p = reject_probability(self.requests, self.accepts, self.k)
        bucket[1] += 1
        self.requests += 1
        return p > 0.0 and self.rng.random() < p

    def accepted(self, now: float) -> None:
        bucket = self._expire(now)
        bucket[2] += 1
        self.accepts += 1

    @property
    def idle(self) -> bool:
        return self.requests == 0
