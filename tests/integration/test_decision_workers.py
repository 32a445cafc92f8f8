"""`rempart serve` with `[server] decision_workers = 2` over a real Redis: the workers answer
the decision port and learn from each other's reports, the primary's changes reach them, the
app-password uses they see reach the primary, a killed worker is replaced, and stopping the
primary stops them all."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.rig import PASSWORD, SPRAY_RULE, RempartProcess
from tests.integration.test_ops_http import Client
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis

SPRAYER = "203.0.113.77"
_DECISIONS = re.compile(r"decision workers \((\d+)\) listening on http://[^\s/]+:(\d+)/")


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[RempartProcess, int]]:
    redis_server = RedisServer(tmp_path / "redis").start()
    config = (
        "[server]\n"
        "decision_workers = 2\n"
        "decision_port = 0\n"
        "[state]\n"
        'backend = "redis"\n'
        f'redis_url = "{redis_server.url}"\n'
        "sync_interval = 0.05\n"
    )
    primary = RempartProcess(tmp_path / "data", config)
    try:
        primary.start()
        said = _DECISIONS.search("".join(primary.output))
        assert said, "".join(primary.output)
        assert said.group(1) == "2"
        yield primary, int(said.group(2))
    finally:
        primary.stop()
        redis_server.stop()


def ask(port: int, command: str, body: dict[str, Any]) -> dict[str, Any]:
    """One request on a fresh connection (each may land on either worker)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    token = base64.b64encode(f"wforce:{PASSWORD}".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
    conn.request("POST", f"/?command={command}", json.dumps(body), headers)
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    assert response.status == 200, payload
    result = json.loads(payload)
    assert isinstance(result, dict)
    return result


def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s")


def attempt(login: str, ip: str = SPRAYER, **extra: Any) -> dict[str, Any]:
    return {"login": login, "remote": ip, "pwhash": "0abc", "protocol": "imap", **extra}


def workers_of(primary: RempartProcess) -> list[dict[str, Any]]:
    status, stats = primary.command("stats")
    assert status == 200, stats
    workers = stats["decision_workers"]
    assert isinstance(workers, list)
    return workers


def test_workers_answer_together_and_share_what_they_learn(node) -> None:
    primary, port = node
    # Both workers take connections on the one port.
    answered = {ask(port, "stats", {})["worker"] for _ in range(60)}
    assert answered == {0, 1}

    # A spray from one address, each report on a fresh connection: spread over both workers,
    # it is denied by each worker, and by the primary, on the combined count.
    for i in range(40):
        ask(port, "report", attempt(f"user{i}@example.org", success=False, policy_reject=False))

    def failures_in_metrics() -> bool:
        status, text = primary.request("GET", "/metrics", password=None)
        assert status == 200
        found = re.findall(
            r'^rempart_worker_reports_total\{outcome="failure",worker="(\d)"\} (\S+)$', text, re.M
        )
        return len(found) == 2 and sum(float(n) for _, n in found) == 40

    eventually(failures_in_metrics)  # each worker's own share, on the primary's /metrics

    # The primary's dashboard shows the workers' share: totals, and (once it asks for them)
    # their top sources.
    console = Client(primary.base)
    assert console.login(PASSWORD) == 303

    def dashboard_sees_the_spray() -> bool:
        status, _, body = console.request("GET", "/ops/api/snapshot")
        assert status == 200, body
        snapshot = json.loads(body)
        top = snapshot["tops"]["ips"]
        failures = snapshot["totals"].get("imap", {}).get("failure", 0)
        return failures == 40 and bool(top) and top[0]["key"] == SPRAYER and top[0]["count"] >= 40

    eventually(dashboard_sees_the_spray)

    def denied_everywhere() -> bool:
        verdicts = [ask(port, "allow", attempt("new@example.org"))["status"] for _ in range(10)]
        status, body = primary.command("allow", attempt("new@example.org"))
        return status == 200 and body["status"] == -1 and verdicts == [-1] * 10

    eventually(denied_everywhere)

    # A block the primary's operator adds reaches every worker.
    status, _ = primary.command("addBLEntry", {"ip": "198.51.100.5", "expire_secs": 600})
    assert status == 200
    eventually(
        lambda: all(
            ask(port, "allow", attempt("a@example.org", "198.51.100.5"))["status"] == -1
            for _ in range(10)
        )
    )
    # ... and its removal too.
    status, _ = primary.command("delBLEntry", {"ip": "198.51.100.5"})
    assert status == 200
    eventually(
        lambda: all(
            ask(port, "allow", attempt("a@example.org", "198.51.100.5"))["status"] == 0
            for _ in range(10)
        )
    )

    # Each worker journals what it was told; the host's journal reads them as one.
    primary.stop()
    reports = journal(primary, "--ip", SPRAYER, "--kind", "report")
    assert len(reports) == 40
    assert {r.get("chain") for r in reports} == {"workers/0", "workers/1"}
    verified = rempart_cli(primary, "journal", "verify")
    assert verified.returncode == 0, verified.stderr


def rempart_cli(primary: RempartProcess, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "rempart", *args[:1], "--data-dir", str(primary.data_dir)]
    return subprocess.run(
        [*command, *args[1:]], capture_output=True, text=True, timeout=60, check=False
    )


def journal(primary: RempartProcess, *filters: str) -> list[dict[str, Any]]:
    done = rempart_cli(primary, "journal", *filters)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_app_passwords_made_on_the_primary_are_used_on_the_workers(node) -> None:
    primary, port = node
    login = "doctor@example.org"
    primary.command("report", attempt(login, "192.0.2.10", success=True, policy_reject=False))
    status, made = eventually(
        lambda: (
            result
            if (
                result := primary.request("POST", f"/v1/app-passwords/{login}", {"label": "Phone"})
            )[0]
            == 201
            else None
        )
    )
    assert status == 201, made
    use = attempt(
        login,
        "192.0.2.99",
        success=True,
        policy_reject=False,
        attrs={"credential": "app", "app_password": made["id"]},
    )

    def seen_by_primary() -> bool:
        # Until a worker reloads the table, it does not know the id and records nothing.
        ask(port, "report", use)
        status, doc = primary.request("GET", f"/v1/app-passwords/{login}")
        assert status == 200, doc
        return doc["app_passwords"][0]["last_network"] == "192.0.2.99"

    eventually(seen_by_primary)


def test_a_killed_worker_is_replaced_and_stop_ends_them_all(node) -> None:
    primary, port = node
    before = workers_of(primary)
    victim = before[0]["pid"]
    os.kill(victim, signal.SIGKILL)

    def replaced() -> list[dict[str, Any]] | None:
        workers = workers_of(primary)
        first = workers[0]
        if first["running"] and first["pid"] != victim and first["restarts"] == 1:
            return workers
        return None

    after = eventually(replaced)
    assert after[0]["last_exit"] == -signal.SIGKILL
    assert after[1]["pid"] == before[1]["pid"] and after[1]["restarts"] == 0
    eventually(lambda: {ask(port, "stats", {})["worker"] for _ in range(40)} == {0, 1})

    pids = [w["pid"] for w in after]
    primary.stop()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_decision_port_in_use_is_named_before_anything_starts(tmp_path: Path) -> None:
    redis_server = RedisServer(tmp_path / "redis").start()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    config = tmp_path / "c.toml"
    config.write_text(
        "[server]\ndecision_workers = 2\n"
        f"decision_port = {taken.getsockname()[1]}\n"
        f'[state]\nbackend = "redis"\nredis_url = "{redis_server.url}"\n'
    )
    command = [sys.executable, "-m", "rempart", "serve", "--port", "0", "--config", str(config)]
    try:
        done = subprocess.run(
            [*command, "--data-dir", str(tmp_path / "data")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "REMPART_API_PASSWORD": PASSWORD},
        )
    finally:
        taken.close()
        redis_server.stop()
    assert done.returncode == 1
    assert "the port is already in use" in done.stderr
    assert "choose another with [server] decision_port" in done.stderr
    assert "Traceback" not in done.stderr and "decision worker 0 started" not in done.stderr


@pytest.mark.dovecot
def test_dovecot_through_the_decision_workers(tmp_path: Path) -> None:
    """A real Dovecot's auth_policy pointed at the decision port: a spray over IMAP is refused
    once past the rule, the legitimate user keeps signing in, and the workers' reports and
    block are the primary's too."""
    from tests.integration.rig import DovecotRig

    redis_server = RedisServer(tmp_path / "redis").start()
    config = (
        "[server]\ndecision_workers = 2\ndecision_port = 0\n"
        f'[state]\nbackend = "redis"\nredis_url = "{redis_server.url}"\nsync_interval = 0.05\n'
        + SPRAY_RULE
    )
    primary = RempartProcess(tmp_path / "data", config)
    dovecot: DovecotRig | None = None
    try:
        primary.start()
        said = _DECISIONS.search("".join(primary.output))
        assert said, "".join(primary.output)
        users = {"alice@example.org": "correct-horse", "bob@example.org": "tr0ub4dor"}
        dovecot = DovecotRig(tmp_path / "dovecot", int(said.group(2)), users).start()
        home, attacker = "127.0.0.2", "127.0.0.66"
        assert dovecot.imap_login("alice@example.org", "correct-horse", home) == "OK"
        answers = [dovecot.imap_login(f"user{i}@example.org", "123456", attacker) for i in range(4)]
        assert all("Authentication failed" in a or "Too many" in a for a in answers), answers
        # Whichever worker Dovecot asks, it knows the others' reports (they travel in ~0.1 s;
        # each of Dovecot's failures takes seconds).
        refused = dovecot.imap_login("bob@example.org", "tr0ub4dor", attacker)
        assert "Too many" in refused, refused
        assert dovecot.imap_login("alice@example.org", "correct-horse", home) == "OK"
        assert dovecot.pop3_login("bob@example.org", "tr0ub4dor", "127.0.0.3") == "OK"

        eventually(  # the block a worker placed, on the primary
            lambda: (
                [e["ip"] for e in primary.command("getBL")[1]["bl_entries"] if "ip" in e]
                == [attacker + "/32"]
            )
        )
        workers = workers_of(primary)
        assert sum(w["reports"].get("failure", 0) for w in workers) >= 3
    finally:
        if dovecot is not None:
            dovecot.stop()
        primary.stop()
        redis_server.stop()
