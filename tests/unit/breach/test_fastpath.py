"""The columnar fast path gives exactly what the per-line path gives, on generated tricky lines."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rempart.breach import fastpath, hashing
from rempart.breach import parser as p
from rempart.breach.fingerprints import Fingerprinter
from rempart.breach.hashing import hash_lines
from rempart.breach.settings import DovecotHash
from rempart.engine.keys import LoginRules, canonical_login

ALIASES = {"mail.example.org": "example.org", "googlemail.example": "gmail.example"}
RULE_SETS = [
    LoginRules(),
    LoginRules(domain_aliases=ALIASES),
    LoginRules(lowercase=False, fold_plus_tags=False, domain_aliases=ALIASES),
    LoginRules(default_domain="example.org"),
]
FPRS = [
    Fingerprinter(b"k" * 32, DovecotHash()),
    Fingerprinter(b"k" * 32, DovecotHash("some-nonce", 0)),
    Fingerprinter(b"q" * 32, DovecotHash("n", 12)),
]

local = st.one_of(
    st.from_regex(rb"[A-Za-z0-9._!#$%&'*/=?^`{}~-]{0,12}", fullmatch=True),
    st.from_regex(rb"[A-Za-z0-9.+@ \xe9\x80-]{0,12}", fullmatch=True),
    st.text(max_size=6).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"", b"+tag", b"Alice+News", b"x" * 600, b"\xc3\xa9t\xc3\xa9"]),
)
domain = st.one_of(
    st.sampled_from([b"example.org", b"Mail.Example.ORG", b"googlemail.example", b"", b"x@y"]),
    st.from_regex(rb"[A-Za-z0-9.+@-]{0,10}", fullmatch=True),
    st.just(b"d" * 600),
)
login = st.one_of(
    st.builds(lambda a, d: a + b"@" + d, local, domain),
    local,
    st.builds(lambda u, a: u + a, st.sampled_from([b"https://site.org/x:", b"site.org|"]), local),
)
password = st.one_of(
    st.from_regex(rb"[\x20-\x7e]{0,12}", fullmatch=True),
    st.binary(max_size=12).filter(lambda b: b"\n" not in b),
    st.sampled_from([b"p" * 256, b"p" * 257, b"p" * 3100, b"pw\r", b"pw\r\r", b"//x", b"p\xe4ss"]),
)
common = st.builds(
    lambda a, d, s, b, e: a + b"@" + d + s + b + e,
    st.one_of(
        st.from_regex(rb"[A-Za-z0-9._-]{1,10}", fullmatch=True),
        st.sampled_from([b"alice", b"Alice", b"bob"]),  # audited accounts
    ),
    st.sampled_from([b"example.org", b"Mail.Example.ORG", b"googlemail.example", b"x.y"]),
    st.sampled_from([b":", b";", b"\t", b"|"]),
    st.from_regex(rb"[\x20-\x7e]{1,12}", fullmatch=True),
    st.sampled_from([b"", b"\r"]),
)
line = st.one_of(
    common,
    st.builds(
        lambda a, s, b, e: a + s + b + e,
        login,
        st.sampled_from([b":", b";", b"\t", b"|", b"", b" : "]),
        password,
        st.sampled_from([b"", b"\r"]),
    ),
    st.binary(max_size=30).filter(lambda b: b"\n" not in b),
    st.sampled_from([b"", b"\r", b"   ", b"x" * 5000]),
).map(lambda b: b.replace(b"\n", b""))  # lines as the reader gives them


def _same(a: hashing.Batch, b: hashing.Batch) -> None:
    assert a.logins.tolist() == b.logins.tolist()
    assert a.pairs.tolist() == b.pairs.tolist()
    assert a.dovecot.tolist() == b.dovecot.tolist()
    assert (a.lines, a.valid, a.rejected, a.samples) == (b.lines, b.valid, b.rejected, b.samples)
    assert a.audit == b.audit
    assert sorted(a.accepted_lines or []) == sorted(b.accepted_lines or [])


@settings(max_examples=400, deadline=None)
@given(
    st.lists(line, max_size=40),
    st.sampled_from(RULE_SETS),
    st.sampled_from(FPRS),
    st.sampled_from([1, 3, 4096]),
    st.sampled_from([256, 5, 4000]),
)
def test_fast_path_and_slow_path_give_the_same_batch(
    lines: list[bytes], rules: LoginRules, fpr: Fingerprinter, slice_lines: int, max_pw: int
) -> None:
    audit = {"alice@example.org", "bob@gmail.example"} | {
        canonical_login(x.decode(), rules) for x in (b"Alice@Example.org", b"bob@x.org")
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hashing, "SLICE_LINES", slice_lines)
        fast = hash_lines(lines, 7, fpr, rules, max_pw, audit, track_accepted=True)
    slow = hash_lines(lines, 7, fpr, rules, max_pw, audit, track_accepted=True, columnar=False)
    _same(fast, slow)


@settings(max_examples=1000, deadline=None)
@given(line, st.sampled_from(RULE_SETS), st.sampled_from([256, 5, 4000]))
def test_fast_split_and_canonical_agree_with_the_parser(
    raw: bytes, rules: LoginRules, max_pw: int
) -> None:
    columns = fastpath.split_block([raw], max_pw)
    assert columns is not None
    (login,), (pw,) = columns
    if not login:
        return
    full = p.parse_line(raw, rules, max_pw)
    assert p.split_line(raw, max_pw) == (login, pw)
    (canon,), (user,) = fastpath.canonical_columns([login], rules)
    assert full == (canon.decode(), user, pw)


def test_common_shapes_take_the_fast_path() -> None:
    lines = [
        b"alice@example.org:secret",
        b"Bob.Smith@Mail.Example.ORG;pw with spaces\r",
        b"carol@example.org\tp:a;s|s",
        b"dave@example.org|x",
    ]
    logins, passwords = fastpath.split_block(lines, 256)  # type: ignore[misc]
    assert all(logins) and passwords[1] == b"pw with spaces"


@pytest.mark.parametrize(
    "raw",
    [
        b"alice+tag@example.org:pw",  # +tag folding
        b"https://site.org/login:alice@example.org:pw",  # URL prefix
        b"jos\xc3\xa9@example.org:pw",  # non-ASCII login
        b"alice@example.org:p\xe4ss",  # Latin-1 password
        b"a@b@example.org:pw",  # second @
        b"@example.org:pw",  # empty local part
        b"alice:pw",  # no domain
        b"alice@example.org:",
        b"",
        b"x" * 600 + b"@" + b"y" * 600 + b":pw",  # over 1024 bytes
    ],
)
def test_unusual_lines_are_left_to_the_per_line_path(raw: bytes) -> None:
    assert fastpath.split_block([raw], 256) == ([b""], [b""])


@pytest.mark.parametrize(
    "raw",
    [
        b"a" * 1020 + b"@xyz:" + b"p" * 3071,  # 4096 bytes: accepted
        b"a" * 1020 + b"@xyz:" + b"p" * 3072,  # 4097 bytes: too long
        b"a" * 600 + b"@" + b"x" * 600 + b":pw",  # login over 1024 bytes
        b"a@example.org:" + b"p" * 3500,
    ],
)
def test_long_lines_get_the_same_verdict_on_every_path(raw: bytes) -> None:
    fpr = FPRS[1]
    fast = hash_lines([raw], 1, fpr, LoginRules(), 4000)
    slow = hash_lines([raw], 1, fpr, LoginRules(), 4000, columnar=False)
    _same(fast, slow)
    m = p.fast_pattern(4000).fullmatch(raw)
    assert m is None or m.groups() == p.split_line(raw, 4000)


def test_split_block_refuses_misaligned_lines() -> None:
    assert fastpath.split_block([b"a@b.org:pw\nc@d.org:pw"], 256) is None
