"""The leak corpus mapped from its files (`LeakCorpus(shared=True)`, what a host with decision
workers loads): the same answers as the private copy, no copy of the fingerprints in the
process, and a new generation picked up while the old one is still mapped."""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np

from rempart.breach.corpus import LeakCorpus
from rempart.breach.ingest import ingest
from rempart.breach.settings import BreachSettings
from rempart.model import Attempt

LEAKED = [(f"user{i}@example.org", f"pw-{i}") for i in range(3000)]


def combo(path: Path, pairs: list[tuple[str, str]]) -> str:
    path.write_text("".join(f"{login}:{password}\n" for login, password in pairs))
    return str(path)


def answers(corpus: LeakCorpus, pairs: list[tuple[str, str]]) -> list[tuple[bool, bool]]:
    out = []
    for login, password in pairs:
        found = corpus.fingerprint_password(login, password)
        attempt = Attempt(login=login, ip="192.0.2.1", pair_fingerprint=found.pair_fingerprint)
        out.append((corpus.leaked_pair(attempt), corpus.login_exposed(login)))
    return out


def mapped(array: np.ndarray) -> bool:
    """Whether the array's memory is a file mapping rather than this process's own."""
    base: object = array
    while isinstance(base, np.ndarray):
        if isinstance(base, np.memmap):
            return True
        base = base.base
    return isinstance(base, mmap.mmap)


def test_the_mapped_corpus_answers_as_the_copied_one(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ingest(data, [combo(tmp_path / "a.txt", LEAKED[:2000])], BreachSettings())
    private, shared = LeakCorpus(data), LeakCorpus(data, shared=True)
    asked = LEAKED + [(login, "wrong") for login, _ in LEAKED[:50]]
    asked += [("stranger@example.org", "pw-1")]
    expected = answers(private, asked)
    assert expected.count((True, True)) == 2000  # the check sees leaks: it can fail
    assert answers(shared, asked) == expected
    assert mapped(shared._snap.pairs.array) and mapped(shared._snap.logins.array)
    assert not mapped(private._snap.pairs.array)

    ingest(data, [combo(tmp_path / "b.txt", LEAKED[2000:])], BreachSettings())
    assert shared.reload() and private.reload()
    assert answers(shared, asked) == answers(private, asked)
    assert answers(shared, LEAKED) == [(True, True)] * len(LEAKED)
    private.close()
    shared.close()
