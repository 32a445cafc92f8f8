"""Dovecot semantics of a verdict: what is checked, what is reported, what is a takeover."""

from __future__ import annotations

import pytest

from rempart.model import Action, Protocol
from rempart.sim.events import Event
from rempart.sim.outcome import (
    ALLOWED,
    DELAYED,
    DENIED,
    STEPPED_UP,
    effect_of,
    is_takeover,
    outcome_of,
)


def ev(protocol: Protocol, legit: bool, correct: bool, exists: bool = True) -> Event:
    return Event(0.0, "a@x", "192.0.2.1", protocol, "pw", "s", legit, correct, exists)


@pytest.mark.parametrize("proto", [Protocol.IMAP, Protocol.POP3, Protocol.SMTP])
def test_step_up_on_legacy_mail_is_a_deny(proto: Protocol) -> None:
    e = ev(proto, legit=False, correct=True)
    assert effect_of(e, Action.STEP_UP) == DENIED
    out = outcome_of(e, DENIED)
    assert (out.success, out.policy_reject) == (False, True)
    assert not is_takeover(e, DENIED)


def test_step_up_on_web_stops_the_attacker_not_the_user() -> None:
    attacker = ev(Protocol.WEB, legit=False, correct=True)
    user = ev(Protocol.APP, legit=True, correct=True)
    assert effect_of(attacker, Action.STEP_UP) == STEPPED_UP
    assert not is_takeover(attacker, STEPPED_UP)
    assert outcome_of(attacker, STEPPED_UP).success is False
    assert outcome_of(user, STEPPED_UP).success is True


def test_delay_still_lets_a_correct_password_in() -> None:
    e = ev(Protocol.IMAP, legit=False, correct=True)
    assert effect_of(e, Action.DELAY) == DELAYED
    assert is_takeover(e, DELAYED)
    assert outcome_of(e, DELAYED).success is True
    assert is_takeover(e, ALLOWED)
    assert not is_takeover(ev(Protocol.IMAP, legit=False, correct=False), ALLOWED)


def test_unknown_login_is_reported_as_such() -> None:
    e = ev(Protocol.IMAP, legit=False, correct=False, exists=False)
    assert outcome_of(e, ALLOWED).unknown_login is True
    assert outcome_of(e, DENIED).unknown_login is True
