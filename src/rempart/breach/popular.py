"""Popular passwords: the top of real password lists, shipped as package data.

`data/popular-passwords.txt.gz` is made by scripts/build_popular_passwords.py (most popular
first, passwords only). Membership is exact on the password as typed.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=4)
def popular_passwords(top_n: int = 100_000) -> frozenset[str]:
    """The `top_n` most popular passwords."""
    blob = resources.files("rempart.breach").joinpath("data/popular-passwords.txt.gz").read_bytes()
    words = gzip.decompress(blob).decode("utf-8").split("\n")
    return frozenset(w for w in words[:top_n] if w)
