"""The wforce-compatible API in process: Dovecot's captured bodies, status per verdict, attempts
counted on `report` only, both URL forms, lists, and a 400 naming the field for bad input."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import json
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rempart.config import from_mapping
from rempart.httpserver import HttpApp, Request, Response
from rempart.server import Service

PASSWORD = "secret"
AUTH = {"authorization": "  Basic " + base64.b64encode(b"wforce:" + PASSWORD.encode()).decode()}
# Dovecot 2.3.19's allow and report bodies (recipes/dovecot-auth-policy.md): keys sorted, every
# attribute a string, `tls` a boolean, `success` and `policy_reject` on reports.
ALLOW = {
    "device_id": '"name" "rig-client" "version" "1.0"',
    "login": "alice@example.org",
    "protocol": "imap",
    "pwhash": "0ed6",
    "remote": "192.0.2.1",
    "tls": False,
}
VIP = {"name": "vip", "when": "protocol == 'pop3'", "action": "step_up", "message": "2FA"}


@contextlib.contextmanager
def make_app(tmp_path: Path, **tables: Any) -> Iterator[HttpApp]:
    settings = from_mapping({"journal": {"enabled": False}, **tables})
    service = Service(settings, tmp_path / "data", PASSWORD, leaks=None)
    try:
        yield HttpApp(service.router())
    finally:
        service.close()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[HttpApp]:
    with make_app(tmp_path, policy={"rules": [VIP]}) as app:
        yield app


def call(
    app: HttpApp,
    command: str,
    body: dict[str, Any] | bytes | None = None,
    method: str = "POST",
    by_path: bool = False,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode() if body else b""
    path, query = (f"/command/{command}", "") if by_path else ("/", f"command={command}")
    request = Request(method, path, query, AUTH if headers is None else headers, raw, "127.0.0.1")
    result = app.dispatch(request)
    if inspect.isawaitable(result):  # list changes answer once they are durable
        result = asyncio.run(_awaited(result))
    assert isinstance(result, Response)
    return result.status, json.loads(result.body) if result.body else None


async def _awaited(pending: Awaitable[Response]) -> Response:
    return await pending


def report(app: HttpApp, success: bool, **fields: Any) -> None:
    body = {**ALLOW, **fields, "success": success, "policy_reject": False}
    assert call(app, "report", body) == (200, {"status": "ok"})


def test_dovecots_allow_is_answered_and_never_counted(app: HttpApp) -> None:
    for _ in range(10):  # Dovecot asks twice per login: asking is not attempting
        assert call(app, "allow", ALLOW) == (200, {"status": 0, "msg": "", "r_attrs": {}})


def test_failures_reported_delay_then_refuse(app: HttpApp) -> None:
    for _ in range(3):
        report(app, False)
    status, answer = call(app, "allow", ALLOW)
    assert status == 200 and answer["status"] == 2
    assert answer["r_attrs"] == {"reasons": "ip_login_failures"} and answer["msg"]
    # `reset` forgets that pair's failures.
    body = {"login": "alice@example.org", "ip": "192.0.2.1"}
    assert call(app, "reset", body) == (200, {"status": "ok"})
    assert call(app, "allow", ALLOW)[1]["status"] == 0
    for _ in range(10):
        report(app, False)
    assert call(app, "allow", ALLOW)[1]["status"] == -1


def test_step_up_is_minus_one_by_default_and_configurable(tmp_path: Path) -> None:
    ceo = {**ALLOW, "protocol": "pop3"}
    for tables, status in (({}, -1), ({"wforce": {"step_up_status": -2}}, -2)):
        with make_app(tmp_path / str(status), policy={"rules": [VIP]}, **tables) as app:
            answer = call(app, "allow", ceo)[1]
        assert (answer["status"], answer["msg"]) == (status, "2FA")


def test_each_verdict_keeps_its_own_answer_and_listed_ones_their_attributes(
    tmp_path: Path,
) -> None:
    """Answers naming no list entry are built once per (status, message, reasons) and reused:
    two rules still get their own answers, a delay its seconds, and a blocked source the
    list's attributes, whatever was answered before."""
    no_smtp = {"name": "no_smtp", "when": "protocol == 'smtp'", "action": "deny", "message": "no"}
    with make_app(tmp_path, policy={"rules": [VIP, no_smtp]}) as app:
        pop3, smtp = {**ALLOW, "protocol": "pop3"}, {**ALLOW, "protocol": "smtp"}
        vip = (200, {"status": -1, "msg": "2FA", "r_attrs": {"reasons": "vip"}})
        assert call(app, "allow", pop3) == vip
        assert call(app, "allow", smtp) == (
            200,
            {"status": -1, "msg": "no", "r_attrs": {"reasons": "no_smtp"}},
        )
        assert call(app, "allow", pop3) == vip
        for _ in range(3):
            report(app, False)
        assert call(app, "allow", ALLOW)[1]["status"] == 2  # ip_login_failures: a delay
        entry = {"ip": "192.0.2.1", "expire_secs": 3600, "reason": "abuse"}
        assert call(app, "addBLEntry", entry) == (200, {"status": "ok"})
        listed = call(app, "allow", pop3)[1]
        assert listed["status"] == -1 and listed["r_attrs"]["blacklisted"] == "1"
        assert listed["r_attrs"]["reason"] == "abuse" and call(app, "allow", pop3)[1] == listed
        assert call(app, "allow", {**pop3, "remote": "192.0.2.2"}) == vip
        # The same source listed again for another reason: the answer names the new entry.
        assert call(app, "delBLEntry", {"ip": "192.0.2.1"}) == (200, {"status": "ok"})
        assert call(app, "addBLEntry", {**entry, "reason": "stuffing"}) == (200, {"status": "ok"})
        assert call(app, "allow", pop3)[1]["r_attrs"]["reason"] == "stuffing"


