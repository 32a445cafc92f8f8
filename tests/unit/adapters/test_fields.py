"""JSON body validation shared by the HTTP adapters: each bad field is a 400 naming it."""

from __future__ import annotations

import time
from typing import Any

import pytest

from rempart.adapters.fields import (
    MAX_FIELD_CHARS,
    choice,
    duration,
    exclusive,
    flag,
    ip_field,
    json_object,
    login_field,
    network_field,
    number,
    text,
    timestamp,
    whole,
)
from rempart.bounds import MAX_DURATION_S, MAX_TIMESTAMP
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
    assert "'soon' is not a number" in refused(number, {"expire_secs": "soon"}, "expire_secs")
    assert "must be a number" in refused(number, {"expire_secs": True}, "expire_secs")
    assert "between 0 and" in refused(number, {"expire_secs": -1}, "expire_secs")


@pytest.mark.parametrize("value", [1e300, "1e300", "nan", "inf", "-inf", 10**400, 1e16])
def test_number_is_finite_and_bounded(value: object) -> None:
    reason = refused(number, {"n": value}, "n")
    assert reason.startswith("field 'n': ")
    assert "finite" in reason or "between" in reason


def test_duration_is_capped_at_ten_years_and_names_the_field() -> None:
    assert duration({"ttl": 3600}, "ttl") == 3600.0
    assert duration({"ttl": "2h"}, "ttl") == 7200.0
    assert duration({"ttl": "2w"}, "ttl") == 14 * 86400.0
    assert duration({"ttl": "90"}, "ttl") == 90.0
    assert duration({}, "ttl", default=5.0) == 5.0
    assert duration({"ttl": MAX_DURATION_S}, "ttl") == MAX_DURATION_S
    for bad in (1e17, 1e300, 1e308, 10**30, "1e17", "nan", "inf", -1, "-5m", True, [1], "soon"):
        assert refused(duration, {"ttl": bad}, "ttl").startswith("field 'ttl': "), bad
    assert "at most" in refused(duration, {"ttl": MAX_DURATION_S + 1}, "ttl")


def test_timestamp_is_within_1970_to_9999() -> None:
    now = 1_800_000_000.0
    assert timestamp({"since": "1700000000"}, "since", now) == 1_700_000_000.0
    assert timestamp({"since": "2h"}, "since", now) == now - 7200
    assert timestamp({"since": "2026-11-23T14:00"}, "since", now) == 1795442400.0
    assert timestamp({}, "since", now) == 0.0
    for bad in ("99999999999999999", "1e300", "nan", "inf", "-1", "0001-01-01T00:00", "soon"):
        assert refused(timestamp, {"since": bad}, "since", now).startswith("field 'since': ")
    assert timestamp({"since": str(int(MAX_TIMESTAMP))}, "since", now) == MAX_TIMESTAMP


def test_whole_and_choice() -> None:
    assert whole({"limit": "20"}, "limit", 500, 1, 2000) == 20
    assert whole({}, "limit", 500, 1, 2000) == 500
    for bad in ("0", "2001", "1.5", "9" * 40, "x", True):
        assert refused(whole, {"limit": bad}, "limit", 500, 1, 2000).startswith("field 'limit'")
    assert choice({"kind": "ip"}, "kind", ("ip", "login")) == "ip"
    assert choice({}, "kind", ("ip", "login"), default="") == ""
    assert "missing field 'kind'" in refused(choice, {}, "kind", ("ip", "login"))
    assert "not one of: ip, login" in refused(choice, {"kind": "IP"}, "kind", ("ip", "login"))
    assert "not one of" in refused(choice, {"kind": ["ip"]}, "kind", ("ip", "login"))


def test_network_prefix_length_must_fit_its_family() -> None:
    assert str(network_field({"n": "1.2.3.4/24"}, "n")) == "1.2.3.0/24"
    assert str(network_field({"n": "2001:db8::1/48"}, "n")) == "2001:db8::/48"
    assert str(network_field({"n": "::ffff:1.2.3.4/120"}, "n")) == "1.2.3.0/24"
    assert str(network_field({"n": "1.2.3.4"}, "n")) == "1.2.3.4/32"
    assert network_field({}, "n") is None
    for bad in ("1.2.3.0/99", "1.2.3.0/33", "2001:db8::/129", "1.2.3.0/-1", "1.2.3.0/x", "a/8"):
        assert refused(network_field, {"n": bad}, "n").startswith("field 'n': "), bad


def test_exclusive_fields_name_both() -> None:
    exclusive({"ip": "1.2.3.4"}, "ip", "netmask")
    exclusive({"ip": "1.2.3.4", "netmask": ""}, "ip", "netmask")
    reason = refused(exclusive, {"ip": "1.2.3.4", "netmask": "10.0.0.0/8"}, "ip", "netmask")
    assert reason == "fields 'ip' and 'netmask' are exclusive: send one"


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


def test_operator_times_share_the_bounds() -> None:
    """`rempart journal|report --since` and the console read times through `ops.timeparse`."""
    from rempart.ops import timeparse

    assert timeparse.parse("6h ago", "--since") == pytest.approx(time.time() - 6 * 3600, abs=5)
    assert timeparse.parse("6H AGO", "--since") == pytest.approx(time.time() - 6 * 3600, abs=5)
    assert timeparse.parse("1700000000", "--since") == 1_700_000_000.0
    for bad in ("99999999999999999", "1e300", "99999999999d", "soon", "x ago"):
        with pytest.raises(ValueError, match="--since"):
            timeparse.parse(bad, "--since")
