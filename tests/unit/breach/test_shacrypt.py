"""SHA-crypt against the specification's vectors and the system's libcrypt."""

from __future__ import annotations

import ctypes
import ctypes.util

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rempart.breach.shacrypt import sha_crypt, sha_crypt_verify

VECTORS = [
    ("$5$saltstring", b"Hello world!", "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"),
    ("$5$rounds=10000$saltstringsaltstring", b"Hello world!",
     "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA"),
    ("$6$saltstring", b"Hello world!",
     "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"),
    ("$6$rounds=10000$saltstringsaltstring", b"Hello world!",
     "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."),
    ("$6$rounds=1400$anotherlongsaltstring", b"a very much longer text to encrypt.  This one even stretches over morethan one line.",
     "$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1"),
]  # fmt: skip


@pytest.mark.parametrize(("setting", "password", "expected"), VECTORS)
def test_specification_vectors(setting: str, password: bytes, expected: str) -> None:
    assert sha_crypt(password, setting) == expected
    assert sha_crypt_verify(password, expected)
    assert not sha_crypt_verify(password + b"x", expected)


def _libcrypt():  # type: ignore[no-untyped-def]
    name = ctypes.util.find_library("crypt")
    if not name:
        return None
    lib = ctypes.CDLL(name)
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    return lib


LIB = _libcrypt()


@pytest.mark.skipif(LIB is None, reason="no system libcrypt to compare with")
@settings(max_examples=60, deadline=None)
@given(
    password=st.binary(max_size=150).filter(lambda b: b"\0" not in b),
    salt=st.text("./0123456789abcdefXYZ", min_size=1, max_size=20),
    ident=st.sampled_from(["5", "6"]),
    rounds=st.sampled_from([None, 1000, 1234]),
)
def test_agrees_with_libcrypt(password: bytes, salt: str, ident: str, rounds: int | None) -> None:
    setting = f"${ident}$" + (f"rounds={rounds}$" if rounds else "") + salt
    assert sha_crypt(password, setting) == LIB.crypt(password, setting.encode()).decode()
