"""App passwords in process: the API (create once, list, revoke, opt-in), bad input refused with
no change, the files (modes, no secret), the decision (strict posture, exposed account,
mail-apps-only) through the wforce API as Dovecot calls it, last use, and a restart."""

from __future__ import annotations

import asyncio
import base64
import grp
import json
import os
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import argon2
import pytest

from rempart.adapters.postfix.settings import PostfixSettings
from rempart.apppass import secret as secret_mod
from rempart.config import from_mapping
from rempart.engine.oracle import LeakOracle, NoLeaks
from rempart.httpserver import HttpApp, HTTPError, Request, Response
from rempart.model import Protocol
from rempart.server import Service

PASSWORD = "app-password-tests"
AUTH = {"authorization": "Basic " + base64.b64encode(b"x:" + PASSWORD.encode()).decode()}
FAST = {"argon2_memory_kib": 1024, "argon2_time_cost": 1, "max_per_account": 3}
ALICE = "alice@example.org"
HOME, ELSEWHERE = "192.0.2.10", "198.51.100.7"


class Node:
    """A Service with its router, driven on one event loop as the server does."""

    def __init__(self, data: Path, leaks: LeakOracle | None = None, **tables: Any) -> None:
        settings = from_mapping({"app_passwords": FAST, **tables})
        self.service = Service(settings, data, PASSWORD, leaks=leaks)
        self.app = HttpApp(self.service.router())
        self.loop = asyncio.new_event_loop()

    def call(
        self, method: str, path: str, body: Any = None, auth: bool = True, query: str = ""
    ) -> tuple[int, Any]:
        raw = json.dumps(body).encode() if body is not None else b""
        request = Request(method, path, query, AUTH if auth else {}, raw, "127.0.0.1")

        async def run() -> Response:
            try:
                result = self.app.dispatch(request)
                return await result if not isinstance(result, Response) else result
            except HTTPError as exc:
                return self.app.error_response(exc)

        response = self.loop.run_until_complete(run())
        return response.status, json.loads(response.body) if response.body else None

    def dovecot(self, command: str, remote: str, protocol: str = "imap", **fields: Any) -> Any:
        body = {
            "login": ALICE,
            "protocol": protocol,
            "pwhash": "0ed6",
            "remote": remote,
            "tls": False,
            "device_id": "",
            **fields,
        }
        status, answer = self.call("POST", "/", body, query=f"command={command}")
        assert status == 200, answer
        return answer

    def login_ok(self, remote: str) -> None:
        """A main-password login Dovecot reports as a success (makes the account known)."""
        self.dovecot("report", remote, success=True, policy_reject=False)

    def close(self) -> None:
        self.service.close()
        self.loop.close()


class ExposedLongAgo(NoLeaks):
    """Every account's current password leaked a year ago: its grace period is over."""

    def login_exposed(self, login: str) -> bool:
        return True

    def account_restricted(self, login: str) -> bool:
        return True

    def exposure_seen(self, login: str, now: float) -> float:
        return now - 365 * 86400


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path / "data")
    n.login_ok(HOME)
    yield n
    n.close()


def create(node: Node, **body: Any) -> dict[str, Any]:
    status, doc = node.call("POST", f"/v1/app-passwords/{ALICE}", {"label": "Phone", **body})
    assert status == 201, doc
    return doc


def listed(node: Node) -> list[dict[str, Any]]:
    status, doc = node.call("GET", f"/v1/app-passwords/{ALICE}")
    assert status == 200
    return doc["app_passwords"]


def test_secret_shape_and_entropy() -> None:
    seen = {secret_mod.generate() for _ in range(200)}
    assert len(seen) == 200
    for s in seen:
        assert re.fullmatch(r"([a-z2-9]{4}-){4}[a-z2-9]{4}", s), s
        assert not set(s) & set("01ilo")
    assert secret_mod.BITS >= 99 and secret_mod.SECRET_BITS >= 80


