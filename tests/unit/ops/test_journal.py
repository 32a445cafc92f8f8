"""The journal: what the engine does is recorded as a hash chain that survives a restart, is
queryable, and betrays any edit, deletion or damage at the first record it touches."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from rempart.engine.engine import Engine
from rempart.engine.events import Familiar, FetchersLearned
from rempart.engine.lists import ListEntry
from rempart.model import Attempt, Outcome, Protocol
from rempart.ops.journal import Journal

T0 = 1_800_000_000.0


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal", flush_interval=0.01)
    j.start()
    yield j
    j.close()


def traffic(journal: Journal, failures: int = 4) -> Engine:
    """An engine writing to `journal`: a few failed logins (the 4th is delayed), then a list
    entry; 2 records per attempt and one for the entry."""
    engine = Engine.in_memory()
    engine.listeners.append(journal.listener)
    for i in range(failures):
        attempt = Attempt("alice@example.org", "192.0.2.1", Protocol.IMAP, pwhash="0abc")
        engine.decide(attempt, T0 + i)
        engine.report(attempt, Outcome(success=False), T0 + i)
    engine.add_entry("block", ListEntry("ip", "198.51.100.7", 0, "abuse", T0 + 10), by="test")
    assert journal.flush()
    return engine


def lines(journal: Journal) -> tuple[Path, list[str]]:
    (segment,) = sorted(journal.dir.glob("segment-*.jsonl"))
    return segment, segment.read_text().splitlines()


def test_records_chain_and_verify(journal: Journal) -> None:
    traffic(journal)
    assert journal.verify() == (9, None)
    records = list(journal.records())
    assert [r["seq"] for r in records] == list(range(1, 10))
    assert records[0]["prev"] == "0" * 64
    assert all(b["prev"] == a["hash"] for a, b in itertools.pairwise(records))
    assert [r["kind"] for r in records[:2]] == ["decision", "report"]
    assert records[6]["verdict"] == "delay" and records[6]["reasons"] == ["ip_login_failures"]
    assert "password" not in json.dumps(records)


def test_a_full_dovecot_pwhash_is_journaled_as_its_first_twelve_bits(journal: Journal) -> None:
    """Dovecot's full pwhash (hash_truncate_bits = 0) is sha256(nonce, login, password): with the
    nonce from the config, a journal holding it would be a list of crackable password hashes."""
    password_hash = hashlib.sha256(b"nonce" + b"alice@example.org" + b"hunter2").hexdigest()
    engine = Engine.in_memory()
    engine.listeners.append(journal.listener)
    attempt = Attempt("alice@example.org", "192.0.2.1", Protocol.IMAP, pwhash=password_hash)
    engine.decide(attempt, T0)
    engine.report(attempt, Outcome(success=True), T0)
    assert journal.flush()
    records = [json.loads(line) for line in lines(journal)[1]]
    attempts = [r for r in records if r["kind"] in ("decision", "report")]
    assert [r["pwhash"] for r in attempts] == [password_hash[:3], password_hash[:3]]
    assert password_hash[3:12] not in lines(journal)[0].read_text()


def test_learned_fetchers_are_not_journaled(
    journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    # Internal learned state (kept by the StateWriter): once it failed to encode every hour.
    traffic(journal)
    journal.listener(FetchersLearned(T0 + 20, "{}"))
    assert journal.flush()
    assert journal.verify() == (9, None)
    assert "cannot record" not in caplog.text


def test_a_familiarity_learned_from_a_peer_is_not_journaled(journal: Journal) -> None:
    # The node whose report taught it journaled it; every node of a cluster would repeat it.
    journal.listener(Familiar(T0, "alice@example.org", "net:192.0.2.0/24", from_peer=True))
    journal.listener(Familiar(T0 + 1, "bob@example.org", "net:198.51.100.0/24"))
    assert journal.flush()
    records = list(journal.records())
    assert [(r["kind"], r["login"]) for r in records] == [("familiar", "bob@example.org")]


def test_queries_by_login_ip_kind_and_time(journal: Journal) -> None:
    traffic(journal)
    assert len(list(journal.records(login="alice@example.org"))) == 8
    assert len(list(journal.records(login="bob@example.org"))) == 0
    (entry,) = journal.records(ip="198.51.100.7")
    assert entry["kind"] == "list_add" and entry["reason"] == "abuse" and entry["by"] == "test"
    reports = list(journal.records(kinds=frozenset({"report"}), since=T0 + 1, until=T0 + 2))
    assert [r["ts"] for r in reports] == [T0 + 1, T0 + 2]


def test_the_chain_continues_after_a_restart(tmp_path: Path) -> None:
    first = Journal(tmp_path / "journal", flush_interval=0.01)
    first.start()
    traffic(first, failures=1)
    first.close()
    second = Journal(tmp_path / "journal", flush_interval=0.01)
    assert second.seq == 3
    second.start()
    traffic(second, failures=1)
    second.close()
    assert second.verify() == (6, None)


def test_a_record_being_written_is_skipped_by_a_reader_and_refused_by_a_writer(
    tmp_path: Path,
) -> None:
    """A reader (the CLI, beside a running server) opening the journal while the server's write
    is half done goes on from the record before; a writer will not append after it."""
    first = Journal(tmp_path / "journal", flush_interval=0.01)
    first.start()
    traffic(first, failures=1)
    first.close()
    segment = sorted((tmp_path / "journal").glob("segment-*.jsonl"))[-1]
    with open(segment, "ab") as fh:
        fh.write(b'{"ts":1764780000.5,"kind":"report","login":"half')
    reader = Journal(tmp_path / "journal")
    assert (reader.seq, reader.last_hash) == (3, first.last_hash)
    with pytest.raises(ValueError, match="ends with an unfinished record"):
        reader.start()


def test_an_edited_record_is_found(journal: Journal) -> None:
    traffic(journal)
    segment, text = lines(journal)
    text[6] = text[6].replace('"verdict":"delay"', '"verdict":"allow"')
    segment.write_text("\n".join(text) + "\n")
    count, broken = journal.verify()
    assert count == 6 and broken is not None
    assert (broken.line, broken.seq, broken.why) == (7, 7, "content altered")


def test_a_deleted_record_is_found(journal: Journal) -> None:
    traffic(journal)
    segment, text = lines(journal)
    del text[3]
    segment.write_text("\n".join(text) + "\n")
    count, broken = journal.verify()
    assert count == 3 and broken is not None
    assert broken.why == "sequence jumps from 3 to 5"


def test_an_edit_with_its_hash_recomputed_breaks_the_next_link(journal: Journal) -> None:
    traffic(journal)
    segment, text = lines(journal)
    record = json.loads(text[2])
    del record["hash"]
    record["login"] = "mallory@example.org"  # the forger rewrites the record and its hash
    body = orjson.dumps(record)
    forged = hashlib.sha256(record["prev"].encode() + body).hexdigest()
    text[2] = body[:-1].decode() + f',"hash":"{forged}"}}'
    segment.write_text("\n".join(text) + "\n")
    count, broken = journal.verify()
    assert count == 3 and broken is not None
    assert (broken.line, broken.seq, broken.why) == (4, 4, "previous-hash mismatch")


def test_a_damaged_line_is_not_a_record(journal: Journal) -> None:
    traffic(journal)
    segment, text = lines(journal)
    text[4] = text[4][:20]
    segment.write_text("\n".join(text) + "\n")
    count, broken = journal.verify()
    assert count == 4 and broken is not None
    assert (broken.line, broken.seq, broken.why) == (5, None, "not a journal record")
