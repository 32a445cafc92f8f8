"""Every shipped policy rule replays its examples (default_policy_examples.toml): attempts that
must trigger it and attempts that must not, on a fresh engine with the shipped policy and a real
leak corpus ingested and audited from the file's `[leaks]` table."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rempart.engine
from rempart.breach.audit import load_userdb
from rempart.breach.corpus import LeakCorpus
from rempart.breach.ingest import ingest
from rempart.breach.settings import BreachSettings
from rempart.engine.engine import Engine, default_rule_tables
from rempart.model import Action, Attempt, Outcome, Protocol

EXAMPLES_FILE = Path(rempart.engine.__file__).parent / "default_policy_examples.toml"
EXAMPLES: dict[str, Any] = tomllib.loads(EXAMPLES_FILE.read_text())
T0 = 1_800_000_000.0
COUNTER = re.compile(r"\{i(?:%(\d+))?(?:\+(\d+))?\}")
STEP_KEYS = {
    "login",
    "ip",
    "protocol",
    "device",
    "password",
    "app_password",
    "app_passwords_only",
    "outcome",
    "at",
    "repeat",
    "every",
}
OUTCOMES = {
    "success": Outcome(success=True),
    "failure": Outcome(success=False),
    "unknown_login": Outcome(success=False, unknown_login=True),
}


def example_id(example: dict[str, Any]) -> str:
    return f"{example['rule']}-{'fires' if example['trigger'] else 'quiet'}-{example['about']}"


@pytest.fixture(scope="module")
def leaks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LeakCorpus]:
    folder = tmp_path_factory.mktemp("leaks")
    table = EXAMPLES["leaks"]
    (folder / "combos.txt").write_text("\n".join(table["combos"]) + "\n")
    (folder / "users").write_text("\n".join(table["userdb"]) + "\n")
    settings = BreachSettings()
    userdb = load_userdb(folder / "users", settings.logins)
    ingest(folder / "data", [str(folder / "combos.txt")], settings, "examples", userdb)
    corpus = LeakCorpus(folder / "data", settings)
    yield corpus
    corpus.close()


def counted(text: str, i: int) -> str:
    def value(match: re.Match[str]) -> str:
        modulo, plus = match.group(1), match.group(2)
        return str((i % int(modulo) if modulo else i) + int(plus or 0))

    return COUNTER.sub(value, text)


def attempts(step: dict[str, Any], leaks: LeakCorpus) -> Iterator[tuple[Attempt, float]]:
    """The attempts of one step, with their times."""
    unknown = set(step) - STEP_KEYS
    assert not unknown, f"unknown step key {sorted(unknown)[0]!r}"
    for i in range(step.get("repeat", 1)):
        login = counted(step["login"], i)
        attempt = Attempt(
            login=login,
            ip=counted(step["ip"], i),
            protocol=Protocol(step.get("protocol", "imap")),
            device_id=step.get("device", ""),
            app_password=step.get("app_password", False),
            app_passwords_only=step.get("app_passwords_only", False),
        )
        if "password" in step:
            fingerprint = leaks.fingerprint_password(login, step["password"])
            attempt.pair_fingerprint = fingerprint.pair_fingerprint
            attempt.password_popular = fingerprint.password_popular
        yield attempt, T0 + step.get("at", 0) + i * step.get("every", 1)


def replay(example: dict[str, Any], leaks: LeakCorpus) -> tuple[list[str], Any]:
    """Play every step but the last as Dovecot does (decide, then report; a refused attempt is
    reported as a policy reject); decide the last one. Returns the rules matching that last
    attempt and its verdict."""
    engine = Engine.in_memory(leaks=leaks)
    *played, last = example["steps"]
    # Postures apply to the last step only, unless the example says from the start.
    early = example.get("posture_from_start", False)
    for protocol, level in example.get("posture", {}).items() if early else ():
        engine.set_posture(Protocol(protocol), level, "example", "example", T0 - 1)
    for step in played:
        for attempt, now in attempts(step, leaks):
            verdict = engine.decide(attempt, now)
            if verdict.action in (Action.DENY, Action.STEP_UP):
                outcome = Outcome(success=False, policy_reject=True)
            else:
                outcome = OUTCOMES[step["outcome"]]
            engine.report(attempt, outcome, now)
    assert "outcome" not in last and last.get("repeat", 1) == 1, "the last step is decided only"
    ((attempt, now),) = attempts(last, leaks)
    for protocol, level in example.get("posture", {}).items() if not early else ():
        engine.set_posture(Protocol(protocol), level, "example", "example", now)
    matched = engine.explain(attempt, now)["rules"]
    return matched, engine.decide(attempt, now)


@pytest.mark.parametrize("example", EXAMPLES["examples"], ids=example_id)
def test_policy_example(example: dict[str, Any], leaks: LeakCorpus) -> None:
    matched, verdict = replay(example, leaks)
    rule, expect = example["rule"], example["expect"]
    if example["trigger"]:
        assert rule in matched, f"{rule} should fire; matched {matched}"
    else:
        assert rule not in matched, f"{rule} should stay quiet; matched {matched}"
    assert verdict.action.name.lower() == expect["action"], (verdict, matched)
    assert list(verdict.codes) == expect.get("reasons", []), verdict


def test_every_shipped_rule_has_examples_both_ways() -> None:
    shipped = {table["name"] for table in default_rule_tables()}
    covered = {(e["rule"], e["trigger"]) for e in EXAMPLES["examples"]}
    assert {rule for rule, _ in covered} <= shipped, "an example names no shipped rule"
    missing = sorted(
        f"{rule} ({'trigger' if trigger else 'no trigger'})"
        for rule in shipped
        for trigger in (True, False)
        if (rule, trigger) not in covered
    )
    assert not missing, f"rules without examples: {missing}"
