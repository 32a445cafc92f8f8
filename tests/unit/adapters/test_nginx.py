"""The auth_request endpoint in process: status mapping per verdict, client address only from
a trusted proxy, the API password, and client-side garbage never turning into a 4xx."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from rempart.adapters.nginx import NginxSettings, basic_credentials, nginx_config
from rempart.adapters.sources import TrustedProxies
from rempart.config import ConfigError, from_mapping
from rempart.httpserver import HttpApp, Request, Response
from rempart.server import Service

PASSWORD = "api-secret"
SPRAY = {
    "name": "spray_pattern",
    "when": "failed_logins(ip, '1h') >= 3 and not shared_ip",
    "action": "deny",
    "block": {"scope": "ip", "ttl": "1h"},
    "message": "Too many different accounts tried from your address.",
}
STEP_UP = {
    "name": "vip",
    "when": "failures(login, '1h') >= 1",
    "action": "step_up",
    "message": "Confirm it is you.",
}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[HttpApp]:
    settings = from_mapping({"policy": {"rules": [SPRAY, STEP_UP]}, "journal": {"enabled": False}})
    service = Service(settings, tmp_path / "data", PASSWORD, leaks=None)
    yield HttpApp(service.router())
    service.close()


def ask(app: HttpApp, headers: dict[str, str], peer: str = "127.0.0.1") -> Response:
    hdrs = {"authorization": basic("nginx", PASSWORD), **{k.lower(): v for k, v in headers.items()}}
    result = app.dispatch(Request("GET", "/v1/nginx/auth", "", hdrs, b"", peer))
    assert isinstance(result, Response)
    return result


def report(app: HttpApp, login: str, ip: str) -> None:
    body = f'{{"login": "{login}", "ip": "{ip}", "protocol": "web", "success": false}}'.encode()
    hdrs = {"authorization": basic("x", PASSWORD)}
    result = app.dispatch(Request("POST", "/v1/report", "", hdrs, body, "127.0.0.1"))
    assert isinstance(result, Response) and result.status == 200


def test_allow_then_deny_a_spraying_source(app: HttpApp) -> None:
    ok = ask(app, {"X-Real-IP": "203.0.113.7", "X-Original-Authorization": basic("a@x.org", "pw")})
    assert ok.status == 204 and ok.headers["X-Rempart-Verdict"] == "allow"
    assert ok.headers["X-Rempart-Login"] == "a@x.org"
    for i in range(5):  # 5 for a rule at 3: the distinct count may merge two (random key)
        report(app, f"u{i}@x.org", "203.0.113.7")
    denied = ask(app, {"X-Real-IP": "203.0.113.7", "X-Rempart-Login": "b@x.org"})
    assert denied.status == 403
    assert denied.headers["X-Rempart-Reason"] == "spray_pattern"
    assert "Too many" in denied.headers["X-Rempart-Message"]
    other = ask(app, {"X-Real-IP": "203.0.113.8", "X-Rempart-Login": "b@x.org"})
    assert other.status == 204


def test_step_up_is_a_401_without_a_browser_prompt(app: HttpApp) -> None:
    report(app, "vip@x.org", "198.51.100.1")
    answer = ask(app, {"X-Real-IP": "198.51.100.2", "X-Rempart-Login": "vip@x.org"})
    assert answer.status == 401
    assert answer.headers["X-Rempart-Verdict"] == "step_up"
    assert answer.headers["WWW-Authenticate"].startswith("Rempart-Step-Up")


def test_delay_is_a_403_with_retry_after(tmp_path: Path) -> None:
    rule = {"name": "slow", "when": "failures(ip, '1h') >= 1", "action": "delay", "delay": 2.5}
    settings = from_mapping({"policy": {"rules": [rule]}, "journal": {"enabled": False}})
    service = Service(settings, tmp_path / "d", PASSWORD, leaks=None)
    try:
        app = HttpApp(service.router())
        report(app, "a@x.org", "192.0.2.1")
        answer = ask(app, {"X-Real-IP": "192.0.2.1"})
        assert answer.status == 403
        assert answer.headers["Retry-After"] == "3"
        assert answer.headers["X-Rempart-Verdict"] == "delay"
    finally:
        service.close()


def test_client_address_only_from_a_trusted_proxy(app: HttpApp) -> None:
    for i in range(5):  # 5 for a rule at 3: the distinct count may merge two (random key)
        report(app, f"u{i}@x.org", "203.0.113.9")
    # A client talking to Rempart directly cannot pose as someone else...
    spoofed = ask(app, {"X-Real-IP": "192.0.2.55"}, peer="203.0.113.9")
    assert spoofed.status == 403
    # ...while the trusted proxy's header is believed.
    assert ask(app, {"X-Real-IP": "192.0.2.55"}).status == 204
    assert ask(app, {"X-Real-IP": "203.0.113.9"}).status == 403


def test_forwarded_for_takes_the_rightmost_untrusted_hop() -> None:
    proxies = TrustedProxies(["127.0.0.1", "10.0.0.0/8"])
    headers = {"x-forwarded-for": "192.0.2.66, 203.0.113.5, 10.1.2.3"}
    assert proxies.client_address("127.0.0.1", headers, "X-Forwarded-For") == "203.0.113.5"
    assert proxies.client_address("198.51.100.1", headers, "X-Forwarded-For") == "198.51.100.1"
    assert proxies.client_address("127.0.0.1", {}, "X-Real-IP") is None


def test_api_password_required_without_a_browser_prompt(app: HttpApp) -> None:
    for auth in ("", basic("nginx", "wrong"), "Bearer x"):
        result = app.dispatch(
            Request(
                "GET",
                "/v1/nginx/auth",
                "",
                {"authorization": auth, "x-real-ip": "192.0.2.1"},
                b"",
                "127.0.0.1",
            )
        )
        assert isinstance(result, Response)
        assert result.status == 407, auth
        assert "WWW-Authenticate" not in result.headers


def test_client_garbage_is_judged_per_source_never_a_4xx(app: HttpApp) -> None:
    for headers in (
        {"X-Original-Authorization": "Basic !!!not-base64"},
        {"X-Original-Authorization": basic("x" * 5000, "pw")},
        {"X-Rempart-Login": "y" * 5000},
        {"X-Rempart-Protocol": "gopher", "User-Agent": "z" * 9000},
    ):
        answer = ask(app, {"X-Real-IP": "192.0.2.7", **headers})
        assert answer.status == 204, headers
        assert "X-Rempart-Login" not in answer.headers


def test_any_login_survives_the_round_trip_through_nginx(app: HttpApp) -> None:
    from rempart.adapters.logparse import load_parser

    raw = "Jürgen@x.org".encode().decode("latin-1")  # as the HTTP layer hands it over
    answer = ask(app, {"X-Real-IP": "192.0.2.8", "X-Rempart-Login": raw})
    assert answer.headers["X-Rempart-Login"] == "j%C3%BCrgen@x.org"
    logged = (
        f'rempart ip=192.0.2.8 login="{answer.headers["X-Rempart-Login"]}" status=401 '
        'verdict=allow outcome="-" method=GET uri="/login"'
    )
    event = load_parser("nginx").parse(logged)
    assert event is not None and event.login == "jürgen@x.org"


def test_missing_client_address_from_the_proxy_is_a_400(app: HttpApp) -> None:
    answer = ask(app, {})
    assert answer.status == 400
    assert b"X-Real-IP" in answer.body


def test_basic_credentials() -> None:
    assert basic_credentials(basic("alice", "p:w")) == ("alice", "p:w")
    assert basic_credentials("Basic bm9jb2xvbg==") is None  # "nocolon"
    assert basic_credentials("") is None


def test_settings_validation() -> None:
    assert from_mapping({}).section(NginxSettings).client_ip_header == "X-Real-IP"
    for table, message in (
        ({"step_up": "maybe"}, "step_up"),
        ({"trusted_proxies": ["not-an-ip"]}, "trusted_proxies"),
        ({"protocol": "gopher"}, "unknown protocol"),
        ({"client_ip_header": ""}, "client_ip_header"),
    ):
        with pytest.raises(ConfigError, match=message):
            from_mapping({"nginx": table})


def test_generated_config_names_what_nginx_needs() -> None:
    text = nginx_config(
        rempart="127.0.0.1:8084", api_password="s3cret", location="/login", upstream="http://app"
    )
    token = base64.b64encode(b"nginx:s3cret").decode()
    assert f'proxy_set_header Authorization "Basic {token}";' in text
    assert "auth_request /_rempart_auth;" in text
    assert "proxy_pass http://rempart/v1/nginx/auth;" in text
    assert "error_page 500 502 503 504 = @rempart_unavailable;" in text
    closed = nginx_config(
        rempart="r:1", api_password="x", location="/l", upstream="http://app", fail_open=False
    )
    assert "error_page" not in closed
