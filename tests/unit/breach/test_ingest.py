"""Ingest: junk files, duplicates across files, gzip/stdin, summary figures, corpus lookups."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rempart.breach.corpus import LeakCorpus
from rempart.breach.fingerprints import dovecot_pwhash
from rempart.breach.hashing import hash_lines
from rempart.breach.ingest import IngestError, ingest, pending_job
from rempart.breach.parser import parse_line
from rempart.breach.settings import BreachSettings, DovecotHash, LeakSettings
from rempart.breach.store import current_name
from rempart.engine.keys import LoginRules
from rempart.model import Attempt, Protocol

JUNK = (
    b"alice@example.org:correct-horse\r\n"
    b"\n"
    b"   \n"
    b"no separator here\n"
    b"# header: line\n"
    b"bob@example.org:\n"
    b":orphan-password\n"
    b"bin\x00ary@x:pw\n"
    b"https://mail.example.org/login:Carol@Example.org:c4r0l:pw\n"
    b"dave@example.org;d4ve\n"
    b"eve@example.org\te5e\n"
    b"frank@example.org:fr\xe4nk\n"
    + b"x" * 9000 + b"\n"
    + b"alice@example.org:correct-horse"
)  # fmt: skip


def test_junk_file_summary_and_lookups(tmp_path: Path) -> None:
    f = tmp_path / "junk.txt"
    f.write_bytes(JUNK)
    s = ingest(tmp_path / "d", [str(f)], BreachSettings(), source="combo-1")
    (fs,) = s["files"]
    assert fs["lines"] == 14
    assert fs["valid"] == 6
    assert fs["pairs_added"] == 5 and fs["duplicates"] == 1
    assert fs["rejected"] == 8
    first = fs["first_rejected_lines"]
    assert first["blank line"] == [2, 3]
    assert first["no login/password separator"] == [4]
    assert first["empty password"] == [6]
    assert first["control characters or NUL (binary data?)"] == [8]
    assert first["line longer than 4096 bytes"] == [13]
    c = LeakCorpus(tmp_path / "d")
    for login, pw in [("alice@example.org", "correct-horse"), ("carol@example.org", "c4r0l:pw"),
                      ("dave@example.org", "d4ve"), ("Frank@example.org", "fr\u00e4nk")]:  # fmt: skip
        fp = c.fingerprint_password(login, pw)
        assert c.leaked_pair(Attempt(login=c.canonical(login), ip="192.0.2.1",
                                     pair_fingerprint=fp.pair_fingerprint))  # fmt: skip
    wrong = c.fingerprint_password("alice@example.org", "Correct-horse").pair_fingerprint
    assert not c.leaked_pair(
        Attempt(login="alice@example.org", ip="192.0.2.1", pair_fingerprint=wrong)
    )
    assert c.login_exposed("carol@example.org") and not c.login_exposed("bob@example.org")
    assert c.stats()["sources"][0]["name"] == "combo-1"


def test_duplicates_across_files_counted_once_and_gzip_and_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = tmp_path / "a.txt"
    a.write_bytes(b"u1@x.org:p1\nu2@x.org:p2\n")
    b = tmp_path / "b.gz"
    b.write_bytes(gzip.compress(b"u2@x.org:p2\nu3@x.org:p3\n"))
    s = ingest(tmp_path / "d", [str(a), str(b)], BreachSettings())
    assert [f["pairs_added"] for f in s["files"]] == [2, 1]
    assert s["duplicates"] == 1 and s["corpus"]["pairs"] == 3
    import io
    import sys

    class _Stdin:
        buffer = io.BufferedReader(io.BytesIO(b"u3@x.org:p3\nu4@x.org:p4\n"))  # type: ignore[arg-type]

    monkeypatch.setattr(sys, "stdin", _Stdin)
    s2 = ingest(tmp_path / "d", ["-"], BreachSettings(), source="pasted")
    assert s2["pairs_added"] == 1 and s2["corpus"]["pairs"] == 4
    assert [x["name"] for x in LeakCorpus(tmp_path / "d").stats()["sources"]] == [
        "a.txt", "b.gz", "pasted",
    ]  # fmt: skip


def test_bad_inputs_leave_corpus_unchanged(tmp_path: Path) -> None:
    d = tmp_path / "d"
    good = tmp_path / "good.txt"
    good.write_bytes(b"u1@x.org:p1\n")
    ingest(d, [str(good)], BreachSettings())
    gen = current_name(d)
    binary = tmp_path / "img.bin"
    binary.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(IngestError, match=r"img\.bin: looks like a binary file"):
        ingest(d, [str(binary)], BreachSettings())
    with pytest.raises(IngestError, match=r"missing\.txt: cannot read"):
        ingest(d, [str(tmp_path / "missing.txt")], BreachSettings())
    novalid = tmp_path / "novalid.txt"
    novalid.write_bytes(b"hello\nworld\n\n")
    with pytest.raises(IngestError, match=r"novalid\.txt: no valid .*line 1: no login/password"):
        ingest(d, [str(novalid)], BreachSettings())
    assert current_name(d) == gen
    # Nothing of a file without a valid line can be committed: no pending ingest is left to
    # refuse the next one (issue 13 item 11).
    assert pending_job(d) is None
    ingest(d, [str(good)], BreachSettings())
    assert pending_job(d) is None


def test_dovecot_pwhash_lookup(tmp_path: Path) -> None:
    st_ = BreachSettings(dovecot=DovecotHash("some-nonce", 0))
    f = tmp_path / "l.txt"
    f.write_bytes(b"Alice@Example.org:correct-horse\n")
    ingest(tmp_path / "d", [str(f)], st_)
    c = LeakCorpus(tmp_path / "d", st_)
    good = dovecot_pwhash("some-nonce", "alice@example.org", "correct-horse", 0)
    bad = dovecot_pwhash("some-nonce", "alice@example.org", "correct-horsE", 0)
    att = Attempt(login="alice@example.org", ip="192.0.2.1", protocol=Protocol.IMAP, pwhash=good)
    assert c.leaked_pair(att)
    att.pwhash = bad
    assert not c.leaked_pair(att)
    # a corpus opened with other Dovecot settings does not trust its Dovecot fingerprints
    other = LeakCorpus(tmp_path / "d", BreachSettings(dovecot=DovecotHash("other", 0)))
    assert not other.leaked_pair(Attempt(login="alice@example.org", ip="192.0.2.1", pwhash=good))
    with pytest.raises(IngestError, match="hash_nonce"):
        ingest(tmp_path / "d", [str(f)], BreachSettings(dovecot=DovecotHash("other", 0)))


def test_key_file_is_private_and_reload_picks_up_new_ingest(tmp_path: Path) -> None:
    d = tmp_path / "d"
    c = LeakCorpus(d)
    assert (d / "leaks.key").stat().st_mode & 0o777 == 0o600
    f = tmp_path / "l.txt"
    f.write_bytes(b"u@x.org:pw\n")
    assert not c.login_exposed("u@x.org")
    ingest(d, [str(f)], BreachSettings())
    assert c.reload() and c.login_exposed("u@x.org")
    assert not c.reload()


def test_password_check_reports_leaked_popular_and_strength(tmp_path: Path) -> None:
    f = tmp_path / "l.txt"
    f.write_bytes(b"u@x.org:Summer-Tide-9182\n")
    ingest(tmp_path / "d", [str(f)], BreachSettings())
    c = LeakCorpus(tmp_path / "d")
    r = c.password_check("U@x.org", "Summer-Tide-9182")
    assert r["leaked"] and not r["acceptable"]
    r = c.password_check("u@x.org", "123456")
    assert r["popular"] and r["strength"]["score"] == 0 and not r["acceptable"]
    r = c.password_check("u@x.org", "violet-anchor-tremble-88")
    assert not r["leaked"] and not r["popular"] and r["acceptable"]
    assert c.fingerprint_password("u@x.org", "password").password_popular


rules = LoginRules()
line_st = st.one_of(
    st.binary(max_size=40),
    st.builds(
        lambda a, s, b: a + s + b,
        st.from_regex(rb"[A-Za-z0-9.+@ -]{0,12}", fullmatch=True),
        st.sampled_from([b":", b";", b"\t", b"|", b"://"]),
        st.binary(max_size=12).filter(lambda x: b"\n" not in x),
    ),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(line_st, max_size=25))
def test_ingest_never_crashes_nor_accepts_a_rejected_line(
    tmp_path: Path, lines: list[bytes]
) -> None:
    from rempart.breach.fingerprints import Fingerprinter

    fpr = Fingerprinter(b"k" * 32, DovecotHash("n", 0))
    flat = b"\n".join(lines).split(b"\n")
    batch = hash_lines(flat, 1, fpr, rules, track_accepted=True)
    accepted = set(batch.accepted_lines or [])
    rejected = {n for s in batch.samples.values() for n in s}
    assert not accepted & rejected
    assert len(accepted) + sum(batch.rejected.values()) == len(flat)
    expected = set()
    for n, line in enumerate(flat, 1):
        got = parse_line(line, rules)
        assert (n in accepted) == (not isinstance(got, str))
        if not isinstance(got, str):
            expected.add(int.from_bytes(fpr.pair_fp(got[0], got[2].decode("utf-8")), "big"))
    assert set(int(x) for x in batch.pairs) == expected


def test_small_chunks_give_the_same_corpus(tmp_path: Path) -> None:
    import random

    rnd = random.Random(7)
    f = tmp_path / "l.txt"
    f.write_bytes(b"".join(b"u%d@x.org:p%d\n" % (rnd.randrange(3000), i) for i in range(5000)))
    a = ingest(tmp_path / "a", [str(f)], BreachSettings(leaks=LeakSettings(chunk_lines=1000)))
    b = ingest(tmp_path / "b", [str(f)], BreachSettings())
    assert a["corpus"] == b["corpus"] and a["pairs_added"] == 5000


def test_a_second_ingest_at_once_is_refused_naming_the_first(tmp_path: Path) -> None:
    """Issue 13 item 3: one writer of the corpus at a time."""
    import os

    from rempart.datadir import DirLock

    d = tmp_path / "d"
    good = tmp_path / "good.txt"
    good.write_bytes(b"u1@x.org:p1\n")
    (d / "leaks").mkdir(parents=True)
    with (
        DirLock(d / "leaks" / "ingest.lock", "rempart leaks ingest"),
        pytest.raises(IngestError, match=f"in use by pid {os.getpid()}"),
    ):
        ingest(d, [str(good)], BreachSettings())
    ingest(d, [str(good)], BreachSettings())  # free again
