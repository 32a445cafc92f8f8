"""Every shipped log parser replays its own sample lines (fail2ban-style), and bad parser
definitions are refused with the parser and the rule named."""

from __future__ import annotations

import pytest

from rempart.adapters.logparse import (
    BadLine,
    ParserError,
    available_parsers,
    load_parser,
    parser_from_mapping,
    regex_parser,
)
from rempart.adapters.tail.settings import tail_settings
from rempart.config import ConfigError
from rempart.model import Protocol


def test_the_shipped_parsers() -> None:
    assert available_parsers() == ["dovecot", "nginx", "postfix", "sshd"]


@pytest.mark.parametrize("name", ["dovecot", "nginx", "postfix", "sshd"])
def test_parser_replays_its_samples(name: str) -> None:
    parser = load_parser(name)
    assert parser.samples, f"{name} ships no samples"
    kinds = set()
    for sample in parser.samples:
        line, expect = sample["line"], sample.get("expect")
        if expect == "bad":
            with pytest.raises(BadLine):
                parser.parse(line)
            kinds.add("bad")
            continue
        event = parser.parse(line)
        if expect is None:
            assert event is None, f"{name}: should be ignored: {line}"
            kinds.add("ignored")
            continue
        assert event is not None, f"{name}: no event for: {line}"
        assert event.outcome == expect["outcome"], line
        assert event.ip == expect["ip"], line
        assert event.login == expect["login"], line
        assert event.protocol.value == expect.get("protocol", parser.protocol.value), line
        assert event.count == expect.get("count", 1), line
        kinds.add(event.outcome)
    # Each parser proves both what it reports and what it leaves alone.
    assert {"failure", "success", "ignored"} <= kinds, (name, kinds)


def test_dovecot_counts_every_attempt_of_a_connection() -> None:
    event = load_parser("dovecot").parse(
        "imap-login: Info: Disconnected (auth failed, 7 attempts in 20 secs): user=<x@example.org>, "
        "method=PLAIN, rip=203.0.113.7, lip=192.0.2.1"
    )
    assert event is not None and event.count == 7 and event.protocol is Protocol.IMAP
    assert event.to_outcome().success is False


def test_regex_parser_for_an_sshd_style_log() -> None:
    parser = regex_parser(
        r"authentication failure for (?P<login>\S+) from (?P<ip>\S+)", "failure", "api"
    )
    event = parser.parse("myapp[12]: authentication failure for alice from 192.0.2.9")
    assert event is not None
    assert (event.ip, event.login, event.protocol) == ("192.0.2.9", "alice", Protocol.API)
    assert parser.parse("myapp[12]: started") is None


@pytest.mark.parametrize(
    ("regex", "outcome", "protocol", "message"),
    [
        (r"from (\S+)", "failure", "other", "named group (?P<ip>"),
        (r"from (?P<ip>\S+", "failure", "other", "invalid regex"),
        (r"from (?P<ip>\S+)", "maybe", "other", "'outcome' must be one of"),
        (r"from (?P<ip>\S+)", "failure", "gopher", "unknown protocol 'gopher'"),
        (r"from (?P<ip>\S+)", "ignore", "other", "would report nothing"),
    ],
)
def test_bad_regex_parsers_are_refused(
    regex: str, outcome: str, protocol: str, message: str
) -> None:
    with pytest.raises(ParserError, match=message.replace("(", r"\(").replace("?", r"\?")):
        regex_parser(regex, outcome, protocol)


def test_bad_parser_definition_names_the_rule() -> None:
    with pytest.raises(ParserError, match="parser mine rule 2"):
        parser_from_mapping(
            "mine",
            {"rules": [{"regex": "(?P<ip>x)", "outcome": "failure"}, {"regex": "y"}]},
        )
    with pytest.raises(ParserError, match="unknown parser 'exim'"):
        load_parser("exim")


def test_tail_table_validation_names_entry_and_key() -> None:
    ok = tail_settings({"tail": {"files": [{"path": "/var/log/mail.log", "parser": "postfix"}]}})
    assert ok.files[0][0] == "/var/log/mail.log" and ok.files[0][1].name == "postfix"
    cases = [
        ({"files": [{"path": "/x", "parser": "exim"}]}, "files entry 1 \\(/x\\): unknown parser"),
        ({"files": [{"parser": "dovecot"}]}, "files entry 1: 'path'"),
        ({"files": [{"path": "/x"}]}, "needs 'parser'"),
        ({"files": [{"path": "/x", "parser": "sshd", "colour": 1}]}, "unknown key 'colour'"),
        ({"files": [{"path": "/x", "regex": "(?P<login>x)"}]}, "named group"),
        ({"poll_seconds": 0}, "poll_seconds"),
        ({"start_at": "middle"}, "start_at"),
        ({"files": "mail.log"}, "array of tables"),
    ]
    for table, message in cases:
        with pytest.raises(ConfigError, match=message):
            tail_settings({"tail": table})