def test_create_shows_the_secret_once_and_stores_only_a_slow_hash(node: Node) -> None:
    doc = create(node, scopes=["imap", "pop3"], expires_in="30d")
    secret = doc["secret"]
    assert doc["label"] == "Phone" and doc["scopes"] == ["imap", "pop3"]
    assert doc["expires"] == pytest.approx(time.time() + 30 * 86400, abs=5)
    (item,) = listed(node)
    assert "secret" not in item and item["id"] == doc["id"] and item["last_used"] is None
    data = node.service.data_dir
    for path in (data / "app-passwords.db", data / "dovecot-app-passwords.db"):
        assert secret.encode() not in path.read_bytes()
    assert stat.S_IMODE(os.stat(data / "app-passwords.db").st_mode) == 0o600
    # No dovecot_db_group named: the service's user only (0640 with a group: test_dovecot_db_group_may_read_the_table).
    assert stat.S_IMODE(os.stat(data / "dovecot-app-passwords.db").st_mode) == 0o600
    import sqlite3

    with sqlite3.connect(data / "dovecot-app-passwords.db") as db:
        ((stored, scopes),) = db.execute("SELECT password, scopes FROM dovecot_app_passwords")
    assert stored.startswith("{ARGON2ID}$argon2id$v=19$m=1024,t=1,p=1$")
    assert argon2.PasswordHasher().verify(stored.removeprefix("{ARGON2ID}"), secret)
    assert scopes == ",imap,pop3,"
    # The journal (disabled here) and the stats never carry it either.
    assert secret not in json.dumps(node.service.stats())


def test_strict_imap_lets_app_passwords_through_and_refuses_the_main_one(node: Node) -> None:
    node.service.engine.set_posture(Protocol.IMAP, "strict", "test", "campaign")
    doc = create(node, scopes=["imap"])
    before = {"attrs": {"credential": "", "app_password": ""}}
    # Before Dovecot checks the password, the account holds an IMAP app password: let it check.
    assert node.dovecot("allow", ELSEWHERE, **before)["status"] == 0
    # After: the main password from a new network is refused with the message ...
    main = node.dovecot("allow", ELSEWHERE, attrs={"credential": "main", "app_password": ""})
    assert main["status"] == -1 and "app password" in main["msg"]
    # ... the app password is let through.
    app = {"attrs": {"credential": "app", "app_password": doc["id"]}}
    assert node.dovecot("allow", ELSEWHERE, **app)["status"] == 0
    # POP3 is not in its scopes, so it is not an app-password login there; a Dovecot that does
    # not say which credential matched gets the main-password answer.
    pop3 = node.dovecot("allow", ELSEWHERE, "pop3", attrs={"credential": "", "app_password": ""})
    assert pop3["status"] == 0  # POP3 is not strict
    assert node.dovecot("allow", ELSEWHERE)["status"] == -1
    # Its use is recorded (network, time), written to disk and kept across a restart.
    node.dovecot("report", ELSEWHERE, success=True, policy_reject=False, **app)
    node.service.app_passwords.flush_uses().result(5)  # type: ignore[union-attr]
    (item,) = listed(node)
    assert item["last_network"] == ELSEWHERE and item["last_used"] == pytest.approx(
        time.time(), abs=5
    )


def test_revoked_and_expired_app_passwords_stop_counting_at_once(node: Node) -> None:
    node.service.engine.set_posture(Protocol.IMAP, "strict", "test", "campaign")
    keep, gone = create(node, label="Laptop"), create(node, label="Old phone", expires_in=1)
    app = {"attrs": {"credential": "app", "app_password": gone["id"]}}
    time.sleep(1.2)
    assert node.dovecot("allow", ELSEWHERE, **app)["status"] == -1  # expired
    status, doc = node.call("DELETE", f"/v1/app-passwords/{ALICE}/{keep['id']}")
    assert status == 200 and doc["revoked"] == [keep["id"]]
    app = {"attrs": {"credential": "app", "app_password": keep["id"]}}
    assert node.dovecot("allow", ELSEWHERE, **app)["status"] == -1
    import sqlite3

    with sqlite3.connect(node.service.data_dir / "dovecot-app-passwords.db") as db:
        ids = [r[0] for r in db.execute("SELECT id FROM dovecot_app_passwords")]
    assert ids == [gone["id"]]  # expiry is Dovecot's query's job; revocation removes the row
    assert [i["expired"] for i in listed(node)] == [True]
    status, doc = node.call("DELETE", f"/v1/app-passwords/{ALICE}")
    assert status == 200 and doc["revoked"] == [gone["id"]] and listed(node) == []


