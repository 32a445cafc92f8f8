"""Window counters: boundaries, expiry, wrap-around; distinct sketches: error bound."""

from __future__ import annotations

import random
import statistics

from rempart.engine.distinct import EXACT, SATURATED, Sketch
from rempart.engine.windows import CEILING, FAILURES, KINDS, REPORTS, RingSlab


def test_counts_within_window_and_expire_after() -> None:
    rings = RingSlab(12, KINDS)
    slot = rings.alloc()
    rings.add(slot, FAILURES, 100)
    rings.add(slot, FAILURES, 100)
    rings.add(slot, REPORTS, 100)
    assert rings.total(slot, FAILURES, 1, 100) == 2
    assert rings.total(slot, REPORTS, 1, 100) == 1
    # Still inside a 3-bucket window two buckets later, gone from a 2-bucket window.
    assert rings.total(slot, FAILURES, 3, 102) == 2
    assert rings.total(slot, FAILURES, 2, 102) == 0
    # Beyond the ring's horizon everything reads zero.
    assert rings.total(slot, FAILURES, 12, 111) == 2
    assert rings.total(slot, FAILURES, 12, 112) == 0


def test_ring_reuse_clears_stale_buckets() -> None:
    rings = RingSlab(4, KINDS)
    slot = rings.alloc()
    for bucket in range(4):
        rings.add(slot, FAILURES, bucket, amount=bucket + 1)
    assert rings.total(slot, FAILURES, 4, 3) == 1 + 2 + 3 + 4
    rings.add(slot, FAILURES, 5)  # bucket 4 skipped, 5 reuses slot 1: slots 0 and 1 cleared
    assert rings.total(slot, FAILURES, 4, 5) == 3 + 4 + 1
    rings.add(slot, FAILURES, 50)  # far jump: all cleared
    assert rings.total(slot, FAILURES, 4, 50) == 1


def test_late_events_older_than_ring_are_ignored() -> None:
    rings = RingSlab(4, KINDS)
    slot = rings.alloc()
    rings.add(slot, FAILURES, 10)
    rings.add(slot, FAILURES, 6)  # outside the ring: dropped
    rings.add(slot, FAILURES, 8)  # inside: counted in its own bucket
    assert rings.total(slot, FAILURES, 4, 10) == 2
    assert rings.total(slot, FAILURES, 1, 10) == 1


def test_counters_saturate_at_the_ceiling() -> None:
    rings = RingSlab(4, KINDS)
    slot = rings.alloc()
    rings.add(slot, FAILURES, 1, amount=CEILING - 1)
    rings.bump(slot, 2, FAILURES, REPORTS)
    rings.bump(slot, 2, FAILURES, REPORTS)
    assert rings.total(slot, FAILURES, 4, 2) == CEILING
    assert rings.total(slot, REPORTS, 4, 2) == 2


def test_slots_are_independent_and_reused_zeroed() -> None:
    rings = RingSlab(6, KINDS)
    a, b = rings.alloc(), rings.alloc()
    assert a != b and len(rings) == 2
    for _ in range(3):
        rings.bump(a, 40, REPORTS, FAILURES)
    rings.bump(b, 41, REPORTS)
    assert rings.total(a, FAILURES, 6, 41) == 3
    assert rings.total(b, FAILURES, 6, 41) == 0
    assert rings.total(b, REPORTS, 6, 41) == 1
    rings.release(a)
    assert len(rings) == 1
    c = rings.alloc()
    assert c == a  # reused before the arrays grow ...
    assert len(rings.epochs) == 2
    assert rings.total(c, FAILURES, 6, 41) == 0  # ... and zeroed, totals included
    assert rings.total(c, REPORTS, 6, 41) == 0
    assert rings.total(b, REPORTS, 6, 41) == 1  # the neighbour is untouched


def test_one_counter_slab_for_the_failures_only_family() -> None:
    rings = RingSlab(12, 1)
    slots = [rings.alloc() for _ in range(3)]
    for i, slot in enumerate(slots):
        rings.add(slot, 0, 7, amount=i + 1)
    assert [rings.total(slot, 0, 12, 7) for slot in slots] == [1, 2, 3]
    assert len(rings.cells) == 3 * 13


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


