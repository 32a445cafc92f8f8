"""Distinct counts over sliding windows with bounded memory: one linear-counting bitmap per bucket.

Each bucket holds a 256-bit bitmap (32 bytes); an item sets one bit chosen by its hash; a window
ORs its buckets and estimates n = -m·ln(zeros/m) (Whang et al., linear counting). With m = 256
the relative standard error is about 4.5% at 20 items, 4.7% at 100 and 6.5% at 500; the
estimate saturates near m·ln(m) ≈ 1,420, which is reported as that ceiling.

Small counts are exact. Two of a dozen items share a bit with probability 23 %, and the
estimate then reads one low: a spray rule at 12 logins would let a source try a 13th account in
one case out of four. So a sketch also remembers its first `EXACT` (16) distinct items, each as
the item's 32-bit hash and the low byte of its newest bucket (5 bytes, after the bitmaps in the
same buffer, grown as items come), forgets those that leave the ring when it advances, and
answers the larger of the bitmap's estimate and the remembered items in the window: exact up to
15 items (the bitmap alone reads 17 for 16 items that share no bit), never less than before.
The campaign detector's sketches count thousands of sources and remember none (`exact=False`).

`Sketch.add` and `Sketch.estimate` run in C when the compiled core is built
(`rempart.engine._distinct`, on the same buffer, checked against this reference by the property
tests); `py_add` and `py_estimate` are the reference and the fallback.
"""

from __future__ import annotations

import hashlib
import math
from array import array
from collections.abc import Callable, Sequence
from typing import Final

from rempart import native_attribute
from rempart.engine.windows import live_buckets

BITS: Final = 256
BYTES: Final = 32  # BITS // 8, as a literal: compiled code then inlines it
# Indexed by the number of zero bits; no zero bit left means "at least SATURATED".
_ESTIMATE: Final = [0] + [round(-BITS * math.log(z / BITS)) for z in range(1, BITS + 1)]
SATURATED = _ESTIMATE[0] = _ESTIMATE[1]
_MASK: Final = (1 << BITS) - 1
EXACT: Final = 16  # distinct items a sketch remembers exactly
# Bytes per remembered item: its hash (4, little-endian), its newest bucket's low byte.
_ENTRY: Final = 5


# The C arithmetic, or None (pure Python asked for, or not built): see the module's docstring.
_ADD: Final = native_attribute("rempart.engine._distinct", "add")
_ESTIMATE_OF: Final = native_attribute("rempart.engine._distinct", "estimate")
if _ADD is not None:
    native_attribute("rempart.engine._distinct", "setup")(tuple(_ESTIMATE))  # one table for both


