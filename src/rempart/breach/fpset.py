"""A sorted, deduplicated set of 64-bit fingerprints with an O(1)-ish membership test.

Storage is exactly 8 bytes per member (a numpy uint64 array) plus a bucket index of the leading
bits (8 bytes per bucket, about one bucket per 64 members), so a lookup is one index read and a
bisect over ~64 values: well under a microsecond, no allocation beyond Python ints.
"""

from __future__ import annotations

from bisect import bisect_left

import numpy as np

_EMPTY = np.zeros(0, dtype=np.uint64)


class FingerprintSet:
    """Immutable set of uint64 fingerprints (build it from a sorted unique array)."""

    __slots__ = ("_index", "_shift", "_values", "array")

    def __init__(self, array: np.ndarray | None = None) -> None:
        arr = _EMPTY if array is None else np.ascontiguousarray(array, dtype=np.uint64)
        self.array = arr
        bits = max(1, min(24, (max(len(arr), 1).bit_length()) - 6))
        self._shift = 64 - bits
        edges = np.arange(2**bits + 1, dtype=object)
        bounds = np.array([int(e) << self._shift for e in edges[:-1]], dtype=np.uint64)
        index = np.searchsorted(arr, bounds, side="left").astype(np.uint64)
        self._index = np.append(index, np.uint64(len(arr))).data
        self._values = arr.data

    def __len__(self) -> int:
        return len(self.array)

    def __contains__(self, fp: int) -> bool:
        b = fp >> self._shift
        index = self._index
        lo = index[b]
        hi = index[b + 1]
        values = self._values
        i = bisect_left(values, fp, lo, hi)
        return i < hi and values[i] == fp

    @property
    def nbytes(self) -> int:
        """Memory held: 8 bytes per member plus the bucket index."""
        return int(self.array.nbytes) + self._index.nbytes


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted unique copy of a uint64 array.

    Not `np.unique`: from numpy 2.3 it dedupes through a hash table first, about 50x slower than
    sorting on 1M fingerprints (0.9 s vs 14 ms measured here).
    """
    out = np.sort(np.asarray(values, dtype=np.uint64))
    if len(out) < 2:
        return out
    keep = np.empty(len(out), dtype=bool)
    keep[0] = True
    np.not_equal(out[1:], out[:-1], out=keep[1:])
    return out[keep]


def union_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sorted unique union of two sorted unique uint64 arrays."""
    if len(a) == 0:
        return b
    if len(b) == 0:
        return a
    merged = np.concatenate([a, b])
    merged.sort(kind="stable")  # two sorted runs: timsort merges them in linear time
    keep = np.empty(len(merged), dtype=bool)
    keep[0] = True
    np.not_equal(merged[1:], merged[:-1], out=keep[1:])
    return merged[keep]
