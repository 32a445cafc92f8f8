"""Sessions, CSRF, throttling and operator accounts (argon2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rempart.httpserver import HTTPError, Request
from rempart.ops.operators import OperatorError, Operators
from rempart.ops.sessions import COOKIE, Sessions


def request(cookie: str = "", headers: dict[str, str] | None = None) -> Request:
    h = {"cookie": cookie, "host": "127.0.0.1:1"} | (headers or {})
    return Request("POST", "/ops/x", "", h, b"", "127.0.0.1")


def test_session_lifecycle_and_idle_expiry() -> None:
    sessions = Sessions(idle_seconds=60)
    token, session = sessions.open("alice", now=1000)
    assert sessions.current(request(f"{COOKIE}={token}"), now=1050) is session
    assert sessions.current(request(f"{COOKIE}={token}"), now=1100) is session  # refreshed at 1050
    assert sessions.current(request(f"{COOKIE}={token}"), now=1200) is None
    assert sessions.current(request(f"{COOKIE}=forged"), now=1000) is None


def test_csrf_and_origin() -> None:
    sessions = Sessions(60)
    _, session = sessions.open("alice")
    Sessions.check_csrf(request(), session, {"csrf": session.csrf})
    with pytest.raises(HTTPError) as bad:
        Sessions.check_csrf(request(), session, {"csrf": session.csrf[:-1] + "x"})
    assert bad.value.status == 403
    with pytest.raises(HTTPError):
        Sessions.check_csrf(
            request(headers={"origin": "https://evil.example"}), session, {"csrf": session.csrf}
        )
    Sessions.check_csrf(request(headers={"x-csrf-token": session.csrf}), session, {})


def test_cookie_flags() -> None:
    assert "Secure" not in Sessions(60).cookie(request(), COOKIE, "v")
    assert "Secure" in Sessions(60).cookie(
        request(headers={"x-forwarded-proto": "https"}), COOKIE, "v"
    )
    assert "Secure" in Sessions(60, "true").cookie(request(), COOKIE, "v")
    flags = Sessions(60, "false").cookie(
        request(headers={"x-forwarded-proto": "https"}), COOKIE, "v"
    )
    assert "Secure" not in flags and "HttpOnly" in flags and "SameSite=Strict" in flags


def test_throttle() -> None:
    sessions = Sessions(60)
    for _ in range(10):
        assert not sessions.throttled("192.0.2.1", now=0)
        sessions.failed("192.0.2.1", now=0)
    assert sessions.throttled("192.0.2.1", now=10)
    assert not sessions.throttled("192.0.2.2", now=10)
    assert not sessions.throttled("192.0.2.1", now=1000)


def test_operators(tmp_path: Path) -> None:
    ops = Operators(tmp_path, api_password="api-secret")
    assert ops.verify("admin", "api-secret") == "admin"
    assert ops.verify("admin", "wrong") is None
    assert ops.verify("bob", "api-secret") is None
    ops.add("alice", "correct horse battery")
    assert (tmp_path / "operators.json").stat().st_mode & 0o777 == 0o600
    assert "argon2id" in (tmp_path / "operators.json").read_text()
    assert ops.verify("alice", "correct horse battery") == "alice"
    assert ops.verify("alice", "wrong password!!") is None
    assert ops.verify("admin", "api-secret") is None  # accounts exist: no API-password sign-in
    with pytest.raises(OperatorError):
        ops.add("Bad Name", "correct horse battery")
    with pytest.raises(OperatorError):
        ops.add("carol", "short")
    assert ops.remove("alice") and not ops.remove("alice")


def _console_check(ops: Operators):  # type: ignore[no-untyped-def]
    """The console's rule: the operator still exists with the password they signed in with."""

    def still_valid(name: str, fingerprint: str) -> bool:
        return ops.fingerprints().get(name) == fingerprint

    return still_valid


def test_session_ends_when_its_operator_is_removed(tmp_path: Path) -> None:
    ops = Operators(tmp_path)
    ops.add("alice", "correct horse battery")
    ops.add("bob", "another long password")
    sessions = Sessions(600, still_valid=_console_check(ops))
    token, _ = sessions.open("alice", fingerprint=ops.fingerprints()["alice"])
    other, _ = sessions.open("bob", fingerprint=ops.fingerprints()["bob"])
    assert sessions.current(request(f"{COOKIE}={token}")) is not None
    Operators(tmp_path).remove("alice")  # as `rempart operator remove` does, from elsewhere
    assert sessions.current(request(f"{COOKIE}={token}")) is None
    assert sessions.current(request(f"{COOKIE}={other}")) is not None


def test_session_ends_when_its_operators_password_changes(tmp_path: Path) -> None:
    ops = Operators(tmp_path)
    ops.add("alice", "correct horse battery")
    sessions = Sessions(600, still_valid=_console_check(ops))
    token, _ = sessions.open("alice", fingerprint=ops.fingerprints()["alice"])
    Operators(tmp_path).add("alice", "a brand new passphrase")
    assert sessions.current(request(f"{COOKIE}={token}")) is None
    fresh, _ = sessions.open("alice", fingerprint=ops.fingerprints()["alice"])
    assert sessions.current(request(f"{COOKIE}={fresh}")) is not None
