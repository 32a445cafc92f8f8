"""The C item hash gives exactly the numbers of the reference `PyItemHasher` and of hashlib.

Hypothesis draws keys of every length BLAKE2b takes (0 to 64 bytes) and texts of every str kind,
with lone surrogates and lengths around the 128-byte block edges; both hashers must give
`int.from_bytes(blake2b(utf8, key=key, digest_size=4).digest())`. Without the C hasher (no
compiler at install time) the comparison is skipped, and fails with REMPART_REQUIRE_COMPILED=1.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rempart.engine import distinct
from rempart.engine.distinct import MAX_KEY, PyItemHasher, native_item_hasher
from tests.conftest import need

native = native_item_hasher()

TEXTS = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    # Lone surrogates, which UTF-8 cannot carry: both pass them through ("surrogatepass").
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=4),
    st.sampled_from(
        ["", "a" * 127, "a" * 128, "a" * 129, "\xe9" * 64, "x" * 256, "\U0001f600" * 32]
    ),
)
KEYS = st.binary(max_size=MAX_KEY)


def reference(key: bytes, text: str) -> int:
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), key=key, digest_size=4)
    return int.from_bytes(digest.digest())


def _native() -> Callable[[bytes], Callable[[str], int]]:
    need("compiled", native is not None, "the C item hash (_itemhash) is not built")
    assert native is not None
    return native


@settings(max_examples=400, deadline=None)
@given(KEYS, st.lists(TEXTS, min_size=1, max_size=8))
def test_python_hasher_is_keyed_blake2b(key: bytes, texts: list[str]) -> None:
    hasher = PyItemHasher(key)
    for text in texts + texts:  # the second pass answers from the recent-items cache
        assert hasher(text) == reference(key, text)


@settings(max_examples=1000, deadline=None)
@given(KEYS, st.lists(TEXTS, min_size=1, max_size=8))
def test_native_hasher_matches_the_reference(key: bytes, texts: list[str]) -> None:
    hasher = _native()(key)
    reference_hasher = PyItemHasher(key)
    for text in texts:
        assert hasher(text) == reference_hasher(text) == reference(key, text)


@pytest.mark.parametrize("length", [0, 1, 63, 64, 127, 128, 129, 255, 256, 257, 1000])
def test_native_hasher_at_block_edges(length: int) -> None:
    hasher = _native()(b"k" * MAX_KEY)
    unkeyed = _native()(b"")
    for text in ("a" * length, "\u20ac" * length):
        assert hasher(text) == reference(b"k" * MAX_KEY, text)
        assert unkeyed(text) == reference(b"", text)


@pytest.mark.parametrize("make", [PyItemHasher, native], ids=["python", "native"])
def test_hasher_refuses_bad_keys_and_items(
    make: Callable[[bytes], Callable[[str], int]] | None,
) -> None:
    if make is None:
        make = _native()
    with pytest.raises(ValueError, match=f"at most {MAX_KEY} bytes, not {MAX_KEY + 1}"):
        make(b"k" * (MAX_KEY + 1))
    hasher = make(b"key")
    # Interpreted, PyItemHasher fails on bytes' missing encode; compiled by mypyc, on its type.
    with pytest.raises((TypeError, AttributeError)) as refused:
        hasher(b"bytes are not an item")  # type: ignore[arg-type]
    if make is not PyItemHasher:
        assert str(refused.value) == "an item to hash is a str, not bytes"


def test_item_hash_follows_the_deployment_key() -> None:
    default = distinct.item_hash("alice@example.org")
    assert default == reference(distinct.DEFAULT_KEY, "alice@example.org")
    distinct.use_key(b"a deployment secret")
    keyed = hashlib.blake2b(b"a deployment secret", digest_size=32).digest()
    assert distinct.item_hash("alice@example.org") == reference(keyed, "alice@example.org")
    assert distinct.item_hash("alice@example.org") != default
    distinct.use_default_key()
    assert distinct.item_hash("alice@example.org") == default
