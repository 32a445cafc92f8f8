"""The console's refusals over plain HTTP against a real `rempart serve`: expired sessions, forged
CSRF and login tokens, cross-site posts, malformed queries, throttled sign-ins, SSE without a
session, a tampered journal caught by `rempart journal verify` and the incident report, and
the posture form: hold or hand back, a TTL, and the panel saying who set each posture and until when.
"""

from __future__ import annotations

import base64
import html
import http.client
import json
import re
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from tests.integration.test_ops_browser import PASSWORD, REMPART, Server


class Client:
    """A tiny cookie-keeping HTTP client (no redirects followed)."""

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.cookies: dict[str, str] = {}

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], str]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        hdrs = dict(headers or {})
        if self.cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
        for name, value in resp.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                val = rest.split(";", 1)[0]
                if "Max-Age=0" in value:
                    self.cookies.pop(key, None)
                else:
                    self.cookies[key] = val
        conn.close()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, text

    def login(self, password: str = PASSWORD) -> int:
        self.request("GET", "/ops/login")
        status, _, _ = self.request(
            "POST",
            "/ops/login",
            {"csrf": self.cookies["rempart_login"], "operator": "admin", "password": password},
        )
        return status

    def csrf(self) -> str:
        _, _, page = self.request("GET", "/ops/")
        return page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with tempfile.TemporaryDirectory() as tmp:
        srv = Server(Path(tmp), "[ops]\nsession_minutes = 0.05\n")  # 3-second idle sessions
        try:
            yield srv
        finally:
            srv.stop()


def test_security_headers_and_cookie_flags(server: Server) -> None:
    c = Client(server.base)
    status, headers, _ = c.request("GET", "/ops/login")
    assert status == 200
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert c.login() == 303
    status, headers, page = c.request("GET", "/ops/")
    assert status == 200 and "<script>" not in page and " style=" not in page
    status, _, _ = c.request("GET", "/ops/login")
    secure = Client(server.base)
    secure.request("GET", "/ops/login", headers={"X-Forwarded-Proto": "https"})
    _, headers, _ = secure.request(
        "POST",
        "/ops/login",
        {"csrf": secure.cookies["rempart_login"], "operator": "admin", "password": PASSWORD},
        {"X-Forwarded-Proto": "https"},
    )
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" in cookie


def test_expired_session_is_sent_back_to_sign_in(server: Server) -> None:
    c = Client(server.base)
    assert c.login() == 303
    token = c.csrf()
    time.sleep(3.5)
    status, headers, _ = c.request("GET", "/ops/")
    assert status == 303 and headers["location"] == "/ops/login?expired=1"
    status, headers, _ = c.request(
        "POST",
        "/ops/lists/add",
        {"csrf": token, "list": "block", "kind": "ip", "value": "192.0.2.200", "reason": "late"},
    )
    assert status == 303 and "expired" in headers["location"]
    assert "192.0.2.200" not in json.dumps(server.api("getBL", {}))
    status, _, body = c.request("GET", "/ops/api/snapshot")
    assert status == 401 and "sign in again" in body


def test_forged_tokens_and_cross_site_posts_are_refused(server: Server) -> None:
    c = Client(server.base)
    c.request("GET", "/ops/login")
    status, _, page = c.request(
        "POST", "/ops/login", {"csrf": "forged", "operator": "admin", "password": PASSWORD}
    )
    assert status == 403 and "forged" in page
    assert c.login() == 303
    token = c.csrf()
    form = {"list": "block", "kind": "ip", "value": "192.0.2.201", "reason": "x"}
    status, _, page = c.request("POST", "/ops/lists/add", {**form, "csrf": "nope"})
    assert status == 403 and "CSRF" in page
    status, _, page = c.request("POST", "/ops/lists/add", form)
    assert status == 403
    status, _, page = c.request(
        "POST", "/ops/lists/add", {**form, "csrf": token}, {"Origin": "http://evil.example"}
    )
    assert status == 403 and "cross-site" in page
    assert "192.0.2.201" not in json.dumps(server.api("getBL", {}))
    status, _, page = c.request("POST", "/ops/lists/add", {**form, "csrf": token})
    assert status == 303
    assert "192.0.2.201" in json.dumps(server.api("getBL", {}))


