"""Operator-facing guards against a real `rempart serve` over HTTP: the sign-in lockout behind a
trusted proxy, confirmation of huge list entries (console and API), sessions of removed
operators, public notices (unknown services, withdrawal), long passwords on /v1/password-check,
and a weak API password refused at start."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from rempart.process import ServeProcess
from tests.integration.test_ops_browser import PASSWORD, Server
from tests.integration.test_ops_http import Client

CONFIG = '[ops]\ntrusted_proxies = ["127.0.0.0/8"]\n'


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with tempfile.TemporaryDirectory() as tmp:
        srv = Server(Path(tmp), CONFIG)
        try:
            yield srv
        finally:
            srv.stop()


def post_json(server: Server, path: str, body: dict[str, object]) -> tuple[int, str]:
    token = base64.b64encode(f"x:{PASSWORD}".encode()).decode()
    req = urllib.request.Request(
        server.base + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def failed_sign_in(server: Server, forwarded_for: str) -> int:
    c = Client(server.base)
    c.request("GET", "/ops/login")
    status, _, _ = c.request(
        "POST",
        "/ops/login",
        {"csrf": c.cookies["rempart_login"], "operator": "admin", "password": "wrong-password"},
        {"X-Forwarded-For": forwarded_for},
    )
    return status


def test_lockout_counts_the_client_behind_a_trusted_proxy(server: Server) -> None:
    statuses = [failed_sign_in(server, "203.0.113.66") for _ in range(11)]
    assert statuses[:10] == [401] * 10 and statuses[10] == 429
    # Another operator behind the same proxy is not locked out by the attacker.
    assert failed_sign_in(server, "198.51.100.7") == 401
    c = Client(server.base)
    c.request("GET", "/ops/login")
    status, _, _ = c.request(
        "POST",
        "/ops/login",
        {"csrf": c.cookies["rempart_login"], "operator": "admin", "password": PASSWORD},
        {"X-Forwarded-For": "198.51.100.8"},
    )
    assert status == 303


@pytest.mark.parametrize("value", ["0.0.0.0/0", "::/0", "10.0.0.0/8"])
def test_huge_entries_need_confirmation_in_the_console(server: Server, value: str) -> None:
    c = Client(server.base)
    assert c.login() == 303
    form = {"list": "allow", "kind": "netmask", "value": value, "reason": "test"}
    status, _, page = c.request("POST", "/ops/lists/add", {**form, "csrf": c.csrf()})
    assert status == 400 and "confirm" in page
    assert value not in json.dumps(server.api("getWL", {}))
    status, _, _ = c.request("POST", "/ops/lists/add", {**form, "csrf": c.csrf(), "confirm": "yes"})
    assert status == 303
    assert value in json.dumps(server.api("getWL", {}))
    server.api("delWLEntry", {"netmask": value})


def test_huge_entries_need_confirmation_on_the_api(server: Server) -> None:
    status, body = post_json(
        server, "/?command=addBLEntry", {"netmask": "0.0.0.0/0", "expire_secs": 60}
    )
    assert status == 400 and "confirm" in body
    assert "0.0.0.0/0" not in json.dumps(server.api("getBL", {}))
    status, _ = post_json(
        server, "/?command=addBLEntry", {"netmask": "0.0.0.0/0", "expire_secs": 60, "confirm": True}
    )
    assert status == 200
    server.api("delBLEntry", {"netmask": "0.0.0.0/0"})


@pytest.mark.parametrize("n", [73, 100, 1000, 10_000])
def test_password_check_answers_for_long_passwords(server: Server, n: int) -> None:
    password = ("violet-Anchor-9182-" * (n // 19 + 1))[:n]
    status, body = post_json(
        server, "/v1/password-check", {"login": "u@example.org", "password": password}
    )
    assert status in (200, 404), body  # 404: no leak corpus on this node (breach extra absent)
    if status == 200:
        assert json.loads(body)["strength"]["scored_chars"] == 72


def test_unknown_notice_service_is_refused_and_a_notice_can_be_withdrawn(server: Server) -> None:
    c = Client(server.base)
    assert c.login() == 303
    notice = {"service": "imapp", "level": "down", "text": "Mail is down."}
    status, _, page = c.request("POST", "/ops/notices", {**notice, "csrf": c.csrf()})
    assert status == 400
    assert "field &#x27;service&#x27;" in page or "field 'service'" in page
    assert "imap, pop3" in page
    notice["service"] = "imap"
    status, _, _ = c.request("POST", "/ops/notices", {**notice, "csrf": c.csrf()})
    assert status == 303
    public = json.loads(urllib.request.urlopen(server.base + "/status.json").read())
    posted = [h for h in public["history"] if h["text"] == "Mail is down."]
    assert posted and public["services"]["imap"]["level"] == "down"
    _, _, page = c.request("GET", "/ops/")
    notice_id = page.split('name="id" value="', 1)[1].split('"', 1)[0]
    status, _, _ = c.request(
        "POST",
        "/ops/notices/withdraw",
        {"id": notice_id, "reason": "posted by mistake", "csrf": c.csrf()},
    )
    assert status == 303
    public = json.loads(urllib.request.urlopen(server.base + "/status.json").read())
    assert not [h for h in public["history"] if h["text"] == "Mail is down."]
    assert public["services"]["imap"]["level"] == "up"
    records = subprocess.run(
        [
            sys.executable,
            "-m",
            "rempart",
            "journal",
            "--data-dir",
            str(server.data_dir),
            "--kind",
            "notice_withdrawn",
        ],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    ).stdout
    assert "posted by mistake" in records


def test_a_removed_operators_session_stops_at_once(tmp_path: Path) -> None:
    srv = Server(tmp_path / "d")
    try:
        env = {**os.environ, "REMPART_OPERATOR_PASSWORD": "a long operator passphrase"}
        rempart = [sys.executable, "-m", "rempart", "operator"]
        for name in ("alice", "bob"):
            subprocess.run(
                [*rempart, "add", name, "--data-dir", str(srv.data_dir)], env=env, check=True
            )
        sessions = {}
        for name in ("alice", "bob"):
            c = Client(srv.base)
            c.request("GET", "/ops/login")
            status, _, _ = c.request(
                "POST",
                "/ops/login",
                {
                    "csrf": c.cookies["rempart_login"],
                    "operator": name,
                    "password": "a long operator passphrase",
                },
            )
            assert status == 303
            sessions[name] = c
        assert sessions["alice"].request("GET", "/ops/")[0] == 200
        subprocess.run(
            [*rempart, "remove", "alice", "--data-dir", str(srv.data_dir)], env=env, check=True
        )
        status, _, _ = sessions["alice"].request("GET", "/ops/api/snapshot")
        assert status == 401
        env["REMPART_OPERATOR_PASSWORD"] = "bob's brand new passphrase"
        subprocess.run(
            [*rempart, "add", "bob", "--data-dir", str(srv.data_dir)], env=env, check=True
        )
        assert sessions["bob"].request("GET", "/ops/api/snapshot")[0] == 401
    finally:
        srv.stop()


@pytest.mark.parametrize("password", ["abc", "short-password"])
def test_weak_api_password_is_refused_at_start(tmp_path: Path, password: str) -> None:
    server = ServeProcess(tmp_path / "d", "", password, start_timeout=20)
    with pytest.raises(RuntimeError) as failed:
        server.start()
    assert "API password" in str(failed.value) and "at least 16" in str(failed.value)
    assert "Traceback" not in str(failed.value)
