"""Every route of a fully featured node declares who may call it, and the router enforces it.

The real app (wforce and native APIs, operator API, nginx auth_request, load shedding, metrics,
console, status page) is built by `Service.router()` and served by the real HTTP stack on a
loopback port. Every route the router holds is asked without credentials, then with wrong ones:
each non-public route must refuse (401, nginx's 407, or a redirect to the console's sign-in),
and only the routes listed in PUBLIC may answer strangers. A route added without a guard fails
here, as does a route quietly added as public.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import orjson
import pytest

from rempart.config import from_mapping
from rempart.httpserver import Auth, HttpApp, Request, Response, Route, Router, json_response
from rempart.server import Service

PASSWORD = "route-auth-api-password"
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/metrics"),  # Prometheus scrapes without credentials; counters only
    ("GET", "/command/readyz"),  # wforce answers readiness probes without credentials
    ("GET", "/status"),
    ("GET", "/status.json"),
    ("GET", "/ops/static/*"),
    ("GET", "/ops"),  # a redirect to /ops/
    ("GET", "/ops/login"),
    ("POST", "/ops/login"),  # checks its own sign-in token and the operator's password
}
FEATURES = {  # one route of each optional part: proof that everything was mounted
    ("POST", "/command/*"),
    ("POST", "/v1/decide"),
    ("POST", "/v1/posture"),
    ("GET", "/v1/nginx/auth"),
    ("GET", "/v1/shed/status"),
    ("GET", "/ops/journal"),
    ("POST", "/ops/lists/add"),
}
CONFIG = {
    "shed": {"services": [{"name": "web", "upstream": "127.0.0.1:9", "probe_path": ""}]},
    "nginx": {"trusted_proxies": ["127.0.0.1"]},
    "ops": {"dashboard": True},
}


def basic(password: str) -> str:
    return "Basic " + base64.b64encode(f"any:{password}".encode()).decode()


class Node:
    """The node's real HTTP app on a loopback port, its event loop in a thread."""

    def __init__(self, data_dir: Path) -> None:
        self.service = Service(from_mapping(CONFIG), data_dir, PASSWORD)
        self.router = self.service.router()
        self.app = HttpApp(self.router)
        self.service.app = self.app
        self.loop = asyncio.new_event_loop()
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.port = self.loop.run_until_complete(self.app.start("127.0.0.1", 0))
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert started.wait(10)
        self.cookies: dict[str, str] = {}

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        hdrs = dict(headers or {})
        if self.cookies and "Cookie" not in hdrs:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn.request(method, path, body=body, headers=hdrs)
        response = conn.getresponse()
        content = response.read()
        answer = {k.lower(): v for k, v in response.getheaders()}
        conn.close()
        cookie = answer.get("set-cookie", "")
        if cookie and "Max-Age=0" not in cookie:
            name, _, rest = cookie.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        return response.status, answer, content

    def sign_in(self) -> None:
        """The first operator signs in with the API password (no operators created yet)."""
        self.request("GET", "/ops/login")
        form = {"csrf": self.cookies["rempart_login"], "operator": "admin", "password": PASSWORD}
        status, headers, _ = self.request(
            "POST",
            "/ops/login",
            {"Content-Type": "application/x-www-form-urlencoded"},
            urlencode(form),
        )
        assert status == 303 and headers["location"] == "/ops/", (status, headers)

    def close(self) -> None:
        async def stop() -> None:
            await self.app.stop()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.service.close()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    node = Node(tmp_path / "data")
    try:
        yield node
    finally:
        node.close()


def target(route: Route) -> str:
    """A concrete path for a route (a prefix route gets a remainder)."""
    if route.path.endswith("/*"):
        return route.path[:-1] + "x@example.org/password-changed"
    return route.path + ("?command=stats" if route.path == "/" else "")


def refused(route: Route, status: int, headers: dict[str, str]) -> bool:
    if route.auth is Auth.API:
        return status == 401 and headers.get("www-authenticate", "").startswith("Basic")
    if route.auth is Auth.PROXY_API:
        return status == 407 and "proxy-authenticate" in headers
    if route.auth is Auth.OPERATOR:
        return status == 401 or (
            status == 303 and headers.get("location", "").startswith("/ops/login")
        )
    return False


