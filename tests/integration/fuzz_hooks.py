"""Schemathesis hooks for `test_openapi_fuzz.py` (loaded through SCHEMATHESIS_HOOKS).

The document states each number's range, so generated valid data stays inside it and the
negative mode steps just outside it. Values of absurd magnitude (1e17 and 1e300 seconds took
list pages down, issue 13) are what a careless client sends; this hook puts them, at random,
in place of the numbers of generated bodies so every run also tries them.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import strategies as st

EXTREMES = (1e17, 1e300, -1e300, 2**64, 1.7976931348623157e308, 5e-324, 99999999999999999)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@schemathesis.hook
def flatmap_body(ctx: Any, body: Any) -> st.SearchStrategy[Any]:
    if not isinstance(body, dict):
        return st.just(body)
    numbers = [key for key, value in body.items() if _is_number(value)]
    if not numbers:
        return st.just(body)
    swaps = st.fixed_dictionaries(
        {key: st.one_of(st.just(body[key]), st.sampled_from(EXTREMES)) for key in numbers}
    )
    return swaps.map(lambda swapped: {**body, **swapped})
