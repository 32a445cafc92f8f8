"""The native API's `notice`: what to show a user who is let in, never set on a refusal."""

from __future__ import annotations

from rempart.adapters.native import verdict_body
from rempart.model import ALLOW, Action, Reason, Verdict

NOTICE = Reason("exposure_notice", "Your password appeared in a data leak. Change it.")


def test_an_allow_with_a_reason_carries_its_message_as_notice() -> None:
    body = verdict_body(Verdict(Action.ALLOW, 0.0, (NOTICE,)))
    assert body["verdict"] == "allow" and body["notice"] == NOTICE.message
    assert body["reasons"] == [{"code": "exposure_notice", "message": NOTICE.message}]


def test_plain_allow_and_refusals_have_no_notice() -> None:
    assert verdict_body(ALLOW)["notice"] == ""
    refused = Verdict(Action.DENY, 0.0, (Reason("account_exposed", "Change it."),))
    assert verdict_body(refused)["notice"] == ""
