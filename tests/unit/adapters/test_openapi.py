"""The OpenAPI document names every machine route a fully featured node mounts, and nothing else.

The node is the real `Service.router()` with every optional part on. A machine route is every
route behind the API password (`Auth.API`, `Auth.PROXY_API`) plus the public machine endpoints
(health, metrics, the status figures); the console and the HTML status page are for browsers.
Each route must be matched by a path of the document, and each path and method of the document
must resolve in the router to a machine route; each wforce command the API answers must have its
`/command/NAME` path and be in the `?command=` enum, and the other way round.
"""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
from openapi_spec_validator import validate

from rempart.adapters import openapi
from rempart.httpserver import Auth, Route, Router
from rempart.server import Service
from tests.unit.test_route_auth import CONFIG, PASSWORD

BROWSER_PAGES = ("/ops", "/status")  # HTML for people: not in the document
MACHINE_PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/status.json"),
    ("GET", "/command/readyz"),  # wforce answers readyz without authentication
}
METHODS = ("get", "post", "put", "patch", "delete", "head", "options")


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Router:
    from rempart.config import from_mapping

    service = Service(from_mapping(CONFIG), Path(tmp_path_factory.mktemp("node")), PASSWORD)
    return service.router()


def is_machine(route: Route) -> bool:
    if route.auth in (Auth.API, Auth.PROXY_API):
        return True
    return (route.method, route.path) in MACHINE_PUBLIC


def concrete(path: str) -> str:
    """A request path for a templated document path ({login} → a sample value)."""
    return re.sub(r"\{[^}]+\}", "alice%40example.org", path)


def operations() -> list[tuple[str, str]]:
    doc = openapi.document()
    return [(m.upper(), p) for p, item in doc["paths"].items() for m in item if m in METHODS]


def test_the_document_is_valid_openapi_3_and_is_what_is_served() -> None:
    doc = openapi.document()
    validate(doc)
    assert doc["openapi"].startswith("3.")
    assert orjson.loads(openapi.serve(None).body) == doc  # type: ignore[arg-type]


def test_every_machine_route_is_documented(router: Router) -> None:
    documented = operations()
    missing = []
    for route in router.routes():
        if route.path.startswith(BROWSER_PAGES) and route.path != "/status.json":
            assert not is_machine(route), f"{route.method} {route.path} is a machine route"
            continue
        assert is_machine(route), f"{route.method} {route.path}: public, yet not a known page"
        prefix = route.path.removesuffix("*")
        covered = any(
            method == route.method
            and (path == route.path or (route.path.endswith("/*") and path.startswith(prefix)))
            for method, path in documented
        )
        if not covered:
            missing.append(f"{route.method} {route.path}")
    assert missing == []


def test_every_documented_operation_is_a_mounted_machine_route(router: Router) -> None:
    stray = []
    for method, path in operations():
        route, _, _ = router.resolve(method, concrete(path))
        if route is None or not is_machine(route):
            stray.append(f"{method} {path}")
    assert stray == []
    assert len(operations()) >= 25


def test_wforce_commands_match_the_document_both_ways(router: Router) -> None:
    route, _, _ = router.resolve("POST", "/command/allow")
    assert route is not None
    commands = set(route.handler.__self__.commands)  # type: ignore[attr-defined]
    doc = openapi.document()
    by_path = {p.removeprefix("/command/") for p in doc["paths"] if p.startswith("/command/")}
    (query,) = doc["paths"]["/"]["post"]["parameters"]
    assert by_path == commands | {"readyz"}
    assert set(query["schema"]["enum"]) == commands


def test_documented_security_matches_each_route_auth(router: Router) -> None:
    doc = openapi.document()
    scheme = {Auth.API: "apiBasic", Auth.PROXY_API: "proxyBasic"}
    for method, path in operations():
        route, _, _ = router.resolve(method, concrete(path))
        assert route is not None
        security = doc["paths"][path][method.lower()].get("security", doc["security"])
        names = {name for requirement in security for name in requirement}
        expected = {scheme[route.auth]} if route.auth in scheme else set()
        assert names == expected, f"{method} {path}"
