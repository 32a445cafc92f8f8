"""The C ring arithmetic (`_rings`) against `RingSlab`'s reference methods: same cells, same
epochs and same totals after any sequence of bumps, adds and reads.

Hypothesis draws operations over a few slots of small rings: buckets that move forward by one,
by a few, past the whole ring, backwards within and beyond it, counters driven to the 16-bit
ceiling, and windows of every span. Two slabs take the same operations, one through the public
methods (C when built) and one through `py_bump`/`py_add`/`py_total`; after every operation
their arrays must be equal byte for byte. Without the C module (no compiler at install time)
the test is skipped, and fails with REMPART_REQUIRE_COMPILED=1.
"""

from __future__ import annotations

from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rempart.engine import windows
from rempart.engine.windows import CEILING, KINDS, RingSlab
from tests.conftest import need

SLOTS = 3
OPS = st.lists(
    st.tuples(
        st.sampled_from(("bump", "bump2", "add", "total", "saturate")),
        st.integers(min_value=0, max_value=SLOTS - 1),
        st.integers(min_value=-3, max_value=40),  # bucket step (backwards included)
        st.integers(min_value=0, max_value=KINDS - 1),
        st.integers(min_value=0, max_value=KINDS - 1),
        st.integers(min_value=1, max_value=20),  # span of a read
    ),
    max_size=120,
)


def _slabs(size: int, kinds: int) -> tuple[RingSlab, RingSlab]:
    c, py = RingSlab(size, kinds), RingSlab(size, kinds)
    for slab in (c, py):
        for _ in range(SLOTS):
            slab.alloc()
    return c, py


@settings(max_examples=400, deadline=None)
@given(st.integers(min_value=1, max_value=12), st.sampled_from((1, KINDS)), OPS)
def test_c_rings_match_the_reference(size: int, kinds: int, ops: list[tuple]) -> None:
    need("compiled", windows._BUMP is not None, "the C ring arithmetic (_rings) is not built")
    c, py = _slabs(size, kinds)
    bucket = 1_000
    for op, slot, step, first, second, span in ops:
        bucket = max(0, bucket + step)
        first, second = first % kinds, second % kinds
        if op == "bump":
            c.bump(slot, bucket, first)
            py.py_bump(slot, bucket, first)
        elif op == "bump2":
            c.bump(slot, bucket, first, second)
            py.py_bump(slot, bucket, first, second)
        elif op == "add":
            c.add(slot, first, bucket)
            py.py_add(slot, first, bucket)
        elif op == "saturate":
            c.add(slot, first, bucket, CEILING + 5)
            py.py_add(slot, first, bucket, CEILING + 5)
        else:
            assert c.total(slot, first, span, bucket) == py.py_total(slot, first, span, bucket)
        assert c.cells == py.cells
        assert c.epochs == py.epochs


def test_c_rings_refuse_what_is_not_theirs() -> None:
    need("compiled", windows._BUMP is not None, "the C ring arithmetic (_rings) is not built")
    from rempart.engine import _rings

    slab = RingSlab(4, KINDS)
    slab.alloc()
    with pytest.raises(IndexError, match="slot 1 of a slab of 1"):
        _rings.bump(slab.cells, slab.epochs, 1, 10, 0, -1, 4, KINDS)
    with pytest.raises(IndexError, match="counter kind 5 of 5"):
        _rings.add(slab.cells, slab.epochs, 0, KINDS, 10, 1, 4, KINDS)
    with pytest.raises(ValueError, match="an amount of -1"):
        _rings.add(slab.cells, slab.epochs, 0, 0, 10, -1, 4, KINDS)
    with pytest.raises(TypeError, match=r"array\('H'\)"):
        _rings.total(array("I", bytes(100)), slab.epochs, 0, 0, 4, 10, 4, KINDS)
    with pytest.raises(ValueError, match="a ring of 0 buckets"):
        _rings.total(slab.cells, slab.epochs, 0, 0, 4, 10, 0, KINDS)
    # A slab shape larger than its cells: refused, nothing read past the end.
    with pytest.raises(IndexError):
        _rings.total(slab.cells, slab.epochs, 0, 0, 4, 10, 40, KINDS)
    assert slab.cells == array("H", bytes(2 * slab.stride))  # untouched by the refusals
