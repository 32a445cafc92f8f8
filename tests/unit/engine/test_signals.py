"""Signals, the facts rules read, as `Engine.explain` shows them: familiarity of network and
device (a device never vouches on legacy mail), shared addresses, leaks, posture, counts."""

from __future__ import annotations

from typing import Any

from rempart.config import from_mapping
from rempart.engine.engine import Engine
from rempart.model import Attempt, Outcome, Protocol

T0 = 1_800_000_000.0
DAY = 86400.0


def signals(engine: Engine, attempt: Attempt, now: float = T0) -> dict[str, Any]:
    return engine.explain(attempt, now)["signals"]


def succeed(engine: Engine, attempt: Attempt, now: float) -> None:
    engine.decide(attempt, now)
    engine.report(attempt, Outcome(success=True), now)


def test_a_fresh_attempt() -> None:
    s = signals(Engine.in_memory(), Attempt("a@example.org", "192.0.2.1", Protocol.IMAP))
    assert s == {
        "familiar_network": False,
        "familiar_device": False,
        "known_account": False,
        "shared_ip": False,
        "shared_subnet": False,
        "leaked_pair": False,
        "login_exposed": False,
        "account_restricted": False,
        "popular_password": False,
        "app_password": False,
        "app_passwords_only": False,
        "legacy": True,
        "posture": "normal",
        "exposure_grace": False,
        "known_fetcher": False,
        "usual_network": False,
    }


def test_a_success_makes_its_slash_24_familiar_for_that_account_only() -> None:
    engine = Engine.in_memory()
    succeed(engine, Attempt("a@example.org", "192.0.2.1", Protocol.IMAP), T0 - DAY)
    same_net = signals(engine, Attempt("a@example.org", "192.0.2.200", Protocol.IMAP))
    assert same_net["familiar_network"] and same_net["known_account"]
    assert not signals(engine, Attempt("a@example.org", "192.0.3.1"))["familiar_network"]
    assert not signals(engine, Attempt("b@example.org", "192.0.2.1"))["familiar_network"]


def test_familiarity_decays_after_the_configured_days() -> None:
    engine = Engine.in_memory(from_mapping({"familiarity": {"ttl_days": 2}}))
    succeed(engine, Attempt("a@example.org", "192.0.2.1"), T0)
    attempt = Attempt("a@example.org", "192.0.2.1")
    assert signals(engine, attempt, T0 + 2 * DAY)["familiar_network"]
    assert not signals(engine, attempt, T0 + 2 * DAY + 60)["familiar_network"]


def test_a_known_device_vouches_on_the_web_but_not_on_legacy_mail() -> None:
    engine = Engine.in_memory()
    succeed(engine, Attempt("a@example.org", "192.0.2.1", Protocol.WEB, device_id="phone"), T0)
    web = signals(engine, Attempt("a@example.org", "203.0.113.9", Protocol.WEB, device_id="phone"))
    assert web["familiar_device"] and not web["familiar_network"]
    imap = Attempt("a@example.org", "203.0.113.9", Protocol.IMAP, device_id="phone")
    assert not signals(engine, imap)["familiar_device"]  # an IMAP ID is copied by anyone
    other = Attempt("a@example.org", "203.0.113.9", Protocol.WEB, device_id="tablet")
    assert not signals(engine, other)["familiar_device"]


def test_an_address_used_by_many_established_users_is_shared() -> None:
    engine = Engine.in_memory()
    cgnat = "100.64.1.1"
    for i in range(12):  # shared_ip_min_users = 10 by default
        succeed(engine, Attempt(f"u{i}@example.org", cgnat), T0 - DAY)  # first visit
        succeed(engine, Attempt(f"u{i}@example.org", cgnat), T0 + i)  # now established
    assert signals(engine, Attempt("new@example.org", cgnat), T0 + 60)["shared_ip"]
    assert not signals(engine, Attempt("new@example.org", "100.64.1.2"), T0 + 60)["shared_ip"]


def test_newcomers_make_an_address_shared_only_while_they_mostly_succeed() -> None:
    # 25 users never seen before succeed from each address (2 x shared_ip_min_users): a
    # webmail's fetcher; with four failures per success it is a leaked list being replayed.
    engine = Engine.in_memory()
    for i in range(25):
        succeed(engine, Attempt(f"u{i}@example.org", "198.51.100.7"), T0 + i)
        succeed(engine, Attempt(f"u{i}@example.org", "203.0.113.8"), T0 + i)
        for k in range(4):
            failed = Attempt(f"x{i}-{k}@example.org", "203.0.113.8")
            engine.report(failed, Outcome(success=False), T0 + i)
    assert signals(engine, Attempt("n@example.org", "198.51.100.7"), T0 + 60)["shared_ip"]
    assert not signals(engine, Attempt("n@example.org", "203.0.113.8"), T0 + 60)["shared_ip"]


def test_posture_legacy_and_popular_password_follow_the_attempt() -> None:
    engine = Engine.in_memory()
    engine.set_posture(Protocol.POP3, "strict", "test", "drill", T0)
    pop3 = signals(engine, Attempt("a@example.org", "192.0.2.1", Protocol.POP3))
    assert (pop3["posture"], pop3["legacy"]) == ("strict", True)
    web = signals(engine, Attempt("a@example.org", "192.0.2.1", Protocol.WEB))
    assert (web["posture"], web["legacy"]) == ("normal", False)
    popular = Attempt("a@example.org", "192.0.2.1", password_popular=True)
    assert signals(engine, popular)["popular_password"]
