"""The tailer on real files: appends, partial lines, rotation by rename and by truncation,
restarts (also across a rotation while down), an unreachable server, bad lines; and the
in-process sink turning a source's failures into its block-list entry."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from rempart.adapters.logparse import LogEvent, load_parser
from rempart.adapters.tail.sinks import EngineSink, SinkError
from rempart.adapters.tail.tailer import Tailer
from rempart.config import Settings, from_mapping
from rempart.engine.engine import Engine
from rempart.engine.keys import canonical_login

PARSER = load_parser("dovecot")


def fail(n: int, ip: str = "203.0.113.7") -> str:
    return (
        f"Nov 23 18:00:00 imap-login: Info: Disconnected: Connection closed (auth failed, 1 "
        f"attempts in 2 secs): user=<user{n}@example.org>, method=PLAIN, rip={ip}, "
        f"lip=127.0.0.1, session=<s{n}>\n"
    )


class Collect:
    def __init__(self) -> None:
        self.events: list[LogEvent] = []
        self.down = False

    def send(self, event: LogEvent) -> None:
        if self.down:
            raise SinkError("server down")
        self.events.append(event)

    def logins(self) -> list[str]:
        return [e.login for e in self.events]


def write(path: Path, text: str, mode: str = "a") -> None:
    with open(path, mode) as fh:
        fh.write(text)


def tailer(path: Path, sink: Collect, state: Path, start_at: str = "start") -> Tailer:
    return Tailer([(str(path), PARSER)], sink, state, start_at)


def drain(t: Tailer) -> None:
    while t.poll_once():
        pass


def test_appends_partial_lines_and_bad_lines(tmp_path: Path) -> None:
    log, sink = tmp_path / "dovecot.log", Collect()
    write(log, fail(1) + "garbage that is no login line\n")
    t = tailer(log, sink, tmp_path / "offsets.json")
    drain(t)
    assert sink.logins() == ["user1@example.org"]
    half = fail(2)
    write(log, half[:40])  # a writer in the middle of a line
    drain(t)
    assert sink.logins() == ["user1@example.org"]
    write(log, half[40:] + fail(3, ip="999.0.0.1") + b"\xff\xfe broken utf-8\n".decode("latin-1"))
    drain(t)
    assert sink.logins() == ["user1@example.org", "user2@example.org"]
    stats = t.sources[0].stats
    assert (stats.lines, stats.events, stats.bad, stats.ignored) == (5, 2, 1, 2)
    t.close()


def test_rename_rotation_reads_the_old_file_to_its_end(tmp_path: Path) -> None:
    log, sink = tmp_path / "mail.log", Collect()
    write(log, fail(1))
    t = tailer(log, sink, tmp_path / "offsets.json")
    drain(t)
    # The daemon writes one more line, logrotate renames, the daemon writes to the old file
    # until it reopens, then to the new file.
    with open(log, "a") as old_writer:
        old_writer.write(fail(2))
        old_writer.flush()
        os.rename(log, tmp_path / "mail.log.1")
        drain(t)
        old_writer.write(fail(3))
    write(log, fail(4), "w")
    drain(t)
    drain(t)
    assert sorted(sink.logins()) == [f"user{i}@example.org" for i in (1, 2, 3, 4)]
    assert len(sink.events) == 4
    t.close()
    # Restarted while the rotated file was still watched: nothing is read twice.
    again = Collect()
    t = tailer(log, again, tmp_path / "offsets.json")
    drain(t)
    write(log, fail(5))
    drain(t)
    t.close()
    assert again.logins() == ["user5@example.org"]


def test_truncation_reads_from_the_start(tmp_path: Path) -> None:
    log, sink = tmp_path / "mail.log", Collect()
    write(log, fail(1) + fail(2))
    t = tailer(log, sink, tmp_path / "offsets.json")
    drain(t)
    os.truncate(log, 0)  # copytruncate
    drain(t)
    write(log, fail(3))
    drain(t)
    assert sink.logins() == ["user1@example.org", "user2@example.org", "user3@example.org"]
    t.close()


def test_restart_resumes_without_repeating_or_losing(tmp_path: Path) -> None:
    log, state = tmp_path / "mail.log", tmp_path / "offsets.json"
    write(log, "old history\n" + fail(0))
    first = Collect()
    t = tailer(log, first, state, start_at="end")  # a first start skips the history
    write(log, fail(1))
    drain(t)
    t.close()
    assert first.logins() == ["user1@example.org"]
    assert json.loads(state.read_text())[str(log)][-1]["offset"] == log.stat().st_size

    write(log, fail(2))  # written while the tailer was down
    second = Collect()
    t = tailer(log, second, state, start_at="end")
    drain(t)
    t.close()
    assert second.logins() == ["user2@example.org"]


def test_restart_after_a_rotation_while_down(tmp_path: Path) -> None:
    log, state = tmp_path / "mail.log", tmp_path / "offsets.json"
    write(log, fail(1))
    t = tailer(log, Collect(), state)
    drain(t)
    t.close()
    write(log, fail(2))  # down: the old file grows, is rotated, and a new one starts
    os.rename(log, tmp_path / "mail.log.1")
    write(log, fail(3), "w")
    sink = Collect()
    t = tailer(log, sink, state)
    drain(t)
    drain(t)
    write(log, fail(4))
    drain(t)
    t.close()
    assert sink.logins() == ["user2@example.org", "user3@example.org", "user4@example.org"]


def test_unreachable_server_loses_nothing(tmp_path: Path) -> None:
    log, state, sink = tmp_path / "mail.log", tmp_path / "offsets.json", Collect()
    t = tailer(log, sink, state)
    write(log, fail(1))
    drain(t)
    sink.down = True
    write(log, fail(2) + fail(3))
    with pytest.raises(SinkError):
        t.poll_once()
    with pytest.raises(SinkError):
        t.poll_once()
    t.close()
    # Even a restart in between resumes at the first line that was not sent.
    t = tailer(log, sink, state)
    sink.down = False
    drain(t)
    t.close()
    assert sink.logins() == ["user1@example.org", "user2@example.org", "user3@example.org"]


def test_file_appearing_later_is_read_from_its_start(tmp_path: Path) -> None:
    log, sink = tmp_path / "late.log", Collect()
    t = tailer(log, sink, tmp_path / "offsets.json", start_at="end")
    drain(t)
    write(log, fail(1))
    drain(t)
    t.close()
    assert sink.logins() == ["user1@example.org"]


def test_engine_sink_blocks_a_spraying_source(tmp_path: Path) -> None:
    settings: Settings = from_mapping(
        {
            "policy": {
                "rules": [
                    {
                        "name": "spray_pattern",
                        "when": "failed_logins(ip, '1h') >= 3 and not shared_ip",
                        "action": "deny",
                        "block": {"scope": "ip", "ttl": "1h"},
                        "message": "Too many different accounts tried from your address.",
                    }
                ]
            }
        }
    )
    engine = Engine.in_memory(settings)
    log = tmp_path / "mail.log"
    t = Tailer(
        [(str(log), PARSER)],
        EngineSink(engine, lambda raw: canonical_login(raw, settings.logins)),
        tmp_path / "offsets.json",
        "start",
    )
    write(log, fail(1) + fail(2) + fail(1, ip="198.51.100.1"))
    drain(t)
    now = time.time()
    assert engine.blocklist.match("203.0.113.7", bytes([203, 0, 113, 7]), "", now) is None
    write(log, fail(3))
    drain(t)
    entry = engine.blocklist.match("203.0.113.7", bytes([203, 0, 113, 7]), "", time.time())
    assert entry is not None and entry.reason.startswith("spray_pattern")
    assert engine.blocklist.match("198.51.100.1", bytes([198, 51, 100, 1]), "", now) is None
    t.close()
