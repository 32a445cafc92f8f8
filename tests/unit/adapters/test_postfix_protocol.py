"""Postfix's policy protocol: reading requests off a stream (several per connection, bounded,
with deadlines) and writing answers."""

from __future__ import annotations

import asyncio

import pytest

from rempart.adapters.postfix.protocol import (
    BadRequest,
    Limits,
    Timeout,
    answer_line,
    parse_attribute,
    read_request,
)

# What Debian 12's Postfix 3.7.11 sends at RCPT for a client authenticated through Dovecot SASL,
# as captured from the integration rig (tests/integration/postfix_rig.py), addresses changed.
RCPT = (
    b"request=smtpd_access_policy\n"
    b"protocol_state=RCPT\n"
    b"protocol_name=ESMTP\n"
    b"client_address=192.0.2.7\n"
    b"client_name=unknown\n"
    b"client_port=47776\n"
    b"reverse_client_name=unknown\n"
    b"server_address=198.51.100.25\n"
    b"server_port=587\n"
    b"helo_name=laptop\n"
    b"sender=alice@example.org\n"
    b"recipient=bob@example.net\n"
    b"recipient_count=0\n"
    b"queue_id=\n"
    b"instance=711a.6b1094cd.3fe09.0\n"
    b"size=0\n"
    b"etrn_domain=\n"
    b"stress=\n"
    b"sasl_method=PLAIN\n"
    b"sasl_username=alice@example.org\n"
    b"sasl_sender=\n"
    b"ccert_subject=\n"
    b"ccert_issuer=\n"
    b"ccert_fingerprint=\n"
    b"ccert_pubkey_fingerprint=\n"
    b"encryption_protocol=\n"
    b"encryption_cipher=\n"
    b"encryption_keysize=0\n"
    b"policy_context=\n"
    b"\n"
)
LIMITS = Limits(max_line=256, max_request=2048, request_timeout=0.2, idle_timeout=0.5)


def reader_of(data: bytes, eof: bool = True, limits: Limits = LIMITS) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=limits.max_line + 1)
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


def read_all(data: bytes) -> list[dict[str, str] | BadRequest]:
    """Every request (or refusal) read from a connection that sent `data` and closed."""
    return asyncio.run(_read_all(data))


async def _read_all(data: bytes) -> list[dict[str, str] | BadRequest]:
    reader = reader_of(data)
    out: list[dict[str, str] | BadRequest] = []
    while True:
        try:
            request = await read_request(reader, LIMITS)
        except BadRequest as exc:
            out.append(exc)
            if exc.close:
                return out
            continue
        if request is None:
            return out
        out.append(request)


def test_requests_follow_each_other_on_one_connection() -> None:
    found = read_all(RCPT + RCPT.replace(b"bob@", b"carol@"))
    assert len(found) == 2
    first, second = found
    assert isinstance(first, dict) and isinstance(second, dict)
    assert first["request"] == "smtpd_access_policy"
    assert first["sasl_username"] == "alice@example.org"
    assert first["queue_id"] == "" and len(first) == 29  # an empty value is a value
    assert (first["recipient"], second["recipient"]) == ("bob@example.net", "carol@example.net")


def test_a_value_keeps_its_equals_signs_and_crlf_is_tolerated() -> None:
    (request,) = read_all(b"request=smtpd_access_policy\r\nccert_subject=CN=a=b\r\n\r\n")
    assert request == {"request": "smtpd_access_policy", "ccert_subject": "CN=a=b"}


def test_bytes_that_are_not_utf8_do_not_fail_the_request() -> None:
    (request,) = read_all(b"sender=\xff\xfeuser@example.org\n\n")
    assert isinstance(request, dict) and request["sender"] == "\ufffd\ufffduser@example.org"


def test_a_malformed_line_spoils_only_its_request() -> None:
    found = read_all(b"request=smtpd_access_policy\nno equals sign\n=value\n\n" + RCPT)
    assert isinstance(found[0], BadRequest) and not found[0].close
    assert "line 2 is not name=value" in found[0].reason  # the first bad line is named
    assert isinstance(found[1], dict) and found[1]["recipient"] == "bob@example.net"


def test_a_line_longer_than_the_limit_ends_the_connection() -> None:
    huge = b"request=smtpd_access_policy\nrecipient=" + b"x" * 1000 + b"\n\n"
    (found,) = read_all(huge + RCPT)
    assert isinstance(found, BadRequest) and found.close
    assert "line 2 is longer than 256 bytes" in found.reason


def test_a_request_larger_than_the_limit_ends_the_connection() -> None:
    many = b"".join(b"attr%d=%s\n" % (i, b"v" * 100) for i in range(40)) + b"\n"
    (found,) = read_all(many)
    assert isinstance(found, BadRequest) and found.close
    assert "larger than 2048 bytes" in found.reason


def test_a_client_closing_between_or_inside_requests_ends_quietly() -> None:
    assert read_all(b"") == []
    assert read_all(b"request=smtpd_access_policy\nsender=a") == []


def stalled_for(data: bytes) -> float:
    """Seconds until reading from a client that sent `data` and then nothing times out."""

    async def stall() -> float:
        reader = reader_of(data, eof=False)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(Timeout):
            await read_request(reader, LIMITS)
        return loop.time() - started

    return asyncio.run(stall())


def test_an_unfinished_request_times_out_after_request_timeout() -> None:
    assert 0.15 < stalled_for(b"request=smtpd_access_policy\n") < 0.45  # not idle_timeout


def test_an_idle_connection_times_out_after_idle_timeout() -> None:
    assert stalled_for(b"") >= 0.45


def test_parse_attribute_names_the_line() -> None:
    assert parse_attribute(b"sasl_username=alice", 3) == ("sasl_username", "alice")
    with pytest.raises(BadRequest, match="line 7 is not name=value"):
        parse_attribute(b"bad name=x", 7)


def test_answers_are_one_ascii_line_and_an_empty_line() -> None:
    assert answer_line("DUNNO") == b"action=DUNNO\n\n"
    assert answer_line("REJECT", "5.7.1 no") == b"action=REJECT 5.7.1 no\n\n"
    # A newline or a non-ASCII character in the text cannot break the protocol or the reply.
    assert answer_line("DEFER", "a\nb\u00e9c" + "x" * 500) == (
        b"action=DEFER a?b?c" + b"x" * 395 + b"\n\n"
    )
