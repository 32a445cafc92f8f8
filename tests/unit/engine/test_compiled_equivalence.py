"""The compiled core decides and counts exactly as the pure-Python reference.

Two worker processes (`core_stream.py`) run the same random attempt streams, one on the compiled
modules (`pip install .` / `pip install -e .` with a C compiler) and one on their Python sources
(`REMPART_PURE_PYTHON=1`); every verdict, reason, refusal message and counter must match. Where
no compiled core is installed the test is skipped, and fails with REMPART_REQUIRE_COMPILED=1 (CI).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.conftest import need

ROOT = Path(__file__).resolve().parents[3]

LOGINS = ["alice@example.org", " Bob+tag@Example.ORG", "carol", "dave@example.org", "eve@x.org"]
IPS = [
    "192.0.2.10",
    "192.0.2.11",
    "198.51.100.7",
    "203.0.113.9",
    "2001:db8::1",
    "2001:db8::2",
    "2001:db8:0:1::5",
    "2001:db8:1::9",
    "::ffff:192.0.2.10",
    "[2001:db8::1]",
]
DEVICES = ["", "dev-1", "Thunderbird 115"]
PROTOCOLS = ["imap", "pop3", "smtp", "web", "app", "submission", "", "IMAP", "gopher"]
STEPS_S = [0.0, 0.001, 0.5, 1.0, 10.0, 61.0, 300.0, 901.0, 3601.0, 86_400.0]


class Worker:
    """One `core_stream` process."""

    def __init__(self, pure: bool) -> None:
        env = {k: v for k, v in os.environ.items() if k != "REMPART_PURE_PYTHON"}
        if pure:
            env["REMPART_PURE_PYTHON"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.unit.engine.core_stream"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.core = str(self._read()["core"])

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"worker exited with {self.proc.wait()}"
        result: dict[str, Any] = orjson.loads(line)
        return result

    def run(self, steps: list[list[Any]]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(orjson.dumps(steps) + b"\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def workers() -> Iterator[tuple[Worker, Worker]]:
    pure, compiled = Worker(pure=True), Worker(pure=False)
    try:
        yield pure, compiled
    finally:
        pure.close()
        compiled.close()


@pytest.fixture(scope="module")
def cores(workers: tuple[Worker, Worker]) -> tuple[Worker, Worker]:
    pure, compiled = workers
    assert pure.core == "python", pure.core
    need(
        "compiled",
        compiled.core == "mypyc",
        f"the engine runs {compiled.core!r}, not the compiled core: `pip install -e .` (or "
        "`pip install .`) with a C compiler and the Python headers builds it",
    )
    return pure, compiled


def _text(body: bytes) -> str:
    return body.decode("latin-1")


@st.composite
def valid_body(draw: st.DrawFn, report: bool) -> str:
    body: dict[str, Any] = {
        "login": draw(st.sampled_from(LOGINS)),
        "remote": draw(st.sampled_from(IPS)),
        "pwhash": draw(st.sampled_from(["", "0ed6", "a1b2"])),
        "protocol": draw(st.sampled_from(PROTOCOLS)),
        "device_id": draw(st.sampled_from(DEVICES)),
        "tls": draw(st.booleans()),
    }
    if draw(st.booleans()):
        body["user_agent"] = draw(st.sampled_from(["", "Mozilla/5.0", "curl/8"]))
    if draw(st.integers(0, 9)) == 0:
        body["attrs"] = {"ja3": draw(st.sampled_from(["", "771,4865", 7]))}
    if report:
        body["success"] = draw(st.booleans())
        body["unknown_login"] = draw(st.integers(0, 4)) == 0
        body["policy_reject"] = draw(st.integers(0, 6)) == 0
    return _text(orjson.dumps(body))


WRONG_VALUES = [None, 1, 2.5, True, [], {}, "", "x" * 1100, "nope", "999.1.2.3", "maybe", "1"]


@st.composite
def malformed_body(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return _text(draw(st.binary(max_size=48)))
    if kind == 1:
        return draw(st.sampled_from(["[1, 2]", "null", '"alice"', "{", "", "{}", "  "]))
    body: dict[str, Any] = {
        "login": draw(st.sampled_from(LOGINS)),
        "remote": draw(st.sampled_from(IPS)),
        "protocol": "imap",
        "success": False,
    }
    field = draw(
        st.sampled_from(["login", "remote", "pwhash", "protocol", "device_id", "tls", "success"])
    )
    if kind == 2:
        body[field] = draw(st.sampled_from(WRONG_VALUES))
    elif kind == 3:
        body.pop(field, None)
    else:  # a login that is not UTF-8 (wforce judges it, with U+FFFD, instead of refusing)
        encoded = orjson.dumps({**body, "login": "\u00e9l\u00e8ve@example.org"})
        return _text(encoded.replace("\u00e9".encode(), b"\xe9", 1))
    return _text(orjson.dumps(body))


@st.composite
def streams(draw: st.DrawFn) -> list[list[Any]]:
    now = 1_764_000_000.0 + draw(st.floats(0, 86_400, allow_nan=False))
    steps: list[list[Any]] = []
    for _ in range(draw(st.integers(1, 40))):
        now += draw(st.sampled_from(STEPS_S))
        op = draw(st.sampled_from(["allow", "report", "burst", "bad", "peer", "reset", "tick"]))
        if op == "allow":
            steps.append(["allow", now, draw(valid_body(report=False))])
        elif op == "report":
            steps.append(["report", now, draw(valid_body(report=True))])
        elif op == "burst":  # the same failing attempt several times: rules start to match
            body = draw(valid_body(report=True))
            failed = body.replace('"success":true', '"success":false')
            for i in range(draw(st.integers(2, 25))):
                steps.append(["report", now + i * 0.01, failed])
                steps.append(["allow", now + i * 0.01 + 0.005, failed])
            now += 0.5
        elif op == "bad":
            steps.append([draw(st.sampled_from(["allow", "report"])), now, draw(malformed_body())])
        elif op == "peer":
            steps.append(
                [
                    "peer",
                    now,
                    draw(st.sampled_from(LOGINS)).strip().lower(),
                    draw(st.sampled_from(IPS[:8])),
                    draw(st.sampled_from(["imap", "web", "smtp", "app"])),
                    draw(st.booleans()),
                    draw(st.booleans()),
                ]
            )
        elif op == "reset":
            login = draw(st.sampled_from(["", *LOGINS])).strip().lower()
            ip = draw(st.sampled_from(["", *IPS[:8]]))
            steps.append(["reset", now, login, ip])
        else:
            steps.append(["tick", now])
    return steps


@settings(
    max_examples=int(os.environ.get("REMPART_EQUIVALENCE_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(stream=streams())
def test_same_verdicts_reasons_and_counters(
    cores: tuple[Worker, Worker], stream: list[list[Any]]
) -> None:
    pure, compiled = cores
    expected = pure.run(stream)
    verdicts = {r[0] for r in expected["results"] if isinstance(r, list) and type(r[0]) is int}
    event(f"actions {sorted(verdicts)}")  # --hypothesis-show-statistics: what streams reach
    event(
        f"refused bodies: {any(isinstance(r, list) and r[0] == 'error' for r in expected['results'])}"
    )
    assert compiled.run(stream) == expected


def test_an_attack_stream_is_judged_alike(cores: tuple[Worker, Worker]) -> None:
    """A fixed stream that reaches delays, denials and automatic blocks on both cores (so the
    random streams above are compared on more than allows)."""
    pure, compiled = cores
    now = 1_764_000_000.0
    stream: list[list[Any]] = []
    for i in range(60):
        login = LOGINS[i % len(LOGINS)]
        body = _text(orjson.dumps({"login": login, "remote": "198.51.100.7", "success": False}))
        stream += [["allow", now + i, body], ["report", now + i + 0.5, body]]
    stream += [["reset", now + 70, "carol", ""], ["tick", now + 71]]
    expected = pure.run(stream)
    actions = {result[0] for result in expected["results"] if isinstance(result, list)}
    assert actions >= {0, 3}, actions  # allowed at first, denied later
    assert expected["blocklist"], "the attack made no automatic block"
    assert compiled.run(stream) == expected


# The engine's value objects as other parts serialize them (journal, replication, API answers).
DUMPS = """
import orjson
from rempart.engine.keys import net_keys
from rempart.engine.lists import ListEntry
from rempart.model import Action, Outcome, Reason, Verdict
from rempart.state.wire import ChangeWire, ReportWire

values = [
    Verdict(Action.DELAY, 1.5, (Reason("ip_failures", "slow down"),)),
    ListEntry("ip", "192.0.2.1", 1.5, "r", 0.5),
    ReportWire(1.5, "a", "192.0.2.1", "imap", "", "", "", True, False, False, "", False),
    [ChangeWire("node", {"kind": "reset"})],
    Outcome(True, False, True),
    net_keys("2001:db8::1").subnet,
]
for value in values:
    print(orjson.dumps(value).decode(), flush=True)
"""


def _dumps(pure: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "REMPART_PURE_PYTHON"}
    if pure:
        env["REMPART_PURE_PYTHON"] = "1"
    return subprocess.run(
        [sys.executable, "-c", DUMPS], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_orjson_serializes_the_compiled_value_objects_alike(cores: tuple[Worker, Worker]) -> None:
    """orjson reads dataclasses itself; it crashed (SIGSEGV) on mypyc native classes with float
    fields, so those stay plain classes (`mypyc_attr(native_class=False)`)."""
    pure, compiled = _dumps(pure=True), _dumps(pure=False)
    assert pure.returncode == 0, pure.stderr
    assert (compiled.returncode, compiled.stdout) == (0, pure.stdout), compiled.stderr
