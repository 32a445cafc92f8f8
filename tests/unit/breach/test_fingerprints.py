"""Fingerprints: Dovecot's pwhash (worked examples verified on real Dovecot) and lookup/ingest agreement."""

from __future__ import annotations

import os

import pytest

from rempart.breach.fingerprints import Fingerprinter, dovecot_pwhash
from rempart.breach.hashing import hash_lines
from rempart.breach.settings import DovecotHash
from rempart.engine.keys import LoginRules


@pytest.mark.parametrize(
    ("user", "password", "bits", "expected"),
    [
        ("alice@example.org", "correct-horse", 12, "0ed6"),
        ("alice@example.org", "correct-horse", 0,
         "ed6f3f24997e0774d49cec11ae8342fc4a63e12931b375a867614e162c7c15e1"),
        ("alice@example.org", "wrong-pass", 12, "0721"),
        ("nobody@example.org", "whatever", 12, "0cb6"),
        ("alice@example.org", "correct-horse", 1, "01"),
        ("alice@example.org", "correct-horse", 20, "0ed6f3"),
        ("alice@example.org", "correct-horse", 255,
         "76b79f924cbf03ba6a4e7608d741a17e2531f09498d9bad433b0a70b163e0af0"),
    ],
)  # fmt: skip
def test_dovecot_pwhash_matches_recipe(user: str, password: str, bits: int, expected: str) -> None:
    assert dovecot_pwhash("some-nonce", user, password, bits) == expected


@pytest.mark.parametrize("bits", [0, 12, 48, 64, 65, 100, 255])
def test_dovecot_fingerprint_from_pwhash_equals_ingested_one(bits: int) -> None:
    fpr = Fingerprinter(os.urandom(32), DovecotHash("some-nonce", bits))
    batch = hash_lines([b"Alice@Example.org:correct-horse"], 1, fpr, LoginRules())
    pwhash = dovecot_pwhash("some-nonce", "alice@example.org", "correct-horse", bits)
    assert fpr.dovecot_fp("alice@example.org", pwhash) == int(batch.dovecot[0])
    other = dovecot_pwhash("some-nonce", "alice@example.org", "other", bits)
    if bits == 0 or bits >= 48:
        assert fpr.dovecot_fp("alice@example.org", other) != int(batch.dovecot[0])


def test_pair_and_login_fingerprints_agree_between_ingest_and_lookup() -> None:
    fpr = Fingerprinter(os.urandom(32), DovecotHash())
    batch = hash_lines([b"Bob+tag@Example.org:p\xc3\xa4ss"], 1, fpr, LoginRules())
    assert int.from_bytes(fpr.pair_fp("bob@example.org", "p\u00e4ss"), "big") == int(batch.pairs[0])
    assert fpr.login_fp("bob@example.org") == int(batch.logins[0])


def test_fingerprints_depend_on_the_key() -> None:
    a = Fingerprinter(b"a" * 32, DovecotHash())
    b = Fingerprinter(b"b" * 32, DovecotHash())
    assert a.pair_fp("x@y", "pw") != b.pair_fp("x@y", "pw")
    assert a.key_id != b.key_id
