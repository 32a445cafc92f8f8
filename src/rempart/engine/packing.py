"""The byte work of counter checkpoints: rows gathered from a slab, sections stored as zero runs.

`gather_rows(source, row_bytes, slots)` copies the rows `slots` (an array "q") of a slab's
bytes end to end: the checkpoint copy takes each key's ring row so, between decisions.
`squeeze(data)` stores a section as zero runs and `expand(stored, size)` gives it back: a ring
row holds 65 16-bit counters of which an attempt or two set four, and a distinct sketch 128
bitmap bytes of which a few bits are set, so a checkpoint of 500,000 keys shrinks from about
160 MB to a fraction of that, and its writer thread hashes and writes that much less.

Zero runs: records, each the unsigned LEB128 length of a literal, the literal's bytes, then the
LEB128 length of the run of zero bytes after it. Zero runs shorter than `MIN_RUN` bytes stay in
the literal (a record costs at least two bytes). Nothing else: the section's size is in the
checkpoint's header, its integrity in the file's digest.

The functions here are the reference, and the fallback where nothing compiles; the C module
`_packing` gives the same bytes and the same errors (the property tests hold them together),
and lets other threads run while it scans.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from rempart import native_attribute

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer as Buffer

MIN_RUN = 3
MAX_VARINT = 9  # bytes: 63 bits, more than any buffer's length
_RUNS = re.compile(rb"\x00{%d,}" % MIN_RUN)


def py_gather_rows(source: Buffer, row_bytes: int, slots: Buffer) -> bytes:
    """The rows `slots` (native int64) of `source`, end to end; ValueError for a slot outside."""
    if row_bytes <= 0:
        raise ValueError(f"rows of {row_bytes} bytes")
    view = memoryview(source).cast("B")
    if len(view) % row_bytes:
        raise ValueError(
            f"a slab of {len(view)} bytes is not a whole number of {row_bytes}-byte rows"
        )
    wanted = memoryview(slots).cast("B")
    if len(wanted) % 8:
        raise ValueError("the slots are not whole 8-byte numbers")
    rows = len(view) // row_bytes
    out = bytearray()
    for slot in wanted.cast("q"):
        if not 0 <= slot < rows:
            raise ValueError(f"slot {slot} outside a slab of {rows} rows")
        out += view[slot * row_bytes : (slot + 1) * row_bytes]
    return bytes(out)


def _put_varint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def py_squeeze(data: Buffer) -> bytes:
    """`data` stored as zero runs."""
    view = memoryview(data).cast("B")
    out = bytearray()
    at = 0  # the first byte not yet stored
    for run in _RUNS.finditer(view):
        start, end = run.span()
        _put_varint(out, start - at)
        out += view[at:start]
        _put_varint(out, end - start)
        at = end
    if at < len(view):
        _put_varint(out, len(view) - at)
        out += view[at:]
        out.append(0)
    return bytes(out)


class _Stored:
    """A reading position in stored zero runs."""

    __slots__ = ("at", "data")

    def __init__(self, data: memoryview) -> None:
        self.data, self.at = data, 0

    def varint(self) -> int:
        data, value, shift = self.data, 0, 0
        for read in range(MAX_VARINT + 1):
            if self.at >= len(data):
                raise ValueError("the stored bytes end inside a record")
            if read == MAX_VARINT:
                raise ValueError(f"a length of more than {MAX_VARINT} bytes")
            byte = data[self.at]
            self.at += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
        return value


def py_expand(stored: Buffer, size: int) -> bytes:
    """The `size` bytes `squeeze` stored; ValueError naming what does not hold together."""
    if size < 0:
        raise ValueError(f"a size of {size} bytes")
    reader = _Stored(memoryview(stored).cast("B"))
    data = reader.data
    out = bytearray()
    while reader.at < len(data):
        literal = reader.varint()
        if literal > size - len(out):
            raise ValueError(f"more than the {size} bytes it should hold")
        if literal > len(data) - reader.at:
            raise ValueError("the stored bytes end inside a record")
        out += data[reader.at : reader.at + literal]
        reader.at += literal
        zeros = reader.varint()
        if zeros > size - len(out):
            raise ValueError(f"more than the {size} bytes it should hold")
        out += bytes(zeros)
    if len(out) != size:
        raise ValueError(f"{len(out)} bytes where {size} should be")
    return bytes(out)


def native_packing() -> tuple[Callable[..., bytes], ...] | None:
    """The C functions (gather_rows, squeeze, expand), or None when `_packing` is not built or
    pure Python was asked for."""
    found = [
        native_attribute("rempart.engine._packing", name)
        for name in ("gather_rows", "squeeze", "expand")
    ]
    return None if None in found else tuple(found)


_NATIVE = native_packing()
# Whether checkpoints store their sections as zero runs. In Python the runs cost more than the
# bytes they save (a checkpoint step of 1,024 keys took 4.8 ms instead of 1.4, a restore three
# times as long), so the pure-Python fallback stores sections whole; either core reads both.
RUNS_BY_DEFAULT = _NATIVE is not None
gather_rows: Callable[[Buffer, int, Buffer], bytes] = _NATIVE[0] if _NATIVE else py_gather_rows
squeeze: Callable[[Buffer], bytes] = _NATIVE[1] if _NATIVE else py_squeeze
expand: Callable[[Buffer, int], bytes] = _NATIVE[2] if _NATIVE else py_expand
