"""Rule compilation and the shipped default policy's behaviour on the engine."""

from __future__ import annotations

import pytest

from rempart.config import ConfigError, Settings, from_mapping
from rempart.engine.engine import Engine
from rempart.engine.lists import ListEntry
from rempart.engine.policy import compile_rule
from rempart.model import Action, Attempt, Outcome, Protocol

T0 = 1_800_000_000.0


def attempt(login: str, ip: str, protocol: Protocol = Protocol.IMAP, device: str = "") -> Attempt:
    return Attempt(login=login, ip=ip, protocol=protocol, pwhash="0abc", device_id=device)


def play(engine: Engine, a: Attempt, success: bool, now: float) -> Action:
    """Dovecot's sequence: allow, then report (a refused attempt is reported policy_reject)."""
    verdict = engine.decide(a, now)
    denied = verdict.action in (Action.DENY, Action.STEP_UP)
    engine.report(a, Outcome(success=success and not denied, policy_reject=denied), now)
    return verdict.action


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"name": "x", "when": "failures(ip, '10m') >", "action": "deny"}, "cannot parse"),
        ({"name": "x", "when": "nonsense > 1", "action": "deny"}, "unknown signal 'nonsense'"),
        ({"name": "x", "when": "failures(ipx, '10m') > 1", "action": "deny"}, "first argument"),
        ({"name": "x", "when": "failures(ip, '3d') > 1", "action": "deny"}, "window '3d'"),
        ({"name": "x", "when": "__import__('os')", "action": "deny"}, "unknown function"),
        ({"name": "x", "when": "(lambda: 1)()", "action": "deny"}, "only plain calls"),
        ({"name": "x", "when": "legacy.real", "action": "deny"}, "not allowed"),
        ({"name": "x", "when": "legacy", "action": "explode"}, "'action' must be"),
        ({"name": "x", "when": "legacy", "action": "delay"}, "needs 'delay'"),
        ({"name": "X y", "when": "legacy", "action": "deny"}, "snake_case"),
        (
            {"name": "x", "when": "legacy", "action": "allow", "block": {"scope": "ip"}},
            "only a deny",
        ),
        ({"name": "x", "when": "legacy", "action": "deny", "colour": 1}, "unknown key"),
    ],
)
def test_bad_rules_fail_at_load_with_the_rule_name(table: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        compile_rule(table, Settings.default().engine)


def test_operator_rule_overrides_default_by_name() -> None:
    settings = from_mapping(
        {
            "policy": {
                "rules": [
                    {
                        "name": "ip_login_failures",
                        "when": "failures(ip_login, '15m') >= 1",
                        "action": "delay",
                        "delay": 7,
                    }
                ]
            }
        }
    )
    engine = Engine(settings)
    a = attempt("alice@example.org", "192.0.2.1")
    play(engine, a, False, T0)
    verdict = engine.decide(a, T0 + 1)
    assert verdict.action is Action.DELAY and verdict.delay_s == 7
    assert [r.name for r in engine.rules].count("ip_login_failures") == 1


def test_one_account_from_one_ip_is_delayed_then_refused() -> None:
    engine = Engine.in_memory()
    play(engine, attempt("alice@example.org", "198.51.100.20"), True, T0 - 60)  # her home
    a = attempt("alice@example.org", "192.0.2.1")
    actions = [play(engine, a, False, T0 + i) for i in range(12)]
    assert actions[:3] == [Action.ALLOW] * 3
    assert actions[3] is Action.DELAY
    assert actions[-1] in (Action.DENY, Action.STEP_UP)
    # The account's own network is unaffected; a fresh unfamiliar one must prove itself.
    home = engine.decide(attempt("alice@example.org", "198.51.100.20"), T0 + 20)
    assert home.action is Action.ALLOW
    elsewhere = engine.decide(attempt("alice@example.org", "192.0.2.2"), T0 + 20)
    assert elsewhere.action is Action.STEP_UP and elsewhere.codes == ["login_targeted"]


def test_source_spraying_many_logins_is_banned_but_users_elsewhere_are_not() -> None:
    engine = Engine.in_memory()
    actions = [
        play(engine, attempt(f"user{i}@example.org", "198.51.100.7"), False, T0 + i)
        for i in range(40)
    ]
    first_deny = actions.index(Action.DENY)
    # The distinct-login count is a linear-counting sketch (256 bits per bucket): two of a
    # dozen logins can share a bit, so the ban may come a couple of attempts later.
    assert 5 <= first_deny <= 16
    assert all(x is Action.DENY for x in actions[first_deny:])
    verdict = engine.decide(attempt("newcomer@example.org", "198.51.100.7"), T0 + 100)
    assert verdict.action is Action.DENY and verdict.codes == ["spray_pattern"]
    assert (
        engine.decide(attempt("user1@example.org", "203.0.113.9"), T0 + 100).action is Action.ALLOW
    )
    # The automatic ban expires after its TTL (1 h) and the window (1 h) forgets the failures.
    later = T0 + 2 * 3600 + 600
    assert (
        engine.decide(attempt("newcomer@example.org", "198.51.100.7"), later).action is Action.ALLOW
    )


def test_shared_cgnat_ip_is_not_banned_wholesale() -> None:
    engine = Engine.in_memory()
    cgnat = "100.64.1.1"
    # Thirty established users log in from the carrier's address (familiar network for them).
    for i in range(30):
        engine.familiarity.learn(f"legit{i}@example.org", "n4:100.64.1", T0 - 86400)
        play(engine, attempt(f"legit{i}@example.org", cgnat), True, T0 + i)
    # An attacker behind the same address sprays many logins.
    for i in range(60):
        play(engine, attempt(f"victim{i}@example.org", cgnat), False, T0 + 100 + i)
    assert engine.decide(attempt("victim99@example.org", cgnat), T0 + 200).action is Action.DENY
    # Legit users on the shared address still get in: decided per login, no IP ban.
    for i in range(30):
        v = engine.decide(attempt(f"legit{i}@example.org", cgnat), T0 + 300)
        assert v.action is Action.ALLOW, (i, v)
    assert len(engine.blocklist) == 0


def test_targeted_account_steps_up_only_unfamiliar_attempts() -> None:
    engine = Engine.in_memory()
    victim = "ceo@example.org"
    play(engine, attempt(victim, "192.0.2.10", Protocol.WEB, device="laptop"), True, T0)
    for i in range(20):
        play(engine, attempt(victim, f"203.0.113.{i + 1}", Protocol.WEB), False, T0 + 10 + i)
    stranger = engine.decide(attempt(victim, "198.51.100.99", Protocol.WEB), T0 + 60)
    assert stranger.action is Action.STEP_UP and "login_targeted" in stranger.codes
    home = engine.decide(attempt(victim, "192.0.2.10", Protocol.WEB), T0 + 60)
    assert home.action is Action.ALLOW
    roaming_laptop = engine.decide(
        attempt(victim, "198.51.100.99", Protocol.WEB, "laptop"), T0 + 60
    )
    assert roaming_laptop.action is Action.ALLOW


def test_allow_beats_block_and_entries_expire() -> None:
    engine = Engine.in_memory()
    engine.add_entry("block", ListEntry("netmask", "192.0.2.0/24", T0 + 60, "abuse", T0))
    engine.add_entry("allow", ListEntry("ip_login", "192.0.2.5|doctor@example.org", 0, "ehr", T0))
    assert engine.decide(attempt("x@example.org", "192.0.2.9"), T0).action is Action.DENY
    assert engine.decide(attempt("doctor@example.org", "192.0.2.5"), T0).action is Action.ALLOW
    assert engine.decide(attempt("x@example.org", "192.0.2.9"), T0 + 61).action is Action.ALLOW


def test_familiarity_decays() -> None:
    engine = Engine.in_memory(from_mapping({"familiarity": {"ttl_days": 1}}))
    play(engine, attempt("a@example.org", "192.0.2.1"), True, T0)
    fam = engine.familiarity
    assert fam.familiar("a@example.org", "n4:192.0.2", T0 + 3600)
    assert not fam.familiar("a@example.org", "n4:192.0.2", T0 + 2 * 86400)
    assert fam.known_account("a@example.org")


def test_reset_clears_counters() -> None:
    engine = Engine.in_memory()
    a = attempt("alice@example.org", "192.0.2.1")
    for i in range(5):
        play(engine, a, False, T0 + i)
    assert engine.decide(a, T0 + 10).action is Action.DELAY
    engine.reset(login="alice@example.org", ip="192.0.2.1", now=T0 + 11)
    assert engine.decide(a, T0 + 12).action is Action.ALLOW


def test_spray_rule_fires_at_exactly_twelve_accounts_when_two_share_a_sketch_bit() -> None:
    """Two of the twelve logins set the same bit of the address's distinct-count bitmap (the
    bitmap alone reads 11): the rule still fires at the twelfth account, not the thirteenth."""
    from rempart.engine.distinct import item_hash

    bits: dict[int, str] = {}
    logins: list[str] = []
    for i in range(1000):
        login = f"user{i}@example.org"
        bit = item_hash(login) & 0xFF
        if bit in bits:
            if len(logins) == 0:
                logins += [bits[bit], login]  # the one pair that shares a bit
            continue
        bits[bit] = login
    logins += [login for login in bits.values() if login not in logins][:10]
    assert len(logins) == 12 and len({item_hash(x) & 0xFF for x in logins}) == 11

    engine = Engine.in_memory()
    ip = "203.0.113.66"
    for n, login in enumerate(logins):
        assert play(engine, attempt(login, ip), False, T0 + n) is Action.ALLOW
    verdict = engine.decide(attempt("next@example.org", ip), T0 + 20)
    assert verdict.action is Action.DENY and "spray_pattern" in verdict.codes


def test_each_set_of_matching_rules_keeps_its_verdict_and_every_decision_places_its_blocks() -> (
    None
):
    """Verdicts are combined once per set of matching rules and reused: a second set still
    gets its own reasons in order of strength, and a blocking rule blocks every source it
    judges, not only the first."""
    rules = [
        {"name": "slow_pop3", "when": "protocol == 'pop3'", "action": "delay", "delay": 3},
        {
            "name": "no_smtp",
            "when": "protocol == 'smtp'",
            "action": "deny",
            "message": "smtp closed",
            "block": {"scope": "ip", "ttl": "10m"},
        },
        {"name": "mail", "when": "legacy", "action": "delay", "delay": 1, "message": "legacy"},
    ]
    engine = Engine(from_mapping({"policy": {"include_defaults": False, "rules": rules}}))
    pop3 = engine.decide(attempt("a@example.org", "192.0.2.1", Protocol.POP3), T0)
    assert (pop3.action, pop3.delay_s, pop3.codes) == (Action.DELAY, 3, ["slow_pop3", "mail"])
    for i in range(3):
        smtp = engine.decide(attempt("a@example.org", f"192.0.2.{10 + i}", Protocol.SMTP), T0)
        assert (smtp.action, smtp.delay_s, smtp.codes) == (Action.DENY, 0.0, ["no_smtp", "mail"])
        assert smtp.message == "smtp closed; legacy"
    blocked = sorted(e.value for e in engine.blocklist.entries(T0))
    assert blocked == ["192.0.2.10", "192.0.2.11", "192.0.2.12"]
    # Blocked now: the list answers for those sources, whatever their protocol.
    again = engine.decide(attempt("b@example.org", "192.0.2.11", Protocol.IMAP), T0 + 1)
    assert again.action is Action.DENY and again.codes == ["no_smtp"]
    pop3_again = engine.decide(attempt("c@example.org", "192.0.2.2", Protocol.POP3), T0 + 2)
    assert pop3_again.codes == ["slow_pop3", "mail"] and pop3_again.delay_s == 3