def test_mail_apps_only_refuses_the_main_password_from_new_networks(node: Node) -> None:
    status, doc = node.call("PUT", f"/v1/app-passwords/{ALICE}/mail-apps-only", {"enabled": True})
    assert status == 200 and doc["mail_apps_only"] is True
    refused = node.dovecot("allow", ELSEWHERE, "pop3")
    assert refused["status"] == -1 and "only with an app password" in refused["msg"]
    assert node.dovecot("allow", HOME, "pop3")["status"] == 0  # the app already in use at home
    doc = create(node, scopes=["pop3"])
    app = {"attrs": {"credential": "app", "app_password": doc["id"]}}
    assert node.dovecot("allow", ELSEWHERE, "pop3", **app)["status"] == 0


def test_exposed_account_keeps_its_app_passwords(tmp_path: Path) -> None:
    node = Node(tmp_path / "data", leaks=ExposedLongAgo())
    try:
        # Known from a website sign-in: an exposed account's IMAP success from a new network
        # teaches nothing (it may be the attacker's).
        node.dovecot("report", HOME, protocol="web", success=True, policy_reject=False)
        doc = create(node)
        main = node.dovecot("allow", HOME, attrs={"credential": "main", "app_password": ""})
        assert main["status"] == -1 and "data leak" in main["msg"]
        app = {"attrs": {"credential": "app", "app_password": doc["id"]}}
        assert node.dovecot("allow", HOME, **app)["status"] == 0
    finally:
        node.close()


def test_postfix_lets_a_restricted_account_send_after_an_smtp_app_password_sign_in(
    tmp_path: Path,
) -> None:
    node = Node(tmp_path / "data", leaks=ExposedLongAgo(), postfix={"enabled": True})
    try:
        assert node.service.postfix is not None
        decider = node.service.postfix.decider

        def mail(address: str, at: float) -> str:
            request = {
                "request": "smtpd_access_policy",
                "protocol_state": "RCPT",
                "client_address": address,
                "sasl_username": ALICE,
            }
            return decider.answer(request, at).code

        node.dovecot("report", HOME, protocol="web", success=True, policy_reject=False)
        smtp = create(node, scopes=["smtp"])
        imap = create(node, scopes=["imap"])
        now = time.time()
        # Postfix cannot tell the credential: with no app-password sign-in, the account's mail
        # is refused as before.
        assert mail(HOME, now) == "account_restricted"
        # An IMAP app password's sign-in does not stand for an SMTP session.
        used = {"attrs": {"credential": "app", "app_password": imap["id"]}}
        node.dovecot("report", HOME, "imap", success=True, policy_reject=False, **used)
        assert mail(HOME, now) == "account_restricted"
        # Dovecot reports an SMTP AUTH with the SMTP app password from HOME: mail from HOME
        # passes for the window, from elsewhere it does not, and it stops once the window ends.
        used = {"attrs": {"credential": "app", "app_password": smtp["id"]}}
        node.dovecot("report", HOME, "smtp", success=True, policy_reject=False, **used)
        assert mail(HOME, now + 1) == ""
        assert mail(ELSEWHERE, now + 1) == "account_restricted"
        window = node.service.settings.section(PostfixSettings).app_password_window
        assert mail(HOME, now + window + 5) == "account_restricted"
        # Still so once the use is written (the store's record, not only the pending one).
        node.service.app_passwords.flush_uses().result(5)  # type: ignore[union-attr]
        assert mail(HOME, now + 1) == ""
        # A revoked app password stops counting at once.
        status, _ = node.call("DELETE", f"/v1/app-passwords/{ALICE}/{smtp['id']}")
        assert status in (200, 204)
        assert mail(HOME, now + 1) == "account_restricted"
    finally:
        node.close()


