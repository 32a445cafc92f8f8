"""Time-bucketed sliding-window counters of many keys in one array: a ring of buckets per key.

A window of `n` buckets sums the current (partial) bucket and the `n - 1` before it, so a count
covers between (n-1)·width and n·width seconds of history. Buckets are cleared lazily when a
key's ring advances, so an idle key costs nothing and expired counts read as zero.

The rings of every key of one shape live in one `RingSlab` (a flat `array` of 16-bit cells and
one of epochs), addressed by a slot number: a tracked key costs its cells and an integer, not a
Python object with its own buffer (no allocation per key once the slab has grown, nothing for
the garbage collector to traverse).

`bump`, `add` and `total`, a few per report and per decision, run in C when the compiled core
is built (`rempart.engine._rings`, on the same arrays, checked against this reference by the
property tests); the methods below are the reference and the fallback.
"""

from __future__ import annotations

from array import array
from typing import Final

from rempart import native_attribute

# Counter kinds, in the order they are stored in a bucket.
REPORTS: Final = 0  # every reported attempt
FAILURES: Final = 1  # wrong password or unknown login (not policy rejections)
UNKNOWN: Final = 2  # failures the backend said were for an unknown login
REJECTS: Final = 3  # attempts the policy refused (reported with policy_reject)
UNFAMILIAR: Final = 4  # failures from a network and device the account has not succeeded from
KINDS: Final = 5
# Counters are 16-bit and saturate: a key past 65,535 in the ring counts as "at least that",
# far beyond any threshold, at half the memory of 32-bit cells.
CEILING: Final = 0xFFFF


# The C arithmetic, or None (pure Python asked for, or not built): see the module's docstring.
_BUMP: Final = native_attribute("rempart.engine._rings", "bump")
_ADD: Final = native_attribute("rempart.engine._rings", "add")
_TOTAL: Final = native_attribute("rempart.engine._rings", "total")


def live_buckets(epoch: int, span: int, bucket: int, size: int) -> tuple[int, int] | None:
    """(oldest, newest) absolute buckets of a `span`-bucket window ending at `bucket` that still
    hold data in a ring of `size` whose newest write was at `epoch`; None when none do."""
    oldest = bucket - span + 1
    if epoch < oldest or epoch <= bucket - size:
        return None
    return max(oldest, epoch - size + 1), min(epoch, bucket)


