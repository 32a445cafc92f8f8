"""The C sketch arithmetic (`_distinct`) against `Sketch`'s reference methods: same buffer, same
epoch, same last item and same estimates after any sequence of adds and reads.

Hypothesis draws items from a small pool (so items repeat and share bits) and buckets that move
forward by one, by a few, past the whole ring, and backwards within and beyond it, with
remembering sketches and the campaign detector's kind (`exact=False`); two sketches take the
same adds, one through `add` (C when built) and one through the reference, and every window is
read from both. Without the C module (no compiler at install time) the test is skipped, and
fails with REMPART_REQUIRE_COMPILED=1.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rempart.engine import distinct
from rempart.engine.distinct import EXACT, Sketch
from tests.conftest import need

OPS = st.lists(
    st.tuples(
        st.booleans(),  # add (True) or read every window (False)
        st.integers(min_value=-4, max_value=30),  # bucket step
        st.one_of(
            st.integers(min_value=0, max_value=40),
            st.integers(min_value=0, max_value=0xFFFFFFFF),
            st.just(-1),
        ),
    ),
    max_size=150,
)


def _reference_add(sketch: Sketch, item: int, bucket: int, size: int) -> None:
    if item == sketch.last and bucket == sketch.epoch:
        return
    sketch.py_add(item, bucket, size)


@settings(max_examples=400, deadline=None)
@given(st.integers(min_value=1, max_value=12), st.booleans(), OPS)
def test_c_sketches_match_the_reference(size: int, exact: bool, ops: list[tuple]) -> None:
    need("compiled", distinct._ADD is not None, "the C sketch arithmetic (_distinct) is not built")
    c, py = Sketch(size, exact), Sketch(size, exact)
    bucket = 500
    for add, step, item in ops:
        bucket = max(0, bucket + step)
        if add:
            c.add(item, bucket, size)
            _reference_add(py, item, bucket, size)
            assert (c.bitmaps, c.epoch, c.last) == (py.bitmaps, py.epoch, py.last)
            assert len(c.bitmaps) <= 32 * size + 5 * EXACT
        else:
            for span in range(0, size + 2):
                assert c.estimate(span, bucket, size) == py.py_estimate(span, bucket, size)


def test_c_sketches_refuse_what_is_not_theirs() -> None:
    need("compiled", distinct._ADD is not None, "the C sketch arithmetic (_distinct) is not built")
    from rempart.engine import _distinct

    with pytest.raises(TypeError, match="bytearray"):
        _distinct.add(bytes(64), -1, 7, 10, 2, True)
    with pytest.raises(ValueError, match="a sketch of 63 bytes for a ring of 2"):
        _distinct.add(bytearray(63), -1, 7, 10, 2, True)
    with pytest.raises(ValueError, match="a ring of 0 buckets"):
        _distinct.estimate(bytearray(64), 10, 2, 10, 0)
    with pytest.raises(ValueError, match="257"):
        _distinct.setup((1, 2, 3))