def test_app_passwords_and_opt_in_survive_a_restart(tmp_path: Path) -> None:
    node = Node(tmp_path / "data")
    node.login_ok(HOME)
    doc = create(node, scopes=["smtp"])
    node.call("PUT", f"/v1/app-passwords/{ALICE}/mail-apps-only", {"enabled": True})
    node.close()
    node = Node(tmp_path / "data")
    try:
        (item,) = listed(node)
        assert item["id"] == doc["id"] and item["scopes"] == ["smtp"]
        assert node.call("GET", f"/v1/app-passwords/{ALICE}")[1]["mail_apps_only"] is True
        app = {"attrs": {"credential": "app", "app_password": doc["id"]}}
        assert node.dovecot("allow", ELSEWHERE, "submission", **app)["status"] == 0
        assert node.dovecot("allow", ELSEWHERE, "smtp")["status"] == -1
        status, counts = node.call("GET", "/v1/app-passwords")
        assert status == 200
        assert counts == {"accounts": 1, "active": 1, "expired": 0, "mail_apps_only": 1}
    finally:
        node.close()


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "needle"),
    [
        ("POST", "/v1/app-passwords/nobody@example.org", {"label": "x"}, 404, "unknown login"),
        ("POST", "/v1/app-passwords/" + "a" * 2000, {"label": "x"}, 400, "login"),
        ("POST", f"/v1/app-passwords/{ALICE}", {"label": "x", "scopes": ["ftp"]}, 400, "'ftp'"),
        ("POST", f"/v1/app-passwords/{ALICE}", {"label": "x", "scopes": []}, 400, "scopes"),
        ("POST", f"/v1/app-passwords/{ALICE}", {"label": "x" * 65}, 400, "longer than 64"),
        ("POST", f"/v1/app-passwords/{ALICE}", {"label": "a\x1bb"}, 400, "control"),
        ("POST", f"/v1/app-passwords/{ALICE}", {"label": "a\u202eb"}, 400, "control"),
        ("POST", f"/v1/app-passwords/{ALICE}", {"label": "  "}, 400, "empty"),
        ("POST", f"/v1/app-passwords/{ALICE}", {}, 400, "label"),
        (
            "POST",
            f"/v1/app-passwords/{ALICE}",
            {"label": "x", "expires_in": "soon"},
            400,
            "expires_in",
        ),
        ("POST", f"/v1/app-passwords/{ALICE}", {"label": "x", "secret": "mine"}, 400, "'secret'"),
        ("POST", f"/v1/app-passwords/{ALICE}", [1], 400, "JSON object"),
        ("DELETE", f"/v1/app-passwords/{ALICE}/0123456789abcdef", None, 404, "no app password"),
        ("PUT", f"/v1/app-passwords/{ALICE}/mail-apps-only", {}, 400, "enabled"),
        ("PUT", f"/v1/app-passwords/{ALICE}/mail-apps-only", {"enabled": 3}, 400, "boolean"),
        ("GET", f"/v1/app-passwords/{ALICE}/x/y", None, 404, "use"),
    ],
)
def test_bad_input_is_refused_with_no_change(
    node: Node, method: str, path: str, body: Any, status: int, needle: str
) -> None:
    existing = create(node)
    got, doc = node.call(method, path, body)
    assert got == status and needle in doc["error"], doc
    assert [i["id"] for i in listed(node)] == [existing["id"]]
    assert node.call("GET", f"/v1/app-passwords/{ALICE}")[1]["mail_apps_only"] is False


def test_limit_per_account_someone_elses_id_and_no_credentials(node: Node) -> None:
    ids = [create(node, label=f"app {i}")["id"] for i in range(3)]
    status, doc = node.call("POST", f"/v1/app-passwords/{ALICE}", {"label": "one too many"})
    assert status == 409 and "limit is 3" in doc["error"]
    node.dovecot("report", HOME, login="bob@example.org", success=True, policy_reject=False)
    status, doc = node.call("DELETE", f"/v1/app-passwords/bob@example.org/{ids[0]}")
    assert status == 404 and "for bob@example.org" in doc["error"]
    for method, body in (("GET", None), ("POST", {"label": "x"}), ("DELETE", None)):
        status, _ = node.call(method, f"/v1/app-passwords/{ALICE}", body, auth=False)
        assert status == 401
    assert node.call("GET", "/v1/app-passwords", auth=False)[0] == 401
    assert [i["id"] for i in listed(node)] == ids


