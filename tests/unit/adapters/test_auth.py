"""HTTP Basic authentication of the APIs: any user name, the API password, Dovecot's header."""

from __future__ import annotations

import base64

import pytest

from rempart.adapters.auth import BasicAuth
from rempart.httpserver import HTTPError, Request

PASSWORD = "secret"


def request(authorization: str | None) -> Request:
    headers = {} if authorization is None else {"authorization": authorization}
    return Request("POST", "/", "command=allow", headers, b"{}", "127.0.0.1")


def basic(credentials: bytes) -> str:
    return "Basic " + base64.b64encode(credentials).decode()


def refusal(auth: BasicAuth, authorization: str | None) -> str:
    with pytest.raises(HTTPError) as raised:
        auth.check(request(authorization))
    assert raised.value.status == 401
    assert raised.value.headers["WWW-Authenticate"] == 'Basic realm="rempart"'
    return raised.value.reason


@pytest.mark.parametrize("user", [b"wforce", b"dovecot", b""])
def test_any_user_name_with_the_password(user: bytes) -> None:
    BasicAuth(PASSWORD).check(request(basic(user + b":" + PASSWORD.encode())))


def test_dovecots_header_with_two_spaces_before_basic() -> None:
    # Dovecot 2.3 writes "Authorization:  Basic d2ZvcmNlOnNlY3JldA==" (captured, see recipes/);
    # the value may reach us with its leading blanks.
    auth = BasicAuth(PASSWORD)
    for value in (
        "  Basic d2ZvcmNlOnNlY3JldA==",
        " Basic d2ZvcmNlOnNlY3JldA==",
        "basic  d2ZvcmNlOnNlY3JldA==",
    ):
        auth.check(request(value))


def test_a_password_may_contain_colons_and_non_ascii() -> None:
    password = "p:ss:wörd"
    BasicAuth(password).check(request(basic(b"user:" + password.encode())))


def test_refusals() -> None:
    auth = BasicAuth(PASSWORD)
    assert "authentication required" in refusal(auth, None)
    assert "authentication required" in refusal(auth, "Bearer abc")
    assert "authentication required" in refusal(auth, "Basic")
    assert refusal(auth, "Basic !!!not-base64!!!") == "malformed Basic credentials"
    assert refusal(auth, basic(b"wforce:wrong")) == "wrong API password"
    assert refusal(auth, basic(b"no-colon-at-all")) == "wrong API password"
    assert refusal(auth, basic(b"wforce:" + PASSWORD.encode() + b"x")) == "wrong API password"


def test_a_refused_header_stays_refused_and_an_accepted_one_stays_accepted() -> None:
    auth = BasicAuth(PASSWORD)
    wrong = basic(b"wforce:wrong")
    for _ in range(3):
        assert refusal(auth, wrong) == "wrong API password"
    right = basic(b"wforce:" + PASSWORD.encode())
    for _ in range(3):
        auth.check(request(right))
    assert refusal(BasicAuth("another"), right) == "wrong API password"