class Sketch:
    """A ring of `size` bitmaps, then up to `EXACT` remembered items (`exact=True`); memory is
    32·size bytes, 5 per remembered item, and the object."""

    __slots__ = ("bitmaps", "epoch", "exact", "last")

    def __init__(self, size: int, exact: bool = True) -> None:
        self.epoch = -1
        self.bitmaps = bytearray(BYTES * size)
        self.exact = exact
        # The latest item added to the newest bucket: a mail client polling from one address
        # adds the same account again and again, which then costs one comparison.
        self.last = -1

    def add(self, item_hash: int, bucket: int, size: int) -> None:
        epoch = self.epoch
        if item_hash == self.last and bucket == epoch:
            return
        if _ADD is None:
            self.py_add(item_hash, bucket, size)
            return
        epoch = self.epoch = _ADD(self.bitmaps, epoch, item_hash, bucket, size, self.exact)
        if bucket == epoch:
            self.last = item_hash

    def py_add(self, item_hash: int, bucket: int, size: int) -> None:
        """`add`'s reference (after its repeated-item check)."""
        epoch = self.epoch
        maps = self.bitmaps
        base = BYTES * size
        if bucket > epoch:
            if epoch < 0:
                pass  # a new sketch is already zero
            elif bucket - epoch >= size:
                maps[:] = bytes(base)
            else:
                for b in range(epoch + 1, bucket + 1):
                    start = (b % size) * BYTES
                    maps[start : start + BYTES] = bytes(BYTES)
                if len(maps) > base:
                    _forget_expired(maps, base, bucket, size)
            self.epoch = epoch = bucket
        elif bucket <= epoch - size:
            return
        bit = item_hash & 0xFF
        maps[(bucket % size) * BYTES + (bit >> 3)] |= 1 << (bit & 7)
        if bucket == epoch:
            self.last = item_hash
        if not self.exact:
            return
        end = len(maps)
        key = (item_hash & 0xFFFFFFFF).to_bytes(4, "little")
        at = maps.find(key, base) if end > base else -1
        while at >= 0 and (at - base) % _ENTRY:  # a match across two entries
            at = maps.find(key, at + 1)
        if at >= 0:
            # Ages are below `size` (at most 64) relative to the epoch: one byte tells them apart.
            if epoch - bucket < (epoch - maps[at + 4]) & 0xFF:
                maps[at + 4] = bucket & 0xFF
        elif end - base < EXACT * _ENTRY:
            maps += key
            maps.append(bucket & 0xFF)

    def estimate(self, span: int, bucket: int, size: int) -> int:
        """Estimated distinct items over the `span` buckets ending at `bucket`."""
        if _ESTIMATE_OF is not None:
            found: int = _ESTIMATE_OF(self.bitmaps, self.epoch, span, bucket, size)
            return found
        return self.py_estimate(span, bucket, size)

    def py_estimate(self, span: int, bucket: int, size: int) -> int:
        """`estimate`'s reference."""
        live = live_buckets(self.epoch, span, bucket, size)
        if live is None:
            return 0
        oldest, newest = live
        maps = self.bitmaps
        start = oldest % size
        count = newest - oldest + 1
        # OR the buckets together: one big int per contiguous run, folded 256 bits at a time.
        runs: tuple[tuple[int, int], ...]
        if start + count <= size:
            runs = ((start, count),)
        else:
            runs = ((start, size - start), (0, start + count - size))
        union = 0
        for first, n in runs:
            value = int.from_bytes(maps[first * BYTES : (first + n) * BYTES])
            for _ in range(n):
                union |= value
                value >>= BITS
        estimate = _ESTIMATE[BITS - (union & _MASK).bit_count()]
        base = BYTES * size
        if estimate >= EXACT or len(maps) - base <= estimate * _ENTRY:
            return estimate  # fewer remembered items than estimated: none of them bears on it
        epoch = self.epoch
        # Remembered items whose newest bucket is in the window: ages epoch-newest..epoch-oldest.
        young, old = epoch - newest, epoch - oldest
        remembered = 0
        for at in range(base + 4, len(maps), _ENTRY):
            age = (epoch - maps[at]) & 0xFF
            if young <= age <= old:
                remembered += 1
        return remembered if remembered > estimate else estimate


def pack_sketches(found: list[Sketch | None]) -> tuple[bytes, bytes, bytes, bytes]:
    """The sketches of a slot-indexed list as (slots, epochs, lengths, data) bytes (arrays "q",
    "q", "I" in machine order, then the buffers end to end), for a counter checkpoint."""
    slots, epochs, lengths, data = pack_sketch_rows(found, range(len(found)), -1)
    return slots.tobytes(), epochs.tobytes(), lengths.tobytes(), bytes(data)


def pack_sketch_rows(
    found: list[Sketch | None], slots: Sequence[int], first: int
) -> tuple[array[int], array[int], array[int], bytearray]:
    """The sketches of `found` at `slots` packed as `pack_sketches` packs them, each numbered
    `first` plus its place in `slots` (the dense slot a checkpoint copy gives its ring), or by
    its own slot when `first` is negative."""
    packed_slots, epochs, lengths = array("q"), array("q"), array("I")
    data = bytearray()
    for at, slot in enumerate(slots):
        sketch = found[slot] if slot < len(found) else None
        if sketch is None:
            continue
        packed_slots.append(slot if first < 0 else first + at)
        epochs.append(sketch.epoch)
        lengths.append(len(sketch.bitmaps))
        data += sketch.bitmaps
    return packed_slots, epochs, lengths, data