class RingSlab:
    """Rings of `size` buckets of `kinds` counters, one per slot.

    Slot `s` owns cells `s·stride .. (s+1)·stride - 1`: `size·kinds` bucket counters followed by
    `kinds` running totals of the whole ring, so the most common read (a full-ring window on an
    active key) is one index; `epochs[s]` is the absolute index of its newest bucket written
    (-1: never). Totals saturate at CEILING and bucket counters only grow while their total
    can. Released slots are zeroed and reused before the arrays grow.
    """

    __slots__ = ("cells", "epochs", "free", "kinds", "size", "stride", "zeros")

    def __init__(self, size: int, kinds: int) -> None:
        self.size = size
        self.kinds = kinds
        self.stride = (size + 1) * kinds
        self.cells = array("H")
        self.epochs = array("q")
        self.free: list[int] = []
        self.zeros = array("H", bytes(2 * self.stride))

    def __len__(self) -> int:
        """Slots in use."""
        return len(self.epochs) - len(self.free)

    def alloc(self) -> int:
        """A zeroed slot."""
        free = self.free
        if free:
            return free.pop()
        slot = len(self.epochs)
        self.epochs.append(-1)
        self.cells.extend(self.zeros)
        return slot

    def release(self, slot: int) -> None:
        """Zero a slot and keep it for the next `alloc`."""
        base = slot * self.stride
        self.cells[base : base + self.stride] = self.zeros
        self.epochs[slot] = -1
        self.free.append(slot)

    def dump(self) -> tuple[bytes, bytes]:
        """The slab's cells and epochs as bytes (machine order), for a counter checkpoint."""
        return self.cells.tobytes(), self.epochs.tobytes()

    def load(self, cells: bytes, epochs: bytes, used: set[int]) -> None:
        """Take the cells and epochs `dump` gave (of a slab of the same shape); every slot not
        in `used` is zeroed and free. ValueError when the sizes do not fit the shape."""
        loaded_cells, loaded_epochs = array("H"), array("q")
        try:
            loaded_cells.frombytes(cells)
            loaded_epochs.frombytes(epochs)
        except ValueError:
            raise ValueError("a counter slab is not a whole number of cells") from None
        if len(loaded_cells) != len(loaded_epochs) * self.stride:
            raise ValueError(
                f"a counter slab holds {len(loaded_cells)} cells for {len(loaded_epochs)} slots "
                f"of {self.stride}"
            )
        if used and (min(used) < 0 or max(used) >= len(loaded_epochs)):
            raise ValueError("a tracked key's slot is outside its counter slab")
        self.cells, self.epochs, self.free = loaded_cells, loaded_epochs, []
        for slot in range(len(loaded_epochs) - 1, -1, -1):  # alloc pops the lowest slot first
            if slot not in used:
                self.release(slot)

    def _advance(self, slot: int, bucket: int) -> None:
        epoch, cells = self.epochs[slot], self.cells
        size, kinds = self.size, self.kinds
        base = slot * self.stride
        if epoch < 0:
            pass  # a new slot is already zero
        elif bucket - epoch >= size:
            cells[base : base + self.stride] = self.zeros
        else:
            totals = base + size * kinds
            for b in range(epoch + 1, bucket + 1):
                first = base + (b % size) * kinds
                for k in range(kinds):
                    count = cells[first + k]
                    if count:  # most kinds of most buckets are empty: one read instead of four
                        cells[totals + k] -= count
                        cells[first + k] = 0
        self.epochs[slot] = bucket

    def add(self, slot: int, kind: int, bucket: int, amount: int = 1) -> None:
        if _ADD is not None and amount >= 0:
            _ADD(self.cells, self.epochs, slot, kind, bucket, amount, self.size, self.kinds)
        else:
            self.py_add(slot, kind, bucket, amount)

    def py_add(self, slot: int, kind: int, bucket: int, amount: int = 1) -> None:
        """`add`'s reference."""
        epoch = self.epochs[slot]
        size, kinds = self.size, self.kinds
        if bucket > epoch:
            self._advance(slot, bucket)
        elif bucket <= epoch - size:
            return  # too old to count
        base = slot * self.stride
        total = base + size * kinds + kind
        cells = self.cells
        amount = min(amount, CEILING - cells[total])
        cells[base + (bucket % size) * kinds + kind] += amount
        cells[total] += amount

    def bump(self, slot: int, bucket: int, first: int, second: int = -1) -> None:
        """Add one to `first` (and to `second` unless -1): one call per report on the hot path."""
        if _BUMP is not None:
            _BUMP(self.cells, self.epochs, slot, bucket, first, second, self.size, self.kinds)
        else:
            self.py_bump(slot, bucket, first, second)

    def py_bump(self, slot: int, bucket: int, first: int, second: int = -1) -> None:
        """`bump`'s reference."""
        epoch = self.epochs[slot]
        size, kinds = self.size, self.kinds
        if bucket > epoch:
            self._advance(slot, bucket)
        elif bucket <= epoch - size:
            return
        base = slot * self.stride
        cell = base + (bucket % size) * kinds
        totals = base + size * kinds
        cells = self.cells
        if cells[totals + first] < CEILING:
            cells[cell + first] += 1
            cells[totals + first] += 1
        if second >= 0 and cells[totals + second] < CEILING:
            cells[cell + second] += 1
            cells[totals + second] += 1

    def total(self, slot: int, kind: int, span: int, bucket: int) -> int:
        """Sum of `kind` over the `span` buckets ending at `bucket` (the current one)."""
        if _TOTAL is not None:
            found: int = _TOTAL(
                self.cells, self.epochs, slot, kind, span, bucket, self.size, self.kinds
            )
            return found
        return self.py_total(slot, kind, span, bucket)

    def py_total(self, slot: int, kind: int, span: int, bucket: int) -> int:
        """`total`'s reference."""
        epoch = self.epochs[slot]
        size, kinds = self.size, self.kinds
        base = slot * self.stride
        cells = self.cells
        if epoch == bucket and span >= size:
            return cells[base + size * kinds + kind]
        live = live_buckets(epoch, span, bucket, size)
        if live is None:
            return 0
        oldest, newest = live
        total = 0
        for b in range(oldest, newest + 1):
            total += cells[base + (b % size) * kinds + kind]
        return total
