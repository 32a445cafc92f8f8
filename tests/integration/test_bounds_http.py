"""Values out of range are refused at the boundary, against a real `rempart serve`.

Each case of issue 13 item 1 over plain HTTP: an expiry or TTL of 1e17 or 1e308 seconds, a journal
search from the year 3 billion or in a /99, a list entry that is both an IP and a network. Each is
a 400 naming the field, changes nothing, and every page still answers. Then entries stored before
this layer existed (absurd expiries written into the SQLite store directly) are loaded at start,
shown by the API and the console, and removable from both.
"""

from __future__ import annotations

import base64
import calendar
import http.client
import json
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.integration.test_ops_browser import PASSWORD, Server
from tests.integration.test_ops_http import Client

AUTH = "Basic " + base64.b64encode(f"dovecot:{PASSWORD}".encode()).decode()


def call(server: Server, method: str, path: str, body: object = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    payload = None if body is None else json.dumps(body)
    conn.request(method, path, payload, {"Authorization": AUTH, "Content-Type": "application/json"})
    response = conn.getresponse()
    text = response.read().decode()
    conn.close()
    return response.status, text


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with tempfile.TemporaryDirectory() as tmp:
        srv = Server(Path(tmp) / "data")
        try:
            yield srv
        finally:
            srv.stop()


@pytest.mark.parametrize("command", ["addBLEntry", "addWLEntry"])
@pytest.mark.parametrize("expiry", [1e17, 1e300, "1e300", "inf", "nan", -5])
def test_absurd_expire_secs_is_a_400_and_every_page_still_answers(
    server: Server, command: str, expiry: object
) -> None:
    status, body = call(
        server, "POST", f"/?command={command}", {"ip": "192.0.2.9", "expire_secs": expiry}
    )
    assert status == 400 and "'expire_secs'" in body
    for listing in ("getBL", "getWL"):
        status, body = call(server, "GET", f"/?command={listing}")
        assert status == 200 and "192.0.2.9" not in body
    c = Client(server.base)
    assert c.login() == 303
    status, _, page = c.request("GET", "/ops/")
    assert status == 200 and "192.0.2.9" not in page


def test_a_ten_year_expiry_is_honoured(server: Server) -> None:
    ten_years = 10 * 365 * 86400
    status, _ = call(
        server, "POST", "/?command=addBLEntry", {"ip": "192.0.2.10", "expire_secs": ten_years}
    )
    assert status == 200
    status, body = call(server, "GET", "/?command=getBL")
    assert status == 200
    (entry,) = [e for e in json.loads(body)["bl_entries"] if e.get("ip") == "192.0.2.10/32"]
    # wforce's form, UTC to the second: 2036-Nov-29 21:55:01
    expires = calendar.timegm(time.strptime(entry["expiration"], "%Y-%b-%d %H:%M:%S"))
    assert ten_years - 60 < expires - time.time() <= ten_years
    assert call(server, "POST", "/?command=delBLEntry", {"ip": "192.0.2.10"})[0] == 200


def test_posture_ttl_beyond_ten_years_is_refused(server: Server) -> None:
    for ttl in (1e308, 1e17, "inf", -1, "forever"):
        body = {"protocol": "imap", "level": "strict", "reason": "drill", "ttl": ttl}
        status, text = call(server, "POST", "/v1/posture", body)
        assert status == 400 and "'ttl'" in text, (ttl, text)
    status, text = call(server, "GET", "/v1/posture")
    assert status == 200 and json.loads(text)["posture"]["imap"]["level"] == "normal"


def test_ip_and_netmask_together_are_ambiguous(server: Server) -> None:
    body = {"ip": "192.0.2.11", "netmask": "198.51.100.0/24", "expire_secs": 60}
    status, text = call(server, "POST", "/?command=addBLEntry", body)
    assert status == 400 and "'ip'" in text and "'netmask'" in text
    status, text = call(server, "GET", "/?command=getBL")
    assert "192.0.2.11" not in text and "198.51.100.0" not in text
    body = {"login": "alice@example.org", "netmask": "198.51.100.0/24"}
    status, text = call(server, "POST", "/?command=addBLEntry", body)
    assert status == 400 and "'netmask'" in text


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"since": "99999999999999999"}, "since"),
        ({"until": "1e300"}, "until"),
        ({"since": "nan"}, "since"),
        ({"subnet": "1.2.3.0/99"}, "subnet"),
        ({"subnet": "2001:db8::/129"}, "subnet"),
        ({"limit": "99999999999999999999999"}, "limit"),
        ({"kind": "everything"}, "kind"),
    ],
)
def test_journal_queries_out_of_range_are_a_400_naming_the_field(
    server: Server, query: dict[str, str], field: str
) -> None:
    c = Client(server.base)
    assert c.login() == 303
    status, _, page = c.request("GET", "/ops/journal?" + urlencode(query))
    assert status == 400 and f"&#x27;{field}&#x27;" in page, page[-600:]