def test_every_non_public_route_refuses_strangers(node: Node) -> None:
    routes = node.router.routes()
    declared = {(r.method, r.path) for r in routes}
    assert declared >= FEATURES, FEATURES - declared
    assert {(r.method, r.path) for r in routes if r.auth is Auth.PUBLIC} == PUBLIC
    guarded = [r for r in routes if r.auth is not Auth.PUBLIC]
    assert len(guarded) >= 23  # wforce 4, native 3, operator 4, nginx 2, shed 1, console 9
    answers = {}
    for route in guarded:
        for credentials in (
            {},
            {"Authorization": basic("wrong")},
            {"Authorization": "Bearer " + PASSWORD},
            {"Cookie": "rempart_session=forged"},
        ):
            json = {"Content-Type": "application/json"}
            status, headers, _ = node.request(
                route.method, target(route), {**json, **credentials}, "{}"
            )
            answers[(route.method, route.path, tuple(credentials))] = status
            assert refused(route, status, headers), (route, credentials, status, headers)
    assert set(answers.values()) <= {401, 407, 303}


def test_the_guards_let_the_right_callers_through(node: Node) -> None:
    """The refusals above come from the guards, not from routes that refuse everyone."""
    routes = node.router.routes()
    for route in routes:
        if route.auth in (Auth.API, Auth.PROXY_API):
            status, _, _ = node.request(
                route.method, target(route), {"Authorization": basic(PASSWORD)}, "{}"
            )
            assert status not in (401, 403, 407), (route, status)
    node.sign_in()
    for path in ("/ops/", "/ops/journal", "/ops/api/snapshot"):
        assert node.request("GET", path)[0] == 200, path
    # Every operator POST needs the session's CSRF token too, checked by the same guard.
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for route in routes:
        if route.auth is Auth.OPERATOR and route.method == "POST":
            status, _, _ = node.request("POST", route.path, form, "csrf=forged&reason=x")
            assert status == 403, (route, status)
    # Still signed in: the forged posts changed nothing (a logout would have ended the session).
    assert node.request("GET", "/ops/")[0] == 200


def test_a_route_cannot_be_added_without_its_guard() -> None:
    def ok(request: Request) -> Response:
        return json_response({"ok": True})

    router = Router()
    with pytest.raises(TypeError):
        router.add("GET", "/open", ok)  # type: ignore[call-arg]
    for level in (Auth.API, Auth.PROXY_API, Auth.OPERATOR):
        with pytest.raises(ValueError, match=level.name):
            router.add("GET", "/secret", ok, auth=level)
    router.add("GET", "/open", ok, auth=Auth.PUBLIC)
    assert [(r.path, r.auth) for r in router.routes()] == [("/open", Auth.PUBLIC)]


def test_the_guard_runs_before_the_handler() -> None:
    reached: list[str] = []

    def handler(request: Request) -> Response:
        reached.append(request.path)
        return json_response({"principal": request.principal})

    def guard(request: Request) -> Response | None:
        if request.headers.get("x-pass") != "yes":
            return Response(303, b"", "text/plain", {"Location": "/signin"})
        request.principal = "alice"
        return None

    router = Router({Auth.OPERATOR: guard})
    router.add("POST", "/act/*", handler, auth=Auth.OPERATOR)
    app = HttpApp(router)
    refused = app.dispatch(Request("POST", "/act/now", "", {}, b"", "127.0.0.1"))
    assert isinstance(refused, Response) and refused.status == 303 and reached == []
    let_in = app.dispatch(Request("POST", "/act/now", "", {"x-pass": "yes"}, b"", "127.0.0.1"))
    assert isinstance(let_in, Response) and let_in.status == 200
    assert let_in.body == b'{"principal":"alice"}' and reached == ["/act/now"]


def test_the_optional_parts_answer_through_their_contexts(node: Node) -> None:
    """Load shedding reaches the shed endpoint, the status page, the dashboard and the metrics
    through the contexts the server built; the API stats and posture come from the engine."""
    api = {"Authorization": basic(PASSWORD)}
    status, _, body = node.request("GET", "/v1/shed/status", api)
    assert status == 200 and "web" in orjson.loads(body)["services"]
    status, _, body = node.request("GET", "/status.json")
    assert status == 200 and set(orjson.loads(body)["services"]) >= {"imap", "web"}
    status, _, body = node.request("GET", "/metrics")
    assert status == 200 and b"rempart_decisions_total" in body and b"rempart_shed" in body
    status, _, body = node.request("GET", "/?command=stats", api)
    assert status == 200 and orjson.loads(body)["tracked_keys"] == 0
    posture = {"protocol": "imap", "level": "strict", "reason": "route test"}
    status, _, body = node.request("POST", "/v1/posture", api, orjson.dumps(posture).decode())
    assert status == 200 and orjson.loads(body)["posture"]["level"] == "strict"
    status, _, body = node.request("GET", "/status.json")
    assert orjson.loads(body)["services"]["imap"]["level"] == "restricted"
    node.sign_in()
    status, _, page = node.request("GET", "/ops/")
    assert status == 200 and b"Load shedding is not configured" not in page
    assert b"<li>web: <b>" in page