@pytest.mark.parametrize(
    ("path", "form", "message"),
    [
        (
            "/ops/lists/add",
            {"list": "block", "kind": "ip", "value": "999.1.1.1", "reason": "r"},
            "not",
        ),
        (
            "/ops/lists/add",
            {"list": "grey", "kind": "ip", "value": "192.0.2.1", "reason": "r"},
            "is not one of: block, allow",
        ),
        (
            "/ops/lists/add",
            {"list": "block", "kind": "ip", "value": "192.0.2.1", "reason": ""},
            "reason is required",
        ),
        (
            "/ops/lists/add",
            {"list": "block", "kind": "ip", "value": "192.0.2.1", "reason": "r", "expires": "soon"},
            "is not a duration",
        ),
        (
            "/ops/lists/remove",
            {"list": "block", "kind": "ip", "value": "192.0.2.99"},
            "no block-list entry",
        ),
        (
            "/ops/posture",
            {"protocol": "imap", "level": "panic", "reason": "r"},
            "is not one of: normal, guarded",
        ),
        (
            "/ops/posture",
            {"protocol": "gopher", "level": "strict", "reason": "r"},
            "is not one of: imap, pop3",
        ),
        (
            "/ops/notices",
            {"service": "imap", "level": "down", "text": "see www.example.org/reset"},
            "no links",
        ),
    ],
)
def test_bad_input_is_a_clear_4xx_and_changes_nothing(
    server: Server, path: str, form: dict[str, str], message: str
) -> None:
    c = Client(server.base)
    assert c.login() == 303
    before = json.dumps(server.api("getBL", {}))
    status, _, page = c.request("POST", path, {**form, "csrf": c.csrf()})
    assert 400 <= status < 500, page
    assert message in page
    assert json.dumps(server.api("getBL", {})) == before


@pytest.mark.parametrize(
    "query",
    [
        "ip=not-an-ip",
        "since=yesterday-ish",
        "kind=gossip",
        "limit=0",
        "limit=abc",
        "since=2h&until=3h",
    ],
)
def test_malformed_journal_query_is_400(server: Server, query: str) -> None:
    c = Client(server.base)
    assert c.login() == 303
    status, _, page = c.request("GET", "/ops/journal?" + query)
    assert status == 400, page
    assert "Request refused" in page


def test_unauthenticated_routes_and_static_files(server: Server) -> None:
    c = Client(server.base)
    assert c.request("GET", "/ops/events")[0] == 401
    assert c.request("GET", "/ops/api/snapshot")[0] == 401
    assert c.request("GET", "/ops/journal")[0] == 303
    assert c.request("GET", "/ops/static/console.js")[0] == 200
    assert c.request("GET", "/ops/static/../journal.py")[0] == 404
    assert c.request("GET", "/ops/static/journal.py")[0] == 404
    status, _headers, body = c.request("GET", "/status.json")
    assert status == 200 and set(json.loads(body)["services"]) >= {"imap", "web"}


def test_sign_in_is_throttled_after_repeated_failures() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        srv = Server(Path(tmp))
        try:
            c = Client(srv.base)
            statuses = [c.login("wrong-password") for _ in range(11)]
            assert statuses[:10] == [401] * 10 and statuses[10] == 429
            assert c.login() == 429  # even the right password, from this address, for a while
        finally:
            srv.stop()


def test_tampered_journal_is_detected() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        srv = Server(Path(tmp))
        try:
            for i in range(5):
                srv.api(
                    "report",
                    {
                        "login": f"u{i}@example.org",
                        "remote": "198.51.100.5",
                        "pwhash": "aa",
                        "protocol": "imap",
                        "success": False,
                    },
                )
            time.sleep(0.5)
        finally:
            srv.stop()
        ok = subprocess.run(
            [*REMPART, "journal", "--data-dir", tmp, "verify"], capture_output=True, text=True
        )
        assert ok.returncode == 0 and "intact: 5 records" in ok.stdout
        exported = subprocess.run(
            [*REMPART, "journal", "--data-dir", tmp, "export"], capture_output=True, text=True
        )
        lines = exported.stdout.splitlines()
        assert exported.returncode == 0 and len(lines) == 5
        assert all({"seq", "prev", "hash"} <= set(json.loads(x)) for x in lines)
        segment = next((Path(tmp) / "journal").glob("segment-*.jsonl"))
        text = segment.read_text().splitlines()
        text[2] = text[2].replace("u2@example.org", "someone-else@example.org")
        segment.write_text("\n".join(text) + "\n")
        bad = subprocess.run(
            [*REMPART, "journal", "--data-dir", tmp, "verify"], capture_output=True, text=True
        )
        assert bad.returncode != 0 and "line 3" in bad.stderr and "content altered" in bad.stderr
        report = subprocess.run(
            [
                *REMPART,
                "report",
                "incident",
                "--data-dir",
                tmp,
                "--since",
                "1h",
                "--out",
                f"{tmp}/r.html",
            ],
            capture_output=True,
            text=True,
        )
        assert report.returncode != 0 and "broken" in report.stderr
        assert "WARNING: journal broken" in Path(f"{tmp}/r.html").read_text()
        exported = subprocess.run(
            [*REMPART, "journal", "--data-dir", tmp, "export"], capture_output=True, text=True
        )
        assert exported.returncode != 0 and "broken" in exported.stderr


