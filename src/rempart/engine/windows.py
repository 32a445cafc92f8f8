"""Time-bucketed sliding-window counters: a fixed ring of buckets per key, several kinds per bucket.

A window of `n` buckets sums the current (partial) bucket and the `n - 1` before it, so a count
covers between (n-1)·width and n·width seconds of history. Buckets are cleared lazily when the
ring advances, so an idle key costs nothing and expired counts read as zero.
"""

from __future__ import annotations

from array import array

# Counter kinds, in the order they are stored in a bucket.
REPORTS = 0  # every reported attempt
FAILURES = 1  # wrong password or unknown login (not policy rejections)
UNKNOWN = 2  # failures the backend said were for an unknown login
REJECTS = 3  # attempts the policy refused (reported with policy_reject)
UNFAMILIAR = 4  # failures from a network and device the account has not succeeded from
KINDS = 5
# Counters are 16-bit and saturate: a key past 65,535 in the ring counts as "at least that",
# far beyond any threshold, at half the memory of 32-bit cells.
CEILING = 0xFFFF


def live_buckets(epoch: int, span: int, bucket: int, size: int) -> tuple[int, int] | None:
    """(oldest, newest) absolute buckets of a `span`-bucket window ending at `bucket` that still
    hold data in a ring of `size` whose newest write was at `epoch`; None when none do."""
    oldest = bucket - span + 1
    if epoch < oldest or epoch <= bucket - size:
        return None
    return max(oldest, epoch - size + 1), min(epoch, bucket)


class Ring:
    """Counters of `kinds` kinds in a ring of `size` buckets.

    `cells` holds size·kinds bucket counters followed by `kinds` running totals of the whole
    ring, so the most common read (a full-ring window on an active key) is one index. Totals
    saturate at CEILING and bucket counters only grow while their total can.
    """

    __slots__ = ("cells", "epoch")

    def __init__(self, size: int, kinds: int) -> None:
        self.epoch = -1  # absolute index of the newest bucket written
        self.cells = array("H", bytes(2 * (size + 1) * kinds))

    def _advance(self, bucket: int, size: int, kinds: int) -> None:
        epoch, cells = self.epoch, self.cells
        if epoch < 0:
            pass  # a new ring is already zero
        elif bucket - epoch >= size:
            cells[:] = array("H", bytes(2 * len(cells)))
        else:
            totals = size * kinds
            for b in range(epoch + 1, bucket + 1):
                base = (b % size) * kinds
                for k in range(kinds):
                    cells[totals + k] -= cells[base + k]
                    cells[base + k] = 0
        self.epoch = bucket

    def add(self, kind: int, bucket: int, size: int, kinds: int, amount: int = 1) -> None:
        if bucket > self.epoch:
            self._advance(bucket, size, kinds)
        elif bucket <= self.epoch - size:
            return  # too old to count
        i = (bucket % size) * kinds + kind
        cells = self.cells
        amount = min(amount, CEILING - cells[size * kinds + kind])
        cells[i] += amount
        cells[size * kinds + kind] += amount

    def bump(self, bucket: int, size: int, kinds: int, first: int, second: int = -1) -> None:
        """Add one to `first` (and to `second` unless -1): one call per report on the hot path."""
        if bucket > self.epoch:
            self._advance(bucket, size, kinds)
        elif bucket <= self.epoch - size:
            return
        base = (bucket % size) * kinds
        totals = size * kinds
        cells = self.cells
        if cells[totals + first] < CEILING:
            cells[base + first] += 1
            cells[totals + first] += 1
        if second >= 0 and cells[totals + second] < CEILING:
            cells[base + second] += 1
            cells[totals + second] += 1

    def total(self, kind: int, span: int, bucket: int, size: int, kinds: int) -> int:
        """Sum of `kind` over the `span` buckets ending at `bucket` (the current one)."""
        epoch = self.epoch
        cells = self.cells
        if epoch == bucket and span >= size:
            return cells[size * kinds + kind]
        live = live_buckets(epoch, span, bucket, size)
        if live is None:
            return 0
        oldest, newest = live
        total = 0
        for b in range(oldest, newest + 1):
            total += cells[(b % size) * kinds + kind]
        return total

    def clear(self) -> None:
        self.epoch = -1
        self.cells[:] = array("H", bytes(2 * len(self.cells)))
