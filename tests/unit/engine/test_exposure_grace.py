"""Exposed accounts' grace period: usual clients and known fetchers keep working, told what to do;
the leaked pair from anywhere else, or after the grace period, is refused."""

from __future__ import annotations

import pytest

from rempart.config import ConfigError, ExposureSettings, Settings, from_mapping
from rempart.engine.distinct import item_hash
from rempart.engine.engine import Engine
from rempart.engine.exposure import DAY, Fetchers
from rempart.engine.keys import net_keys
from rempart.model import Action, Attempt, Outcome, Protocol

T0 = 1_800_000_000.0
OWNER = "victim@example.org"
HOME = "198.51.100.7"
ATTACKER = "203.0.113.66"
LEAKED = "0leak"


class Leaks:
    """A LeakOracle over one exposed account whose current password is the leaked pair."""

    def __init__(self, restricted: set[str]) -> None:
        self.restricted = restricted
        self.seen: dict[str, float] = {}

    def leaked_pair(self, attempt: Attempt) -> bool:
        return attempt.login in self.restricted and attempt.pwhash == LEAKED

    def login_exposed(self, login: str) -> bool:
        return login in self.restricted

    def account_restricted(self, login: str) -> bool:
        return login in self.restricted

    def exposure_seen(self, login: str, now: float) -> float:
        return self.seen.setdefault(login, now)


def net(ip: str) -> str:
    """The familiarity marker of an address's network."""
    return "n" + net_keys(ip).subnet


def attempt(
    login: str = OWNER, ip: str = HOME, protocol: Protocol = Protocol.IMAP, pw: str = LEAKED
) -> Attempt:
    return Attempt(login=login, ip=ip, protocol=protocol, pwhash=pw)


def engine(config: dict | None = None, restricted: tuple[str, ...] = (OWNER,)) -> Engine:
    settings = from_mapping(config) if config else Settings.default()
    return Engine.in_memory(settings, Leaks(set(restricted)))


def play(e: Engine, a: Attempt, now: float, success: bool = True) -> Action:
    """Dovecot's sequence: allow, then report (a refusal is reported policy_reject)."""
    verdict = e.decide(a, now)
    refused = verdict.action in (Action.DENY, Action.STEP_UP)
    e.report(a, Outcome(success=success and not refused, policy_reject=refused), now)
    return verdict.action


def test_usual_client_keeps_mail_with_a_notice_and_strangers_are_refused() -> None:
    e = engine()
    e.familiarity.learn(OWNER, net(HOME), T0 - 30 * DAY)  # polled from home for months
    verdict = e.decide(attempt(), T0)
    assert verdict.action is Action.ALLOW
    assert verdict.codes == ["exposure_notice"]
    assert "data leak" in verdict.message and "http" not in verdict.message.lower()
    stranger = e.decide(attempt(ip=ATTACKER), T0 + 60)
    assert stranger.action is Action.DENY and "account_exposed" in stranger.codes


def test_grace_runs_from_first_sighting_and_ends() -> None:
    e = engine({"exposure": {"grace_days": 2}})
    e.familiarity.learn(OWNER, net(HOME), T0)
    assert play(e, attempt(), T0) is Action.ALLOW  # first seen now: the clock starts
    assert play(e, attempt(), T0 + 2 * DAY - 60) is Action.ALLOW
    after = e.decide(attempt(), T0 + 2 * DAY + 60)
    assert after.action is Action.DENY and after.codes[0] == "account_exposed"


def test_leaked_pair_success_from_a_new_network_teaches_nothing() -> None:
    e = engine()
    # Whatever let it through (an allow-list entry, a rule change), the attacker's success with
    # the leaked pair must not make its network familiar for the victim.
    e.report(attempt(ip=ATTACKER), Outcome(success=True), T0)
    assert not e.familiarity.familiar(OWNER, net(ATTACKER), T0 + 1)
    assert e.decide(attempt(ip=ATTACKER), T0 + 2).action is Action.DENY
    # An account that is not exposed learns as before.
    e.report(attempt(login="other@example.org", ip=ATTACKER), Outcome(success=True), T0)
    assert e.familiarity.familiar("other@example.org", net(ATTACKER), T0 + 1)


def test_cold_start_owner_and_attacker_are_both_strangers() -> None:
    e = engine()
    assert e.decide(attempt(), T0).action is Action.DENY
    assert e.decide(attempt(ip=ATTACKER), T0).action is Action.DENY


def test_cold_start_a_second_factor_sign_in_from_home_unlocks_the_home_client() -> None:
    """On a fresh server, the owner who passes the website's second factor from home (the
    step-up answered to an exposed account) makes home familiar: the home mail client then
    keeps working for the grace period, while the attacker, who cannot pass it, stays out."""
    e = engine()
    web = attempt(protocol=Protocol.WEB)
    assert e.decide(web, T0).action is Action.STEP_UP
    e.report(web, Outcome(success=True), T0 + 30)  # the web app reports the passed challenge
    assert e.decide(attempt(), T0 + 60).action is Action.ALLOW
    assert e.decide(attempt(ip=ATTACKER), T0 + 60).action is Action.DENY


def test_shared_address_gets_no_grace() -> None:
    """A carrier's CGNAT: familiar to the victim, but an attacker can stand behind it."""
    e = engine()
    cgnat = "100.64.0.9"
    for k in range(800):  # more established users than an office: a carrier's subscribers
        login = f"user{k}@example.org"
        e.familiarity.learn(login, net("100.64.0.9"), T0 - DAY)
        e.report(attempt(login=login, ip=cgnat, pw="0ok"), Outcome(success=True), T0 - 3600)
    e.familiarity.learn(OWNER, net("100.64.0.9"), T0 - DAY)
    assert e.decide(attempt(ip=cgnat), T0).action is Action.DENY