def _postures(server: Server) -> dict[str, dict[str, object]]:
    token = base64.b64encode(f"api:{PASSWORD}".encode()).decode()
    req = urllib.request.Request(
        f"{server.base}/v1/posture", headers={"Authorization": f"Basic {token}"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())["posture"]


def _cell(page: str, protocol: str, key: str) -> str:
    match = re.search(rf'id="posture-{protocol}-{key}"[^>]*>([^<]*)<', page)
    assert match, f"no {key} cell for {protocol}"
    return html.unescape(match.group(1))


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"level": "panic", "hold": "hold"}, "field 'level': 'panic' is not one of"),
        ({"protocol": "gopher", "hold": "hold"}, "field 'protocol': 'gopher' is not one of"),
        ({}, "hold: choose"),
        ({"hold": "maybe"}, "hold: choose"),
        ({"hold": "hold", "ttl": "soon"}, "ttl 'soon'"),
        ({"hold": "hold", "ttl": "-30m"}, "ttl '-30m'"),
        ({"hold": "hold", "ttl": "-60"}, "ttl '-60'"),
        ({"hold": "hold", "ttl": "0"}, "ttl '0'"),
        ({"hold": "hold", "ttl": "400d"}, "at most 30 days"),
        ({"hold": "hold", "ttl": "nan"}, "ttl 'nan'"),
        ({"hold": "hand-back", "ttl": "2h"}, "ttl applies to a hold only"),
        ({"hold": "hold", "reason": ""}, "reason is required"),
    ],
)
def test_bad_posture_form_is_a_400_naming_the_field(
    server: Server, form: dict[str, str], message: str
) -> None:
    c = Client(server.base)
    assert c.login() == 303
    before = _postures(server)
    body = {"protocol": "pop3", "level": "strict", "reason": "stuffing", **form}
    status, _, page = c.request("POST", "/ops/posture", {**body, "csrf": c.csrf()})
    assert status == 400, page
    assert message in html.unescape(page)
    after = _postures(server)
    assert {p: (d["level"], d["held"]) for p, d in after.items()} == {
        p: (d["level"], d["held"]) for p, d in before.items()
    }


def test_posture_form_holds_or_hands_back_and_the_panel_says_who_and_until_when(
    server: Server,
) -> None:
    c = Client(server.base)
    assert c.login() == 303
    _, _, page = c.request("GET", "/ops/")
    assert _cell(page, "pop3", "detector") == "active"
    assert _cell(page, "pop3", "by") == "detector"

    # Held for two hours: the detector pauses for POP3 until then.
    start = time.time()
    form = {"protocol": "pop3", "level": "strict", "hold": "hold", "ttl": "2h"}
    status, headers, _ = c.request(
        "POST", "/ops/posture", {**form, "reason": "botnet on POP3", "csrf": c.csrf()}
    )
    assert status == 303 and headers["location"].endswith("#posture")
    pop3 = _postures(server)["pop3"]
    assert pop3["level"] == "strict" and pop3["held"] is True and pop3["source"] == "operator"
    assert pop3["set_by"] == "operator:admin" and pop3["reason"] == "botnet on POP3"
    assert isinstance(pop3["until"], float) and abs(pop3["until"] - (start + 7200)) < 5
    _, _, page = c.request("GET", "/ops/")
    assert 'id="posture-pop3">strict<' in page
    assert _cell(page, "pop3", "by") == "admin"
    assert _cell(page, "pop3", "reason") == "botnet on POP3"
    assert _cell(page, "pop3", "until") == time.strftime(
        "%Y-%m-%d %H:%M:%SZ", time.gmtime(pop3["until"])
    )
    assert _cell(page, "pop3", "detector") == "paused (operator hold)"

    # Held with no time: until changed.
    form = {"protocol": "smtp", "level": "normal", "hold": "hold", "ttl": ""}
    status, _, _ = c.request(
        "POST", "/ops/posture", {**form, "reason": "false alarm, keep calm", "csrf": c.csrf()}
    )
    assert status == 303
    smtp = _postures(server)["smtp"]
    assert smtp["level"] == "normal" and smtp["held"] is True and smtp["until"] is None
    _, _, page = c.request("GET", "/ops/")
    assert _cell(page, "smtp", "until") == "until changed"
    assert _cell(page, "smtp", "detector") == "paused (operator hold)"

    # Ending the incident: normal, handed back to the detector, which is active again.
    form = {"protocol": "pop3", "level": "normal", "hold": "hand-back"}
    status, _, _ = c.request(
        "POST", "/ops/posture", {**form, "reason": "wave over", "csrf": c.csrf()}
    )
    assert status == 303
    pop3 = _postures(server)["pop3"]
    assert pop3["level"] == "normal" and pop3["held"] is False and pop3["until"] is None
    assert pop3["source"] == "operator" and pop3["reason"] == "wave over"
    _, _, page = c.request("GET", "/ops/")
    assert _cell(page, "pop3", "detector") == "active"
    assert _cell(page, "pop3", "until") == "the detector decides"

    # The live snapshot carries the same facts for the script to refresh the panel.
    status, _, body = c.request("GET", "/ops/api/snapshot")
    facts = json.loads(body)["posture_facts"]
    assert facts["smtp"]["held"] is True and facts["smtp"]["until"] == "until changed"
    assert facts["pop3"]["detector"] == "active" and facts["pop3"]["by"] == "admin"