def test_both_url_forms_and_get_for_reads_only(app: HttpApp) -> None:
    assert call(app, "allow", ALLOW, by_path=True)[1]["status"] == 0
    assert call(app, "ping", method="GET") == (200, {"status": "ok"})
    assert call(app, "ping", method="GET", by_path=True) == (200, {"status": "ok"})
    assert call(app, "allow", ALLOW, method="GET")[0] == 405
    assert call(app, "explode", ALLOW)[0] == 404


def test_every_command_needs_the_password(app: HttpApp) -> None:
    assert call(app, "ping", headers={})[0] == 401
    wrong = {"authorization": "Basic " + base64.b64encode(b"wforce:nope").decode()}
    assert call(app, "allow", ALLOW, headers=wrong)[0] == 401


@pytest.mark.parametrize(
    ("command", "body", "reason"),
    [
        ("allow", b"not json", "malformed JSON"),
        ("allow", {**ALLOW, "remote": "not-an-ip"}, "field 'remote'"),
        ("allow", {**ALLOW, "login": 7}, "field 'login' must be a string"),
        ("allow", {**ALLOW, "tls": "perhaps"}, "field 'tls' must be a boolean"),
        ("report", ALLOW, "missing field 'success'"),
        ("reset", b"{}", "No ip, login or ja3 field supplied"),
        ("addBLEntry", {"ip": "999.1.1.1"}, "999.1.1.1"),
        ("addBLEntry", {"reason": "x"}, "Must provide at least one of login, ip, netmask or ja3"),
        ("addBLEntry", {"ip": "192.0.2.1", "reason": "x", "expire_secs": -5}, "expire_secs"),
        ("addBLEntry", {"login": "a@b.c", "ja3": "769,47", "expire_secs": 5}, "mutually"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    app: HttpApp, command: str, body: Any, reason: str
) -> None:
    status, answer = call(app, command, body)
    assert status == 400 and reason in answer["error"], answer


def test_block_list_round_trip(app: HttpApp) -> None:
    entry = {"ip": "198.51.100.0/24", "expire_secs": 3600, "reason": "abuse"}
    assert call(app, "addBLEntry", entry) == (200, {"status": "ok"})
    pair = {"login": "x@example.org", "ip": "192.0.2.9", "expire_secs": 60, "reason": ""}
    assert call(app, "addBLEntry", pair)[0] == 200
    net, iplogin = call(app, "getBL", method="GET")[1]["bl_entries"]
    assert (net["ip"], net["reason"]) == ("198.51.100.0/24", "abuse")
    assert set(iplogin) == {"iplogin", "expiration", "reason"}
    assert iplogin["iplogin"] == "192.0.2.9:x@example.org"
    status, answer = call(app, "allow", {**ALLOW, "remote": "198.51.100.77"})
    assert status == 200 and answer["status"] == -1
    assert call(app, "delBLEntry", {"netmask": "198.51.100.0/24"}) == (200, {"status": "ok"})
    # Deleting an absent entry is ok, as on wforce.
    assert call(app, "delBLEntry", {"netmask": "198.51.100.0/24"}) == (200, {"status": "ok"})
    assert call(app, "allow", {**ALLOW, "remote": "198.51.100.77"})[1]["status"] == 0


def test_missing_expire_secs_is_refused_with_wforces_reason(app: HttpApp) -> None:
    status, answer = call(app, "addBLEntry", {"ip": "192.0.2.7", "reason": "r"})
    assert (status, answer["status"]) == (400, "failure")
    assert answer["reason"] == "Missing mandatory expire_secs field"
    assert call(app, "getBL", method="GET")[1] == {"bl_entries": []}


def test_ja3_entries_match_only_that_fingerprint(app: HttpApp) -> None:
    body = {"ja3": "771,4865-4866,0-23", "expire_secs": 600, "reason": "bot tls"}
    assert call(app, "addBLEntry", body)[0] == 200
    plain = call(app, "allow", ALLOW)[1]
    assert plain["status"] == 0  # same IP, no fingerprint: not blocked
    tagged = {**ALLOW, "attrs": {"ja3": "771,4865-4866,0-23"}}
    assert call(app, "allow", tagged)[1]["status"] == -1
    other = {**ALLOW, "attrs": {"ja3": "771,1-2,0"}}
    assert call(app, "allow", other)[1]["status"] == 0
    (listed,) = call(app, "getBL", method="GET")[1]["bl_entries"]
    assert listed["ja3"] == "771,4865-4866,0-23"


def test_non_utf8_body_is_judged(app: HttpApp) -> None:
    raw = json.dumps({**ALLOW, "login": "caf\u00e9@example.org"}).encode()
    raw = raw.replace(b"caf\\u00e9", b"caf\xe9")
    assert b"\xe9" in raw
    status, answer = call(app, "allow", raw)
    assert status == 200 and answer["status"] == 0
