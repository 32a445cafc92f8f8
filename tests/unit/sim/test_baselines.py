"""The baselines, checked by hand against their definitions."""

from __future__ import annotations

from rempart.model import Action, Attempt, Outcome, Protocol
from rempart.sim.policies.closure import ProtocolClosure
from rempart.sim.policies.fail2ban import Fail2Ban
from rempart.sim.policies.wforce import WforceExample

FAIL = Outcome(False)
OK = Outcome(True)


def att(ip: str = "192.0.2.1", login: str = "a@x", pw: str = "p", proto: Protocol = Protocol.IMAP):
    return Attempt(login, ip, proto, pw)


def test_fail2ban_bans_on_the_fifth_failure_within_ten_minutes_for_one_hour() -> None:
    f = Fail2Ban()
    for k in range(4):
        assert f.decide(att(), 100.0 * k).action is Action.ALLOW
        f.report(att(), FAIL, 100.0 * k)
    assert f.decide(att(), 450.0).action is Action.ALLOW
    f.report(att(), FAIL, 450.0)  # fifth failure within 600 s
    assert f.decide(att(), 451.0).action is Action.DENY
    assert f.decide(att("192.0.2.2"), 451.0).action is Action.ALLOW
    assert f.decide(att(), 450.0 + 3599).action is Action.DENY
    assert f.decide(att(), 450.0 + 3600).action is Action.ALLOW


def test_fail2ban_forgets_failures_older_than_findtime_and_ignores_rejects() -> None:
    f = Fail2Ban()
    for k in range(4):
        f.report(att(), FAIL, 200.0 * k)  # 0, 200, 400, 600
    f.report(att(), FAIL, 700.0)  # 0 has left the window: 4 in window
    assert f.decide(att(), 701.0).action is Action.ALLOW
    for _ in range(10):
        f.report(att(), Outcome(False, policy_reject=True), 702.0)
    assert f.decide(att(), 703.0).action is Action.ALLOW
    f.report(att(), OK, 704.0)
    assert f.decide(att(), 705.0).action is Action.ALLOW


def test_wforce_example_policy_thresholds() -> None:
    w = WforceExample()
    ip = "198.51.100.7"
    for k in range(4):
        w.report(att(ip, "v@x", f"pw{k}"), FAIL, 10.0)
    verdict = w.decide(att(ip, "v@x"), 11.0)
    assert verdict.action is Action.DELAY and verdict.delay_s == 3.0
    assert w.decide(att(ip, "other@x"), 11.0).action is Action.ALLOW
    # the same wrong password again does not count twice (distinct pwhash)
    for k in range(47):
        w.report(att(ip, f"u{k}@x", "same"), FAIL, 20.0)
    assert w.decide(att(ip, "new@x"), 21.0).action is Action.ALLOW  # 4 + 1 distinct
    for k in range(47):
        w.report(att(ip, f"u{k}@x", f"d{k}"), FAIL, 30.0)
    assert w.decide(att(ip, "new@x"), 31.0).action is Action.DENY  # 52 distinct > 50
    # six ten-minute windows: an hour later the address is clean again
    assert w.decide(att(ip, "new@x"), 3600.0 + 600).action is Action.ALLOW


def test_closure_closes_imap_and_pop3_for_everyone_past_the_threshold() -> None:
    c = ProtocolClosure(threshold=0.05, min_attempts=50)
    for k in range(96):
        c.report(att(f"10.0.0.{k}", pw="good"), OK, 10.0)
    for k in range(5):
        c.report(att("203.0.113.9", f"x{k}@x"), FAIL, 20.0)
    assert c.decide(att(), 21.0).action is Action.ALLOW  # 5 / 101 = 4.95 %
    c.report(att("203.0.113.9", "x9@x"), FAIL, 22.0)  # 6 / 102 = 5.9 % > 5 %
    assert c.decide(att("10.9.9.9", proto=Protocol.IMAP), 23.0).action is Action.DENY
    assert c.decide(att("10.9.9.9", proto=Protocol.POP3), 23.0).action is Action.DENY
    assert c.decide(att("10.9.9.9", proto=Protocol.WEB), 23.0).action is Action.ALLOW
    assert {p.protocol for p in c.posture_changes} == {Protocol.IMAP, Protocol.POP3}
    assert all(p.posture == "closed" for p in c.posture_changes)
