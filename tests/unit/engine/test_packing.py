"""Checkpoint packing: zero runs give every section back byte for byte, the rows gathered are the
rows asked for, and the C functions give exactly the reference's bytes and errors.

Hypothesis draws sections shaped like the real ones (counters that are mostly zero, runs of
zeros of every length around `MIN_RUN`, long literals whose lengths take two or three LEB128
bytes) and arbitrary stored bytes for `expand`, which both implementations must refuse with the
same message. Without the C module (no compiler at install time) the comparisons are skipped,
and fail with REMPART_REQUIRE_COMPILED=1.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rempart.engine.packing import (
    MIN_RUN,
    native_packing,
    py_expand,
    py_gather_rows,
    py_squeeze,
)
from tests.conftest import need

native = native_packing()

CHUNKS = st.one_of(
    st.binary(max_size=40),
    st.integers(min_value=0, max_value=MIN_RUN + 2).map(bytes),  # zero runs near the edge
    st.integers(min_value=100, max_value=20_000).map(bytes),
    st.binary(min_size=120, max_size=140),  # literal lengths around one LEB128 byte
    st.integers(min_value=16_380, max_value=16_390).map(lambda n: b"\x07" * n),  # ... and two
)
SECTIONS = st.lists(CHUNKS, max_size=12).map(b"".join)


def _native() -> tuple[Callable[..., bytes], ...]:
    need("compiled", native is not None, "the C packing (_packing) is not built")
    assert native is not None
    return native


def outcome(function: Callable[..., bytes], *args: object) -> bytes | str:
    try:
        return function(*args)
    except ValueError as exc:
        return f"ValueError: {exc}"


@settings(max_examples=300, deadline=None)
@given(SECTIONS)
def test_zero_runs_give_the_section_back(data: bytes) -> None:
    stored = py_squeeze(data)
    assert py_expand(stored, len(data)) == data
    assert len(stored) <= len(data) + len(data) // 2048 + 16  # the C module's bound
    if data.count(0) == len(data) and data:
        assert len(stored) <= 11  # all zeros: one record


def test_a_sparse_counter_slab_shrinks_tenfold() -> None:
    cells = array("H", bytes(2 * 65 * 1000))
    for row in range(1000):
        cells[row * 65 + row % 60] = 1 + row % 3
        cells[row * 65 + 60 + row % 5] = 1 + row % 3
    stored = py_squeeze(cells)
    assert len(stored) * 10 < len(cells) * 2
    assert py_expand(stored, len(cells) * 2) == cells.tobytes()


@pytest.mark.parametrize(
    ("stored", "size", "message"),
    [
        (b"\x05ab", 5, "end inside a record"),  # a literal cut short
        (b"\x01a", 1, "end inside a record"),  # no zero-run length
        (b"\x80", 1, "end inside a record"),  # a length cut short
        (b"\x01a\x05", 3, "more than the 3 bytes"),  # zeros beyond the size
        (b"\x09", 3, "more than the 3 bytes"),  # a literal beyond the size
        (b"\x00\x02", 3, "2 bytes where 3 should be"),
        (b"\xff" * 10, 3, "more than 9 bytes"),
        (b"", -1, "a size of -1"),
    ],
)
def test_damaged_zero_runs_are_refused_with_the_reason(
    stored: bytes, size: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        py_expand(stored, size)
    if native is not None:
        with pytest.raises(ValueError, match=message):
            native[2](stored, size)


def test_rows_are_gathered_in_the_order_asked_and_slots_outside_refused() -> None:
    slab = array("H", range(12))  # four rows of three counters
    rows = py_gather_rows(slab, 6, array("q", [2, 0, 2]))
    assert array("H", rows).tolist() == [6, 7, 8, 0, 1, 2, 6, 7, 8]
    assert py_gather_rows(slab, 6, array("q")) == b""
    with pytest.raises(ValueError, match="slot 4 outside a slab of 4 rows"):
        py_gather_rows(slab, 6, array("q", [1, 4]))
    with pytest.raises(ValueError, match="not a whole number of 5-byte rows"):
        py_gather_rows(slab, 5, array("q", [0]))
    with pytest.raises(ValueError, match="whole 8-byte numbers"):
        py_gather_rows(slab, 6, b"\x00" * 7)


@settings(max_examples=300, deadline=None)
@given(SECTIONS)
def test_native_squeeze_gives_the_reference_bytes(data: bytes) -> None:
    _, squeeze, expand = _native()
    stored = squeeze(data)
    assert stored == py_squeeze(data)
    assert expand(stored, len(data)) == data
    assert expand(memoryview(stored), len(data)) == data


@settings(max_examples=1000, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=60),
        SECTIONS.map(py_squeeze)
        .flatmap(lambda stored: st.tuples(st.just(stored), st.integers(0, max(0, len(stored) - 1))))
        .map(lambda cut: cut[0][: cut[1]]),
    ),
    st.integers(min_value=-2, max_value=300),
)
def test_native_expand_refuses_what_the_reference_refuses(stored: bytes, size: int) -> None:
    expand = _native()[2]
    assert outcome(expand, stored, size) == outcome(py_expand, stored, size)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=-1, max_value=9),
    st.binary(max_size=90),
    st.lists(st.integers(min_value=-2, max_value=40), max_size=12),
)
def test_native_gather_rows_matches_the_reference(
    row_bytes: int, source: bytes, slots: list[int]
) -> None:
    gather_rows = _native()[0]
    wanted = array("q", slots)
    assert outcome(gather_rows, source, row_bytes, wanted) == outcome(
        py_gather_rows, source, row_bytes, wanted
    )
