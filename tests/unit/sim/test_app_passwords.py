"""Exposed users with app passwords after the grace period: scenario knobs, traffic, engine, score."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from rempart.model import LEGACY_MAIL
from rempart.sim import detection, experiment, policies, scenario, world
from rempart.sim.cli import sim
from rempart.sim.policies.rempart import RempartEngine
from rempart.sim.world import pwhash
from tests.unit.sim.conftest import tiny

STUFFING = {"kind": "stuffing", "start_h": 1, "duration_h": 1, "rate_per_min": 30}
POLLERS = {"imap_share": 1.0, "aggregator_share": 0.1}


def after_grace(
    share: float = 0.5, seen_days_before: float = 8.0, **leak: object
) -> scenario.Scenario:
    return tiny(
        population=POLLERS,
        leak={
            "size_per_user": 1.0,
            "known_to_defender": True,
            "seen_days_before": seen_days_before,
            "app_password_share": share,
            **leak,
        },
        attack=[STUFFING],
    )


def test_shipped_scenario_is_after_the_grace_with_app_passwords() -> None:
    assert "known-leak-app-passwords" in scenario.shipped()
    sc = scenario.load("known-leak-app-passwords")
    assert sc.leak.known_to_defender
    assert sc.leak.seen_days_before == 8.0  # the engine's default grace is 7 days
    assert sc.leak.app_password_share == 0.6
    assert [a.kind for a in sc.attacks] == ["stuffing"]


def test_defaults_keep_the_other_scenarios_unchanged() -> None:
    leak = scenario.load("known-leak").leak
    assert leak.seen_days_before == 0.0 and leak.app_password_share == 0.0


@pytest.mark.parametrize(
    ("leak", "field"),
    [
        ({"seen_days_before": -1}, "seen_days_before"),
        ({"app_password_share": 1.5}, "app_password_share"),
        ({"app_password_share": -0.1}, "app_password_share"),
    ],
)
def test_bad_knobs_name_the_field(leak: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=rf"\[leak\] {field}"):
        scenario.parse({"leak": leak})


def test_a_share_of_exposed_users_use_app_passwords_in_mail_clients(
    inputs: experiment.Inputs,
) -> None:
    w = world.build(after_grace(0.5), 3, inputs.pw, inputs.agents)
    exposed = {p.login for p in w.leak.valid_at(w.pop, 0.0)}
    assert len(exposed) >= 10
    assert w.exposed_app_password | w.exposed_no_app_password == exposed
    assert not w.exposed_app_password & w.exposed_no_app_password
    assert len(w.exposed_app_password) == round(0.5 * len(exposed))
    leaked = {(p.login, p.password) for p in w.leak.pairs}
    flagged: set[str] = set()
    for event in w.stream():
        if event.app_password:
            assert event.legit and event.correct and event.protocol in LEGACY_MAIL
            assert event.source in ("mail_client", "aggregator")
            assert (event.login, event.password) not in leaked
            user = w.pop.index[event.login]
            assert event.password not in (w.pop.passwords[user], w.pop.password_at(user, 0.0))
            flagged.add(event.login)
        elif event.legit and event.protocol in LEGACY_MAIL:
            assert event.login not in w.exposed_app_password
    assert flagged == w.exposed_app_password  # every poller polls within four hours


def test_no_app_passwords_without_the_knob(inputs: experiment.Inputs) -> None:
    w = world.build(after_grace(0.0), 3, inputs.pw, inputs.agents)
    assert not w.pop.app_passwords and w.cohorts() == {}
    assert not any(e.app_password for e in w.stream())


def test_the_engine_saw_the_exposure_days_before_the_day(inputs: experiment.Inputs) -> None:
    w = world.build(after_grace(0.5, 8.0), 3, inputs.pw, inputs.agents)
    defender = policies.make("rempart", w)
    assert isinstance(defender, RempartEngine) and defender._leaks is not None
    login = next(iter(w.exposed_no_app_password))
    assert defender._leaks.exposure_seen(login, 3600.0) == -8 * 86400.0
    fresh = policies.make(
        "rempart", world.build(after_grace(0.5, 0.0), 3, inputs.pw, inputs.agents)
    )
    assert isinstance(fresh, RempartEngine) and fresh._leaks is not None
    assert fresh._leaks.exposure_seen(login, 3600.0) == 3600.0  # the first ask starts it


def test_app_passwords_keep_the_mail_after_the_grace(inputs: experiment.Inputs) -> None:
    result = experiment.run_one(after_grace(0.5), "rempart", 3, inputs)
    none = experiment.run_one(after_grace(0.5), "none", 3, inputs)
    assert none["takeovers"] >= 10 and result["takeovers"] == 0
    with_app = result["cohorts"]["exposed_with_app_password"]
    without = result["cohorts"]["exposed_without_app_password"]
    assert with_app["attempts"] > 100 and with_app["denied"] == 0 and with_app["users_denied"] == 0
    # After the grace the leaked password no longer opens IMAP or POP3, from anywhere.
    assert without["attempts"] > 100 and without["denied"] == without["attempts"]
    assert without["users_denied"] == without["users"] > 0
    text = detection.cohort_lines(result["cohorts"])
    assert f"{without['denied']:,} of their {without['attempts']:,} attempts refused" in text


def test_within_the_grace_usual_clients_keep_the_leaked_password(
    inputs: experiment.Inputs,
) -> None:
    result = experiment.run_one(after_grace(0.5, 0.0), "rempart", 3, inputs)
    without = result["cohorts"]["exposed_without_app_password"]
    # Home and office clients pass; only those on a carrier's shared addresses are refused.
    assert without["attempts"] > 100 and without["denied"] < without["attempts"] / 2


def test_the_attacker_never_presents_an_app_password(inputs: experiment.Inputs) -> None:
    w = world.build(after_grace(1.0), 3, inputs.pw, inputs.agents)
    app_hashes = {pwhash(p) for p in w.pop.app_passwords.values()}
    attacks = [e for e in w.stream() if not e.legit]
    assert attacks and not any(e.app_password for e in attacks)
    assert not any(pwhash(e.password) in app_hashes for e in attacks)


def test_cli_run_in_process_and_http_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["run", "known-leak-app-passwords", "--users", "200", "--out", str(out)]
    result = CliRunner().invoke(sim, args)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "known-leak-app-passwords-rempart-seed1.json").read_text())
    assert set(data[0]["cohorts"]) == {"exposed_with_app_password", "exposed_without_app_password"}
    http = CliRunner().invoke(sim, [*args, "--runner", "http"])
    assert http.exit_code != 0 and "app_password_share needs the in-process runner" in http.output