def test_journal_subnet_searches_the_prefix_asked_for(server: Server) -> None:
    for ip in ("203.0.113.5", "203.0.113.200", "203.0.112.7"):
        call(
            server,
            "POST",
            "/?command=report",
            {"login": "bob@example.org", "remote": ip, "success": False},
        )
    c = Client(server.base)
    assert c.login() == 303

    def found(subnet: str) -> set[str]:
        status, _, page = c.request("GET", "/ops/journal?" + urlencode({"subnet": subnet}))
        assert status == 200
        return {ip for ip in ("203.0.113.5", "203.0.113.200", "203.0.112.7") if f">{ip}<" in page}

    assert found("203.0.113.0/25") == {"203.0.113.5"}
    assert found("203.0.113.9") == {"203.0.113.5", "203.0.113.200"}  # its /24
    assert found("203.0.112.0/23") == {"203.0.113.5", "203.0.113.200", "203.0.112.7"}


def test_console_refuses_an_expiry_beyond_ten_years(server: Server) -> None:
    c = Client(server.base)
    assert c.login() == 303
    token = c.csrf()
    for expires in ("99999999d", "1e17", "nan"):
        form = {
            "csrf": token,
            "list": "block",
            "kind": "ip",
            "value": "192.0.2.12",
            "reason": "t",
            "expires": expires,
        }
        status, _, page = c.request("POST", "/ops/lists/add", form)
        assert status == 400 and "&#x27;expires&#x27;" in page
    assert "192.0.2.12" not in call(server, "GET", "/?command=getBL")[1]


def test_entries_stored_with_absurd_expiries_load_show_and_can_be_removed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = Server(data)
    ips = ("192.0.2.21", "192.0.2.22", "192.0.2.23", "192.0.2.24")
    try:
        for ip in ips:
            assert (
                call(server, "POST", "/?command=addBLEntry", {"ip": ip, "expire_secs": 3600})[0]
                == 200
            )
    finally:
        server.stop()
    # What a server before the boundary checks wrote for expire_secs of 1e17, 1e300, inf, 3e11.
    with sqlite3.connect(data / "state.sqlite3") as db:
        for ip, expires in zip(ips, (1e17, 1e300, float("inf"), 3e11), strict=True):
            db.execute("UPDATE list_entries SET expires = ? WHERE value = ?", (expires, ip))
    server.start()
    try:
        status, body = call(server, "GET", "/?command=getBL")
        assert status == 200
        entries = json.loads(body)["bl_entries"]
        listed = {e["ip"].removesuffix("/32"): e for e in entries if "ip" in e}
        assert set(ips) <= set(listed)
        assert all(listed[ip]["expiration"] == "+infinity" for ip in ips)
        assert any("cannot be shown" in line for line in server.output)
        c = Client(server.base)
        assert c.login() == 303
        status, _, page = c.request("GET", "/ops/")
        assert status == 200 and all(ip in page for ip in ips)
        token = c.csrf()
        form = {"csrf": token, "list": "block", "kind": "ip", "value": ips[0], "reason": "cleanup"}
        status, _, _ = c.request("POST", "/ops/lists/remove", form)
        assert status == 303
        assert call(server, "POST", "/?command=delBLEntry", {"ip": ips[1]})[0] == 200
        status, body = call(server, "GET", "/?command=getBL")
        assert status == 200 and ips[0] not in body and ips[1] not in body
        assert ips[2] in body and ips[3] in body
    finally:
        server.stop()
    server.start()
    try:
        status, body = call(server, "GET", "/?command=getBL")
        assert status == 200 and ips[0] not in body and ips[1] not in body and ips[2] in body
    finally:
        server.stop()