def test_office_behind_one_address_keeps_its_grace() -> None:
    e = engine()
    office = "198.51.100.200"
    for k in range(150):  # colleagues behind the company's NAT
        login = f"colleague{k}@example.org"
        e.familiarity.learn(login, net(office), T0 - DAY)
        e.report(attempt(login=login, ip=office, pw="0ok"), Outcome(success=True), T0 - 3600)
    e.familiarity.learn(OWNER, net(office), T0 - DAY)
    assert e.decide(attempt(ip=office), T0).action is Action.ALLOW
    for k in range(6):  # the address starts failing on many logins: no more grace
        e.report(attempt(f"x{k}@example.org", office, pw="0bad"), Outcome(success=False), T0)
    assert e.decide(attempt(ip=office), T0 + 1).action is Action.DENY


def fetcher_history(e: Engine, ip: str, accounts: int, start: float, web: bool = False) -> None:
    for k in range(accounts):
        login = f"fetched{k}@example.org"
        protocol = Protocol.WEB if web and k == 0 else Protocol.POP3
        for at in (start, start + DAY, T0 - 600):
            e.report(attempt(login, ip, protocol, "0ok"), Outcome(success=True), at)


def test_learned_fetcher_acts_for_an_account_it_fetched_for() -> None:
    e = engine()
    fetcher = "192.0.2.10"
    fetcher_history(e, fetcher, 60, T0 - 5 * DAY)
    e.familiarity.learn(OWNER, net("192.0.2.10"), T0 - 4 * DAY)  # it fetched this account before
    verdict = e.decide(attempt(ip=fetcher, protocol=Protocol.POP3), T0)
    assert verdict.action is Action.ALLOW and verdict.codes == ["exposure_notice"]
    assert e.explain(attempt(ip=fetcher, protocol=Protocol.POP3), T0)["signals"]["known_fetcher"]
    # The same address for an exposed account it never fetched for: refused.
    e2 = engine(restricted=(OWNER, "never@example.org"))
    fetcher_history(e2, fetcher, 60, T0 - 5 * DAY)
    never = attempt("never@example.org", fetcher, Protocol.POP3)
    assert e2.decide(never, T0).action is Action.DENY
    assert not e2.explain(never, T0)["signals"]["known_fetcher"]


def test_configured_fetcher_needs_no_history() -> None:
    e = engine({"exposure": {"fetchers": ["192.0.2.0/28"]}})
    assert e.decide(attempt(ip="192.0.2.3", protocol=Protocol.POP3), T0).action is Action.ALLOW
    assert e.decide(attempt(ip="192.0.2.30", protocol=Protocol.POP3), T0).action is Action.DENY


def test_attacker_cannot_become_a_fetcher_quickly() -> None:
    """Sixty accounts of its own polled for a day are not enough: it takes days."""
    e = engine()
    e.familiarity.learn(OWNER, net(ATTACKER), T0 - 30 * DAY)  # even on a familiar network
    for k in range(60):
        for at in range(0, int(DAY), 3600):
            login = f"mine{k}@example.org"
            e.report(
                attempt(login, ATTACKER, Protocol.POP3, "0ok"), Outcome(success=True), T0 - DAY + at
            )
    assert not e.fetchers.learned(ATTACKER, T0)
    signals_fetcher = e.explain(attempt(ip=ATTACKER), T0)["signals"]["known_fetcher"]
    assert signals_fetcher is False


def test_fetcher_loses_its_standing_when_it_replays_a_leak() -> None:
    e = engine()
    fetcher = "192.0.2.10"
    fetcher_history(e, fetcher, 60, T0 - 5 * DAY)
    e.familiarity.learn(OWNER, net("192.0.2.10"), T0 - 4 * DAY)
    for k in range(15):  # a replayed list: wrong passwords for other accounts
        e.report(attempt(f"x{k}@example.org", fetcher, Protocol.POP3, "0bad"), Outcome(False), T0)
    assert e.decide(attempt(ip=fetcher, protocol=Protocol.POP3), T0 + 60).action is Action.DENY
    assert e.fetchers.learned(fetcher, T0 + 60)  # still learned: the last hour is what fails
    assert not e.explain(attempt(ip=fetcher, protocol=Protocol.POP3), T0 + 60)["signals"][
        "known_fetcher"
    ]


def test_an_address_with_web_logins_is_people_not_a_fetcher() -> None:
    e = engine()
    fetcher_history(e, "100.64.0.9", 60, T0 - 5 * DAY, web=True)
    assert not e.fetchers.learned("100.64.0.9", T0)


def test_learned_fetchers_survive_a_snapshot() -> None:
    fetchers = Fetchers(ExposureSettings())
    for k in range(50):
        fetchers.observe("192.0.2.10", item_hash(f"a{k}"), True, False, T0 - 4 * DAY)
    restored = Fetchers(ExposureSettings())
    restored.restore(fetchers.snapshot())
    assert restored.learned("192.0.2.10", T0) and restored.many == 1
    restored.restore("not json")
    assert restored.many == 1


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"grace_days": -1}, "grace_days"),
        ({"grace_days": "7"}, "grace_days"),
        ({"fetchers": ["not a network"]}, "fetchers"),
        ({"fetchers": "192.0.2.0/24"}, "fetchers"),
        ({"fetcher_max_failure_share": 2}, "fetcher_max_failure_share"),
        ({"fetcher_min_accounts": 2.5}, "fetcher_min_accounts: expected int"),
        ({"colour": 1}, "unknown"),
    ],
)
def test_bad_exposure_settings_name_the_key(table: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Engine.in_memory(from_mapping({"exposure": table}))
