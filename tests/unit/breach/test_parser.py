"""Combo-list line parsing: every kind of junk line, URL prefixes, and the fast path's equivalence."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rempart.breach import parser as p
from rempart.engine.keys import LoginRules

RULES = LoginRules()


@pytest.mark.parametrize(
    ("line", "login", "password"),
    [
        (b"alice@example.org:secret", b"alice@example.org", b"secret"),
        (b"alice@example.org;secret", b"alice@example.org", b"secret"),
        (b"alice@example.org\tsecret", b"alice@example.org", b"secret"),
        (b"alice@example.org:sec:ret;x", b"alice@example.org", b"sec:ret;x"),
        (b"alice@example.org:secret\r", b"alice@example.org", b"secret"),
        (b"  alice@example.org :pw with spaces ", b"alice@example.org", b"pw with spaces "),
        (b"bob:hunter2", b"bob", b"hunter2"),
        (b"https://site.com/login:alice@example.org:pw", b"alice@example.org", b"pw"),
        (b"https://site.com:8443/a/b:alice@example.org:pw", b"alice@example.org", b"pw"),
        (b"android://x==@com.app/:alice@example.org:pw", b"alice@example.org", b"pw"),
        (b"https://site.com|alice@example.org|pw", b"alice@example.org", b"pw"),
        (b"site.com:alice@example.org:pw", b"alice@example.org", b"pw"),
        (b"site.com|alice@example.org:pw", b"alice@example.org", b"pw"),
        (b"john.doe:secret:x", b"john.doe", b"secret:x"),
        (b"caf\xe9@example.org:pa\xdfword", b"caf\xe9@example.org", b"pa\xdfword"),
    ],
)
def test_accepted_shapes(line: bytes, login: bytes, password: bytes) -> None:
    assert p.split_line(line) == (login, password)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"", p.R_BLANK),
        (b"   \r", p.R_BLANK),
        (b"just some words", p.R_NOSEP),
        (b"-----------------", p.R_NOSEP),
        (b"alice@example.org:", p.R_EMPTY_PASSWORD),
        (b":password", p.R_EMPTY_LOGIN),
        (b"   :password", p.R_EMPTY_LOGIN),
        (b"user name@x.org:pw", p.R_BAD_LOGIN),
        (b"# comment: here", p.R_BAD_LOGIN),
        (b"a\x00b@x:pw", p.R_CONTROL),
        (b"\x1b[31mred@x:pw", p.R_CONTROL),
        (b"a@x:p\rw", p.R_CONTROL),
        (b"x" * 5000, p.R_LONG),
        (b"a@x:" + b"p" * 300, p.R_LONG_PASSWORD),
        (b"a" * 1100 + b"@x:pw", p.R_LONG_LOGIN),
        (b"https://only.a.url/path", p.R_URL_ONLY),
    ],
)
def test_rejected_lines(line: bytes, reason: str) -> None:
    assert p.split_line(line) == reason


def test_parse_line_canonicalises_like_the_engine_and_keeps_dovecot_user() -> None:
    rules = LoginRules(domain_aliases={"mail.example.org": "example.org"})
    got = p.parse_line(b"Alice+News@Mail.Example.ORG:Secret", rules)
    assert got == ("alice@example.org", b"alice+news@mail.example.org", b"Secret")


def test_latin1_fields_are_transcoded_to_utf8() -> None:
    got = p.parse_line(b"jos\xe9@example.org:contrase\xf1a", RULES)
    assert got == (
        "jos\u00e9@example.org",
        "jos\u00e9@example.org".encode(),
        "contrase\u00f1a".encode(),
    )


lines = st.one_of(
    st.binary(max_size=80),
    st.text(max_size=60).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.builds(
        lambda a, sep, b: a + sep + b,
        st.from_regex(rb"[a-zA-Z0-9.+_@-]{0,20}", fullmatch=True),
        st.sampled_from([b":", b";", b"\t", b"|", b"://", b""]),
        st.binary(max_size=30),
    ),
)


@pytest.mark.parametrize(
    ("line", "max_password"),
    [
        (b"a" * 600 + b"@" + b"x" * 600 + b":pw", 256),  # login over 1024 bytes, parts under
        (b"a@x.org:" + b"p" * 5000, 10_000),  # line over 4096 bytes, password allowed
        (b"a" * 1020 + b"@xyz:" + b"p" * 3071 + b"\r", 4000),  # 4096 bytes and a CR
    ],
)
def test_fast_path_keeps_the_length_limits(line: bytes, max_password: int) -> None:
    m = p.fast_pattern(max_password).fullmatch(line)
    got = p.split_line(line, max_password)
    assert (m.groups() if m else got) == got


@settings(max_examples=2000, deadline=None)
@given(lines)
def test_fast_path_agrees_with_split_line(line: bytes) -> None:
    m = p.fast_pattern(256).fullmatch(line)
    if m is not None:
        assert m.groups() == p.split_line(line, 256)


@settings(max_examples=1000, deadline=None)
@given(lines)
def test_split_line_never_crashes_and_returns_clean_fields(line: bytes) -> None:
    got = p.split_line(line)
    if isinstance(got, str):
        return
    login, password = got
    assert login and password
    assert b"\n" not in login + password and b"\0" not in login + password
    assert not any(c <= 0x20 for c in login)
