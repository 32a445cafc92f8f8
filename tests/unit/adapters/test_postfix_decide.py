"""The Postfix policy's answers: unauthenticated mail left alone, restricted and blocked accounts
refused with Rempart's message, recipients per account per hour limited, bad requests deferred."""

from __future__ import annotations

from dataclasses import replace

import pytest

from rempart.adapters.postfix.decide import Action, Decider
from rempart.adapters.postfix.rate import BUCKET_SECONDS, RecipientCounter
from rempart.adapters.postfix.settings import PostfixSettings
from rempart.config import ConfigError, LoginRules, from_mapping
from rempart.engine.engine import Engine
from rempart.engine.lists import ListEntry
from rempart.model import Attempt, ListName

NOW = 1_800_000_000.0
SETTINGS = replace(PostfixSettings(), enabled=True, recipients_per_hour=3)


class Leaks:
    """A LeakOracle whose restricted accounts are given."""

    def __init__(self, restricted: set[str]) -> None:
        self.restricted = restricted

    def leaked_pair(self, attempt: Attempt) -> bool:
        return False

    def login_exposed(self, login: str) -> bool:
        return login in self.restricted

    def account_restricted(self, login: str) -> bool:
        return login in self.restricted

    def exposure_seen(self, login: str, now: float) -> float:
        return now


def decider(restricted: set[str] = frozenset(), settings: PostfixSettings = SETTINGS) -> Decider:
    engine = Engine.in_memory(leaks=Leaks(set(restricted)))
    return Decider(engine, LoginRules(), settings)


def request(login: str = "alice@example.org", ip: str = "192.0.2.7", state: str = "RCPT"):
    return {
        "request": "smtpd_access_policy",
        "protocol_state": state,
        "client_address": ip,
        "sasl_username": login,
        "recipient": "bob@example.net",
    }


def block(d: Decider, kind: str, value: str, expires: float = 0.0, reason: str = "ops") -> None:
    d.engine.add_entry(ListName.BLOCK, ListEntry(kind, value, expires, reason, NOW))


def test_unauthenticated_mail_is_left_alone_even_from_a_blocked_address() -> None:
    d = decider()
    block(d, "ip", "192.0.2.7")
    for _ in range(10):
        answer = d.answer(request(login=""), NOW)
        assert answer.action is Action.DUNNO and answer.encode() == b"action=DUNNO\n\n"
    assert len(d.recipients) == 0  # nothing counted either


def test_a_restricted_account_is_rejected_with_rempart_message() -> None:
    d = decider({"alice@example.org"})
    answer = d.answer(request(login="Alice+lists@Example.ORG"), NOW)  # canonicalised first
    assert (answer.action, answer.code, answer.login) == (
        Action.REJECT,
        "account_restricted",
        "alice@example.org",
    )
    assert answer.encode() == (
        b"action=REJECT 5.7.1 " + SETTINGS.restricted_message.encode() + b"\n\n"
    )
    assert d.answer(request(login="bob@example.org"), NOW).action is Action.DUNNO
    lenient = decider({"alice@example.org"}, replace(SETTINGS, refuse_restricted=False))
    assert lenient.answer(request(), NOW).action is Action.DUNNO


def test_block_entries_defer_while_they_expire_and_reject_when_permanent() -> None:
    d = decider()
    block(d, "login", "alice@example.org")
    answer = d.answer(request(), NOW)
    assert (answer.action, answer.code) == (Action.REJECT, "blocklisted")
    assert SETTINGS.blocked_message in answer.encode().decode()
    for kind, value in (
        ("ip", "198.51.100.9"),
        ("netmask", "203.0.113.0/24"),
        ("ip_login", "192.0.2.50|carol@example.org"),
    ):
        block(d, kind, value, expires=NOW + 600)
    cases = [
        ("bob@example.org", "198.51.100.9", Action.DEFER),
        ("bob@example.org", "203.0.113.77", Action.DEFER),
        ("carol@example.org", "192.0.2.50", Action.DEFER),
        ("carol@example.org", "192.0.2.51", Action.DUNNO),  # the pair, not the login
        ("bob@example.org", "198.51.100.10", Action.DUNNO),
    ]
    for login, ip, action in cases:
        assert d.answer(request(login, ip), NOW).action is action, (login, ip)
    assert d.answer(request("bob@example.org", "198.51.100.9"), NOW + 601).action is Action.DUNNO


def test_an_automatic_block_keeps_its_rule_code() -> None:
    d = decider()
    block(d, "ip", "192.0.2.7", NOW + 900, reason="ip_failures: automatic")
    answer = d.answer(request(), NOW)
    assert (answer.action, answer.code) == (Action.DEFER, "ip_failures")
    assert answer.encode().startswith(b"action=DEFER 4.7.1 ")