def unpack_sketches(
    packed: tuple[bytes, bytes, bytes, bytes], size: int, capacity: int
) -> list[Sketch | None]:
    """`pack_sketches`'s list back, `capacity` long, for rings of `size` buckets; ValueError
    naming what does not hold together."""
    slots, epochs, lengths = array("q"), array("q"), array("I")
    try:
        slots.frombytes(packed[0])
        epochs.frombytes(packed[1])
        lengths.frombytes(packed[2])
    except ValueError:
        raise ValueError("sketch sections are not whole numbers of values") from None
    data = packed[3]
    count = len(slots)
    if len(epochs) != count or len(lengths) != count or sum(lengths) != len(data):
        raise ValueError("sketch sections do not match")
    base = BYTES * size
    found: list[Sketch | None] = [None] * capacity
    at = 0
    for i in range(count):
        slot, epoch, length = slots[i], epochs[i], lengths[i]
        extra = length - base
        if not 0 <= slot < capacity or found[slot] is not None or epoch < -1:
            raise ValueError(f"a sketch has slot {slot} or epoch {epoch}")
        if extra < 0 or extra % _ENTRY or extra > EXACT * _ENTRY:
            raise ValueError(f"a sketch of {length} bytes for a ring of {size}")
        sketch = Sketch(size)
        sketch.epoch = epoch
        sketch.bitmaps = bytearray(data[at : at + length])
        found[slot] = sketch
        at += length
    return found


def _forget_expired(maps: bytearray, base: int, epoch: int, size: int) -> None:
    """Drop the remembered items whose newest bucket left the ring that now ends at `epoch`
    (before it advanced, every age was below `size`; now below 2·size, so one byte still
    tells them apart)."""
    end = len(maps)
    for at in range(base, end, _ENTRY):
        if (epoch - maps[at + 4]) & 0xFF >= size:
            break
    else:
        return  # nothing left the ring
    kept = bytearray()
    for at in range(base, end, _ENTRY):
        if (epoch - maps[at + 4]) & 0xFF < size:
            kept += maps[at : at + _ENTRY]
    maps[base:] = kept


DEFAULT_KEY = b"rempart distinct-count sketches"
MAX_KEY = 64  # BLAKE2b's longest key


class PyItemHasher:
    """The item hash in Python: `hasher(text)` is the keyed 32-bit BLAKE2b of `text`'s UTF-8
    (lone surrogates passed through), read big-endian. The reference for `_itemhash.ItemHasher`
    (C, the same numbers in 0.15 instead of 1.1 us an item), and the fallback where nothing
    compiles, which remembers recent items (the same login and address come back in allow,
    allow, report)."""

    def __init__(self, key: bytes) -> None:
        if len(key) > MAX_KEY:
            raise ValueError(f"an item hash key has at most {MAX_KEY} bytes, not {len(key)}")
        # A keyed BLAKE2b spends one compression on the key block: done once here and copied
        # per item (0.8 instead of 1.25 us an item; the digests are the same).
        self._keyed = hashlib.blake2b(key=key, digest_size=4)
        self._recent: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        found = self._recent.get(text)
        if found is None:
            digest = self._keyed.copy()
            digest.update(text.encode("utf-8", "surrogatepass"))
            found = int.from_bytes(digest.digest())
            if len(self._recent) >= 32768:
                self._recent.clear()
            self._recent[text] = found
        return found


def native_item_hasher() -> Callable[[bytes], Callable[[str], int]] | None:
    """The C hasher's type, or None when it is not built or pure Python was asked for."""
    found: Callable[[bytes], Callable[[str], int]] | None = native_attribute(
        "rempart.engine._itemhash", "ItemHasher"
    )
    return found


_HASHER: Callable[[bytes], Callable[[str], int]] = native_item_hasher() or PyItemHasher
_hasher: Callable[[str], int] = _HASHER(DEFAULT_KEY)


def item_hash(text: str) -> int:
    """A keyed 32-bit hash of an item (a login, an address, a network, an ASN)."""
    return _hasher(text)


def use_key(key: bytes) -> None:
    """Key the item hash with a deployment secret (`rempart serve` does, from its data dir).

    Keyed, nobody outside can pick logins or addresses whose bits collide to hide from a
    distinct count; with the default key, tests and simulations give the same counts in
    every process (Python's own `hash` of a string changes with each process)."""
    global _hasher
    _hasher = _HASHER(hashlib.blake2b(key, digest_size=32).digest())


def use_default_key() -> None:
    """Back to the fixed key that tests and simulations count with."""
    global _hasher
    _hasher = _HASHER(DEFAULT_KEY)
