"""Route patterns, classification and [shed] config validation."""

from __future__ import annotations

import pytest

from rempart.config import ConfigError
from rempart.shed.classes import Criticality
from rempart.shed.classify import Classifier
from rempart.shed.config import parse_shed

SERVICES = [{"name": "web", "upstream": "127.0.0.1:8081"}]


def settings(*routes: dict[str, object]):
    return parse_shed({"services": SERVICES, "routes": list(routes)})


def test_defaults_parse() -> None:
    s = parse_shed({})
    assert s.default_class is Criticality.SHEDDABLE_PLUS
    assert s.retry_after == 5 and s.limiter.min_limit == 2


def test_most_specific_route_wins() -> None:
    s = settings(
        {"name": "api", "class": "sheddable", "path": "/api/*"},
        {"name": "pay", "class": "critical_plus", "path": "/api/pay/*", "methods": ["POST"]},
        {"name": "login", "class": "critical", "path": "/login"},
        {"name": "admin", "class": "critical", "path": "/api/admin/*", "host": "admin.example.com"},
    )
    c = Classifier(s.routes, s.default_class)
    assert c.classify("x", "/api/pay/1", "POST").name == "pay"
    assert c.classify("x", "/api/pay/1", "GET").name == "api"
    assert c.classify("Admin.Example.com:443", "/api/admin/x", "GET").name == "admin"
    assert c.classify("www.example.com", "/api/admin/x", "GET").name == "api"
    assert c.classify("x", "/login", "post").criticality is Criticality.CRITICAL
    assert c.classify("x", "/login/other", "GET").criticality is Criticality.SHEDDABLE_PLUS


@pytest.mark.parametrize(
    ("route", "key", "fragment"),
    [
        ({"class": "vip", "path": "/x"}, "shed.routes[0].class", "unknown criticality"),
        ({"class": "critical", "path": "/a*b"}, "shed.routes[0].path", "only at the end"),
        ({"class": "critical", "path": "login"}, "shed.routes[0].path", "start with '/'"),
        ({"class": "critical", "path": "/x", "host": "a b"}, "shed.routes[0].host", "host"),
        (
            {"class": "critical", "path": "/x", "methods": ["G3T"]},
            "shed.routes[0].methods",
            "method",
        ),
        (
            {"class": "critical", "path": "/x", "service": "nope"},
            "shed.routes[0].service",
            "unknown",
        ),
        ({"path": "/x"}, "shed.routes[0].class", "required"),
    ],
)
def test_bad_route_names_the_key(route: dict[str, object], key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings(route)
    assert err.value.key == key
    assert fragment in str(err.value) and key in str(err.value)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"path": "/x"}, {"path": "/x"}),  # identical
        ({"path": "/a/*", "methods": ["GET", "POST"]}, {"path": "/a/*", "methods": ["POST", "PUT"]}),
        ({"path": "/a/*", "host": "www.example.com"}, {"path": "/a/b/*", "host": "*.example.com"}),
        ({"path": "/a/b/*"}, {"path": "/a/*", "host": "x.org"}),
    ],
)  # fmt: skip
def test_overlapping_patterns_are_rejected(
    first: dict[str, object], second: dict[str, object]
) -> None:
    with pytest.raises(ConfigError) as err:
        settings({"class": "critical", **first}, {"class": "sheddable", **second})
    assert err.value.key == "shed.routes[1].path"
    assert "overlaps shed.routes[0]" in str(err.value)


def test_nested_and_disjoint_patterns_are_fine() -> None:
    settings(
        {"class": "sheddable", "path": "*"},
        {"class": "critical", "path": "/a/*"},
        {"class": "critical_plus", "path": "/a/b", "methods": ["POST"]},
        {"class": "critical", "path": "/a/*", "host": "*.example.com", "methods": ["GET"]},
        {"class": "sheddable", "path": "/b/*", "methods": ["GET"]},
        {"class": "critical", "path": "/b/*", "methods": ["POST"]},
    )


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"bogus": 1}, "shed.bogus"),
        ({"default_class": "x"}, "shed.default_class"),
        ({"limiter": {"min": 10, "max": 5}}, "shed.limiter.min"),
        ({"limiter": {"tolerance": "high"}}, "shed.limiter.tolerance"),
        ({"haproxy": {"bind": "nowhere"}}, "shed.haproxy.bind"),
        ({"client_rate": {"sheddable": -1}}, "shed.client_rate.sheddable"),
        ({"services": [{"name": "web"}]}, "shed.services[0].upstream"),
        ({"services": SERVICES + SERVICES}, "shed.services[1].name"),
    ],
)
def test_bad_settings_name_the_key(table: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_shed(table)
    assert err.value.key == key