def test_the_allow_list_wins_as_at_the_login_layer() -> None:
    d = decider({"alice@example.org"})
    block(d, "login", "alice@example.org")
    d.engine.add_entry(ListName.ALLOW, ListEntry("ip", "192.0.2.7", 0.0, "office", NOW))
    answer = d.answer(request(), NOW)
    assert (answer.action, answer.code) == (Action.DUNNO, "allowlisted")
    assert d.answer(request(ip="192.0.2.8"), NOW).action is Action.REJECT


def test_recipients_beyond_the_hourly_limit_are_deferred() -> None:
    d = decider()
    answers = [d.answer(request(), NOW + i).action for i in range(5)]
    assert answers == [Action.DUNNO] * 3 + [Action.DEFER] * 2
    deferred = d.answer(request(), NOW + 10)
    assert deferred.code == "recipient_rate"
    assert deferred.encode() == b"action=DEFER 4.7.1 " + SETTINGS.rate_message.encode() + b"\n\n"
    # Other accounts have their own count; other protocol states are not counted nor limited.
    assert d.answer(request(login="bob@example.org"), NOW).action is Action.DUNNO
    assert d.answer(request(state="DATA"), NOW).action is Action.DUNNO
    assert d.answer(request(state="END-OF-MESSAGE"), NOW).action is Action.DUNNO
    # An hour later (to within a bucket) the account may send again.
    assert d.answer(request(), NOW + 3600 + BUCKET_SECONDS).action is Action.DUNNO


def test_no_limit_when_recipients_per_hour_is_zero() -> None:
    d = decider(settings=replace(SETTINGS, recipients_per_hour=0))
    assert all(d.answer(request(), NOW).action is Action.DUNNO for _ in range(1000))


def test_requests_that_cannot_be_judged_are_deferred_if_permitted() -> None:
    d = decider()
    cases = {
        "missing attribute request": {k: v for k, v in request().items() if k != "request"},
        "unknown request 'junk'": {**request(), "request": "junk"},
        "missing attribute client_address": {
            k: v for k, v in request().items() if k != "client_address"
        },
        "bad client_address": {**request(), "client_address": "not-an-ip"},
        "sasl_username: login longer than": {**request(), "sasl_username": "a" * 2000},
    }
    for why, req in cases.items():
        answer = d.answer(req, NOW)
        assert answer.action is Action.DEFER_IF_PERMIT and answer.code == "bad_request", why
        assert answer.encode().startswith(b"action=DEFER_IF_PERMIT Rempart policy: " + why.encode())
    # Unauthenticated mail needs no client_address to be left alone.
    assert d.answer({"request": "smtpd_access_policy"}, NOW).action is Action.DUNNO


def test_the_recipient_counter_slides_and_stays_bounded() -> None:
    counter = RecipientCounter(max_accounts=100)
    for i in range(12):
        counter.add("alice", NOW + i * BUCKET_SECONDS, 2)
    assert counter.count("alice", NOW + 11 * BUCKET_SECONDS) == 24
    assert counter.count("alice", NOW + 12 * BUCKET_SECONDS) == 22  # the first bucket left
    assert counter.count("alice", NOW + 30 * BUCKET_SECONDS) == 0
    # After a gap longer than the hour, the bucket the ring reuses starts from zero.
    counter.add("bob", NOW, 5)
    counter.add("bob", NOW + 3 * BUCKET_SECONDS, 1)
    counter.add("bob", NOW + 13 * BUCKET_SECONDS, 1)  # NOW's slot again
    assert counter.count("bob", NOW + 13 * BUCKET_SECONDS) == 2  # the 5 dropped, the 1 kept
    assert counter.count("bob", NOW + 15 * BUCKET_SECONDS) == 1
    for i in range(150):
        counter.add(f"user{i}", NOW)
    assert len(counter) == 100 and counter.forgotten == 52  # alice, bob, then the oldest users
    assert counter.count("alice", NOW) == 0 and counter.count("user149", NOW) == 1


def test_the_postfix_table_is_checked_key_by_key() -> None:
    on = from_mapping({"postfix": {"enabled": True}}).section(PostfixSettings)
    assert (on.host, on.port, on.unix_socket, on.socket_mode) == ("127.0.0.1", 10045, "", 0o660)
    assert not from_mapping({}).section(PostfixSettings).enabled  # off without a config
    bad = {
        "[postfix] port: nothing to listen on": {"enabled": True, "port": 0},
        "[postfix] unix_socket_mode: an octal file mode": {"unix_socket_mode": "rw-rw----"},
        "[postfix] unix_socket_mode: a file mode is at most 0777": {"unix_socket_mode": "7777"},
        "[postfix] rate_message: a non-empty line of printable ASCII": {"rate_message": "\u00e9"},
        "[postfix] host: 'bad host!' is neither": {"host": "bad host!"},
        "[postfix] max_request_bytes: must be at least max_line_bytes": {
            "max_line_bytes": 8192,
            "max_request_bytes": 4096,
        },
    }
    for message, table in bad.items():
        with pytest.raises(ConfigError) as err:
            from_mapping({"postfix": table})
        assert str(err.value).startswith(message), str(err.value)