def test_dashboard_shows_the_counts(node: Node) -> None:
    from rempart.ops.dashboard import _features_panel

    create(node)
    html = _features_panel(node.service._console())
    assert "<h3>App passwords</h3>" in html and "active: <b>1</b>" in html
    assert "accounts: <b>1</b>" in html


def test_cli_refuses_bad_usage_and_names_an_unreachable_server(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from rempart.cli import main

    runner = CliRunner(env={"REMPART_API_PASSWORD": PASSWORD})
    both = runner.invoke(main, ["app-passwords", "revoke", ALICE, "abc", "--all"])
    assert both.exit_code == 2 and "not both" in both.output
    neither = runner.invoke(main, ["app-passwords", "revoke", ALICE])
    assert neither.exit_code == 2 and "name the ids" in neither.output
    url = "http://127.0.0.1:9"  # discard port: nothing listens
    down = runner.invoke(main, ["app-passwords", "list", ALICE, "--url", url])
    assert down.exit_code == 1 and "cannot reach rempart" in down.output


@pytest.mark.parametrize("truncate", [0, 12, 8])
def test_before_the_check_only_a_possible_app_password_gets_the_benefit(
    tmp_path: Path, truncate: int
) -> None:
    """With Dovecot's nonce, the pwhash tells at once that a password is no app password: the
    main-password answer comes before the check, whatever the password, so a right password
    and a wrong one get the same refusal."""
    from rempart.breach.fingerprints import dovecot_pwhash

    dovecot = {"hash_nonce": "n0nce", "hash_truncate_bits": truncate}
    node = Node(tmp_path / "data", dovecot=dovecot)
    try:
        node.login_ok(HOME)
        node.service.engine.set_posture(Protocol.IMAP, "strict", "test", "campaign")
        secret = str(create(node, scopes=["imap"])["secret"])
        before = {"attrs": {"credential": "", "app_password": ""}}

        def answer(password: str) -> dict[str, Any]:
            pwhash = dovecot_pwhash("n0nce", ALICE, password, truncate)
            return node.dovecot("allow", ELSEWHERE, pwhash=pwhash, **before)

        assert answer(secret)["status"] == 0
        refused = [answer(f"guess-{i}") for i in range(40)]
        denied = [r for r in refused if r["status"] == -1]
        # 8 bits sent: one guess in 256 agrees by chance; 12 or all: one in 4096.
        assert len(denied) >= 38 and all("app password" in r["msg"] for r in denied)
    finally:
        node.close()
    # After a restart the prefixes are still known; with another nonce they are not trusted.
    node = Node(tmp_path / "data", dovecot=dovecot)
    try:
        node.service.engine.set_posture(Protocol.IMAP, "strict", "test", "campaign")
        pwhash = dovecot_pwhash("n0nce", ALICE, "guess", truncate)
        before = {"attrs": {"credential": "", "app_password": ""}}
        assert node.dovecot("allow", ELSEWHERE, pwhash=pwhash, **before)["status"] == -1
    finally:
        node.close()
    node = Node(tmp_path / "data", dovecot={"hash_nonce": "other", "hash_truncate_bits": 0})
    try:
        node.service.engine.set_posture(Protocol.IMAP, "strict", "test", "campaign")
        before = {"attrs": {"credential": "", "app_password": ""}}
        assert node.dovecot("allow", ELSEWHERE, pwhash="00" * 32, **before)["status"] == 0
    finally:
        node.close()


def test_dovecot_db_group_may_read_the_table(tmp_path: Path) -> None:
    group = grp.getgrgid(os.getgid()).gr_name
    settings = from_mapping({"app_passwords": {**FAST, "dovecot_db_group": group}})
    service = Service(settings, tmp_path / "data", PASSWORD)
    try:
        info = os.stat(tmp_path / "data" / "dovecot-app-passwords.db")
        assert stat.S_IMODE(info.st_mode) == 0o640 and info.st_gid == os.getgid()
        assert stat.S_IMODE(os.stat(tmp_path / "data" / "app-passwords.db").st_mode) == 0o600
    finally:
        service.close()
