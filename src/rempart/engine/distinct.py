"""Distinct counts over sliding windows with bounded memory: one linear-counting bitmap per bucket.

Each bucket holds a 256-bit bitmap (32 bytes); an item sets one bit chosen by its hash; a window
ORs its buckets and estimates n = -m·ln(zeros/m) (Whang et al., linear counting). With m = 256
the relative standard error is about 4.5% at 20 items, 4.7% at 100 and 6.5% at 500; the
estimate saturates near m·ln(m) ≈ 1,420, which is reported as that ceiling. Exact for 0 and 1.
"""

from __future__ import annotations

import hashlib
import math

from rempart.engine.windows import live_buckets

BITS = 256
BYTES = BITS // 8
# Indexed by the number of zero bits; no zero bit left means "at least SATURATED".
_ESTIMATE = [0] + [round(-BITS * math.log(z / BITS)) for z in range(1, BITS + 1)]
SATURATED = _ESTIMATE[0] = _ESTIMATE[1]
_MASK = (1 << BITS) - 1


class Sketch:
    """A ring of `size` bitmaps; memory is 32·size bytes plus the object."""

    __slots__ = ("bitmaps", "epoch")

    def __init__(self, size: int) -> None:
        self.epoch = -1
        self.bitmaps = bytearray(BYTES * size)

    def add(self, item_hash: int, bucket: int, size: int) -> None:
        epoch = self.epoch
        maps = self.bitmaps
        if bucket > epoch:
            if epoch < 0:
                pass  # a new sketch is already zero
            elif bucket - epoch >= size:
                maps[:] = bytes(len(maps))
            else:
                for b in range(epoch + 1, bucket + 1):
                    start = (b % size) * BYTES
                    maps[start : start + BYTES] = bytes(BYTES)
            self.epoch = bucket
        elif bucket <= epoch - size:
            return
        bit = item_hash & 0xFF
        maps[(bucket % size) * BYTES + (bit >> 3)] |= 1 << (bit & 7)

    def estimate(self, span: int, bucket: int, size: int) -> int:
        """Estimated distinct items over the `span` buckets ending at `bucket`."""
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
        return _ESTIMATE[BITS - (union & _MASK).bit_count()]


DEFAULT_KEY = b"rempart distinct-count sketches"
_hashes: dict[str, int] = {}


def _keyed(key: bytes) -> hashlib.blake2b:
    # A keyed BLAKE2b spends one compression on the key block: done once here and copied per
    # item (0.8 instead of 1.25 us an item; the digests are the same).
    return hashlib.blake2b(key=key, digest_size=4)


_hasher = _keyed(DEFAULT_KEY)


def use_key(key: bytes) -> None:
    """Key the item hash with a deployment secret (`rempart serve` does, from its data dir).

    Keyed, nobody outside can pick logins or addresses whose bits collide to hide from a
    distinct count; with the default key, tests and simulations give the same counts in
    every process (Python's own `hash` of a string changes with each process)."""
    global _hasher
    _hasher = _keyed(hashlib.blake2b(key, digest_size=32).digest())
    _hashes.clear()


def use_default_key() -> None:
    """Back to the fixed key that tests and simulations count with."""
    global _hasher
    _hasher = _keyed(DEFAULT_KEY)
    _hashes.clear()


def item_hash(text: str) -> int:
    """A keyed 32-bit hash of an item; recent items are remembered (the same login and address
    come back in allow, allow, report)."""
    found = _hashes.get(text)
    if found is None:
        digest = _hasher.copy()
        digest.update(text.encode("utf-8", "surrogatepass"))
        found = int.from_bytes(digest.digest())
        if len(_hashes) >= 32768:
            _hashes.clear()
        _hashes[text] = found
    return found
