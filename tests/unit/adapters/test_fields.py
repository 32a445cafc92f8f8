"""JSON body validation shared by the HTTP adapters: each bad field is a 400 naming it."""

from __future__ import annotations

from typing import Any

import pytest

from rempart.adapters.fields import (
    MAX_FIELD_CHARS,
    flag,
    ip_field,
    json_object,
    login_field,
    number,
    text,
)
from rempart.engine.keys import LoginRules
from rempart.httpserver import HTTPError, Request

RULES = LoginRules()


def post(body: bytes) -> Request:
    return Request("POST", "/v1/decide", "", {}, body, "127.0.0.1")


def refused(call: Any, *args: Any, **kw: Any) -> str:
    with pytest.raises(HTTPError) as raised:
        call(*args, **kw)
    assert raised.value.status == 400
    return raised.value.reason


def test_the_body_must_be_a_json_object() -> None:
    assert json_object(post(b'{"login": "a"}')) == {"login": "a"}
    assert "empty body" in refused(json_object, post(b""))
    assert "malformed JSON" in refused(json_object, post(b'{"login": '))
    assert "JSON object" in refused(json_object, post(b'["login"]'))


def test_text() -> None:
    assert text({"reason": "abuse"}, "reason") == "abuse"
    assert text({}, "reason") == ""
    assert refused(text, {}, "reason", required=True) == "missing field 'reason'"
    assert refused(text, {"reason": 5}, "reason") == "field 'reason' must be a string"
    too_long = "x" * (MAX_FIELD_CHARS + 1)
    assert "longer than 4096" in refused(text, {"reason": too_long}, "reason")
    assert "longer than 3" in refused(text, {"pwhash": "abcd"}, "pwhash", limit=3)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), ("true", True), ("YES", True), ("1", True), ("no", False)],
)
def test_flag_takes_booleans_and_their_usual_spellings(value: Any, expected: bool) -> None:
    assert flag({"success": value}, "success") is expected


def test_flag_refuses_anything_else() -> None:
    assert flag({}, "tls") is False
    assert refused(flag, {}, "success", required=True) == "missing field 'success'"
    for value in (1, "maybe", [], {"a": 1}):
        assert refused(flag, {"success": value}, "success") == "field 'success' must be a boolean"


def test_number() -> None:
    assert number({"expire_secs": 60}, "expire_secs") == 60.0
    assert number({"expire_secs": "1.5"}, "expire_secs") == 1.5
    assert number({}, "expire_secs", default=7) == 7.0
    assert "must be a number" in refused(number, {"expire_secs": "soon"}, "expire_secs")
    assert "must be a number" in refused(number, {"expire_secs": True}, "expire_secs")
    assert "must be >= 0" in refused(number, {"expire_secs": -1}, "expire_secs")


def test_login_field_canonicalises_and_names_the_field() -> None:
    assert login_field({"login": " Alice@Example.ORG "}, "login", RULES) == "alice@example.org"
    assert login_field({}, "login", RULES, required=False) == ""
    assert refused(login_field, {}, "login", RULES) == "missing field 'login'"
    assert refused(login_field, {"login": "   "}, "login", RULES).startswith("field 'login'")
    assert refused(login_field, {"login": 42}, "login", RULES) == "field 'login' must be a string"


def test_ip_field_canonicalises_and_names_the_field() -> None:
    assert ip_field({"ip": "2001:DB8:0:0::1"}, "ip") == "2001:db8::1"
    assert ip_field({"ip": "::ffff:192.0.2.1"}, "ip") == "192.0.2.1"  # IPv4-mapped: one key
    assert ip_field({}, "ip", required=False) == ""
    assert refused(ip_field, {"ip": "300.1.1.1"}, "ip").startswith("field 'ip': ")
    assert refused(ip_field, {}, "remote") == "missing field 'remote'"
