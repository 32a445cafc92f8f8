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
KINDS = 4


class Ring:
    """Counters of `kinds` kinds in a ring of `size` buckets."""

    __slots__ = ("cells", "epoch")

    def __init__(self, size: int, kinds: int) -> None:
        self.epoch = -1  # absolute index of the newest bucket written
        self.cells = array("I", bytes(4 * size * kinds))

    def add(self, kind: int, bucket: int, size: int, kinds: int, amount: int = 1) -> None:
        epoch = self.epoch
        cells = self.cells
        if bucket > epoch:
            if bucket - epoch >= size:
                for i in range(len(cells)):
                    cells[i] = 0
            else:
                for b in range(epoch + 1, bucket + 1):
                    base = (b % size) * kinds
                    for k in range(kinds):
                        cells[base + k] = 0
            self.epoch = epoch = bucket
        elif bucket <= epoch - size:
            return  # too old to count
        i = (bucket % size) * kinds + kind
        value = cells[i] + amount
        cells[i] = value if value < 0xFFFFFFFF else 0xFFFFFFFF

    def total(self, kind: int, span: int, bucket: int, size: int, kinds: int) -> int:
        """Sum of `kind` over the `span` buckets ending at `bucket` (the current one)."""
        epoch = self.epoch
        oldest = bucket - span + 1
        if epoch < oldest or epoch <= bucket - size:
            return 0
        newest = epoch if epoch < bucket else bucket
        if oldest <= epoch - size:
            oldest = epoch - size + 1
        cells = self.cells
        return sum(cells[(b % size) * kinds + kind] for b in range(oldest, newest + 1))

    def clear(self) -> None:
        self.epoch = -1
        for i in range(len(self.cells)):
            self.cells[i] = 0