def _colliding(n: int) -> list[int]:
    """`n` distinct 32-bit hashes that all set the same bitmap bit (the bitmap alone reads 1)."""
    return [(i << 8) | 0x2A for i in range(1, n + 1)]


def test_sketch_counts_small_sets_exactly_when_bits_collide() -> None:
    for n in (2, 5, 12, EXACT - 1):
        sk = Sketch(4)
        for h in _colliding(n):
            sk.add(h, 1, 4)
        bitmap_only = Sketch(4, exact=False)
        for h in _colliding(n):
            bitmap_only.add(h, 1, 4)
        assert bitmap_only.estimate(4, 1, 4) == 1
        assert sk.estimate(4, 1, 4) == n
        assert sk.estimate(4, 3, 4) == n  # the same window read later
        assert sk.estimate(1, 2, 4) == 0  # a one-bucket window after the items' bucket


def test_sketch_exact_items_follow_their_newest_bucket_and_expire() -> None:
    sk = Sketch(4)
    a, b, c = _colliding(3)
    sk.add(a, 0, 4)
    sk.add(b, 0, 4)
    sk.add(a, 2, 4)  # seen again later: counts in windows that hold bucket 2
    sk.add(c, 3, 4)
    assert sk.estimate(4, 3, 4) == 3
    assert sk.estimate(2, 3, 4) == 2  # a (bucket 2) and c (bucket 3)
    assert sk.estimate(4, 4, 4) == 2  # bucket 0 left the ring: b is gone, a and c stay
    sk.add(_colliding(4)[3], 5, 4)  # advancing forgets b's entry
    assert len(sk.bitmaps) == 32 * 4 + 3 * 5
    assert sk.estimate(4, 5, 4) == 3
    sk.add(a, 40, 4)  # far later: everything cleared, a counted afresh
    assert sk.estimate(4, 40, 4) == 1
    assert len(sk.bitmaps) == 32 * 4 + 5


def test_sketch_remembers_at_most_exact_items_and_falls_back_to_the_bitmap() -> None:
    rng = random.Random(3)
    sk = Sketch(4)
    hashes = [rng.getrandbits(32) for _ in range(200)]
    for h in hashes:
        sk.add(h, 2, 4)
    assert len(sk.bitmaps) == 32 * 4 + EXACT * 5
    bitmap_only = Sketch(4, exact=False)
    for h in hashes:
        bitmap_only.add(h, 2, 4)
    assert sk.estimate(4, 2, 4) == bitmap_only.estimate(4, 2, 4) > EXACT


def test_sketch_late_item_in_an_older_bucket_is_counted_there() -> None:
    sk = Sketch(4)
    a, b = _colliding(2)
    sk.add(a, 5, 4)
    sk.add(b, 3, 4)  # a late report, still inside the ring
    assert sk.estimate(4, 5, 4) == 2
    assert sk.estimate(2, 5, 4) == 1
    sk.add(b, 1, 4)  # older than the ring: ignored
    assert sk.estimate(4, 5, 4) == 2


def test_sketch_repeated_item_is_counted_again_in_each_new_bucket() -> None:
    sk = Sketch(4)
    a, b = _colliding(2)
    for bucket in (0, 0, 1, 1, 2):
        sk.add(a, bucket, 4)  # the same item again: each new bucket still records it
    assert sk.estimate(1, 2, 4) == 1
    sk.add(b, 2, 4)
    sk.add(a, 2, 4)
    assert sk.estimate(1, 2, 4) == 2
    assert sk.estimate(1, 5, 4) == 0
    sk.add(a, 5, 4)
    assert sk.estimate(1, 5, 4) == 1 and sk.estimate(4, 5, 4) == 2  # b is still in the ring
    sk.add(a, 6, 4)
    assert sk.estimate(4, 6, 4) == 1  # b's bucket left it
