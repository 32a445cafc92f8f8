"""Window counters: boundaries, expiry, wrap-around; distinct sketches: error bound."""

from __future__ import annotations

import random
import statistics

from rempart.engine.distinct import SATURATED, Sketch
from rempart.engine.windows import FAILURES, KINDS, REPORTS, Ring


def test_counts_within_window_and_expire_after() -> None:
    ring = Ring(12, KINDS)
    ring.add(FAILURES, 100, 12, KINDS)
    ring.add(FAILURES, 100, 12, KINDS)
    ring.add(REPORTS, 100, 12, KINDS)
    assert ring.total(FAILURES, 1, 100, 12, KINDS) == 2
    assert ring.total(REPORTS, 1, 100, 12, KINDS) == 1
    # Still inside a 3-bucket window two buckets later, gone from a 2-bucket window.
    assert ring.total(FAILURES, 3, 102, 12, KINDS) == 2
    assert ring.total(FAILURES, 2, 102, 12, KINDS) == 0
    # Beyond the ring's horizon everything reads zero.
    assert ring.total(FAILURES, 12, 111, 12, KINDS) == 2
    assert ring.total(FAILURES, 12, 112, 12, KINDS) == 0


def test_ring_reuse_clears_stale_buckets() -> None:
    ring = Ring(4, KINDS)
    for bucket in range(4):
        ring.add(FAILURES, bucket, 4, KINDS, amount=bucket + 1)
    assert ring.total(FAILURES, 4, 3, 4, KINDS) == 1 + 2 + 3 + 4
    ring.add(FAILURES, 5, 4, KINDS)  # bucket 4 skipped, 5 reuses slot 1: slots 0 and 1 cleared
    assert ring.total(FAILURES, 4, 5, 4, KINDS) == 3 + 4 + 1
    ring.add(FAILURES, 50, 4, KINDS)  # far jump: all cleared
    assert ring.total(FAILURES, 4, 50, 4, KINDS) == 1


def test_late_events_older_than_ring_are_ignored() -> None:
    ring = Ring(4, KINDS)
    ring.add(FAILURES, 10, 4, KINDS)
    ring.add(FAILURES, 6, 4, KINDS)  # outside the ring: dropped
    ring.add(FAILURES, 8, 4, KINDS)  # inside: counted in its own bucket
    assert ring.total(FAILURES, 4, 10, 4, KINDS) == 2
    assert ring.total(FAILURES, 1, 10, 4, KINDS) == 1


def test_sketch_exact_for_tiny_and_expires() -> None:
    sk = Sketch(4)
    assert sk.estimate(4, 0, 4) == 0
    sk.add(12345, 0, 4)
    sk.add(12345, 0, 4)
    assert sk.estimate(4, 0, 4) == 1
    assert sk.estimate(4, 3, 4) == 1
    assert sk.estimate(4, 4, 4) == 0


def test_sketch_error_within_stated_bound() -> None:
    """Stated: relative standard error about 4.5% at 20, 4.7% at 100, 6.5% at 500 items."""
    rng = random.Random(7)
    for n, stated in ((20, 0.045), (100, 0.047), (500, 0.065)):
        errors = []
        for _ in range(300):
            sk = Sketch(4)
            for _ in range(n):
                sk.add(rng.getrandbits(32), rng.randrange(4), 4)
            errors.append((sk.estimate(4, 3, 4) - n) / n)
        assert abs(statistics.mean(errors)) < stated
        assert statistics.pstdev(errors) < stated * 1.3


def test_sketch_saturates_instead_of_overflowing() -> None:
    sk = Sketch(1)
    for h in range(256):
        sk.add(h, 0, 1)
    assert sk.estimate(1, 0, 1) == SATURATED
