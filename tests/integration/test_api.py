"""The HTTP APIs against a running `rempart serve`: protocol shapes, bad input, durability."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.rig import PASSWORD, RempartProcess

DOVECOT_ALLOW = (
    b'{"device_id":"\\"name\\" \\"rig-client\\" \\"version\\" \\"1.0\\"",'
    b'"login":"alice@example.org","protocol":"imap","pwhash":"0ed6","remote":"127.0.0.1",'
    b'"tls":false}'
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RempartProcess]:
    proc = RempartProcess(tmp_path / "data").start()
    yield proc
    proc.stop()


def raw_request(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
            if b"\r\n\r\n" in b"".join(chunks):
                head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
                length = [
                    int(h.split(b":")[1])
                    for h in head.split(b"\r\n")
                    if h.lower().startswith(b"content-length")
                ]
                if length and len(body) >= length[0]:
                    break
        return b"".join(chunks)


def test_dovecot_request_verbatim_with_double_space_authorization(server: RempartProcess) -> None:
    from base64 import b64encode

    token = b64encode(b"wforce:test-api-password")
    request = (
        b"POST /?command=allow HTTP/1.1\r\nHost: x\r\nUser-Agent: dovecot/auth-policy-client"
        b"\r\nContent-Length: %d\r\nConnection: Keep-Alive\r\nContent-Type: application/json"
        b"\r\nAuthorization:  Basic %s\r\n\r\n%s"
    ) % (len(DOVECOT_ALLOW), token, DOVECOT_ALLOW)
    answer = raw_request(server.port, request)
    assert answer.startswith(b"HTTP/1.1 200")
    body = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert body == {"status": 0, "msg": "", "r_attrs": {}}
    assert isinstance(body["status"], int)


def test_both_command_forms_and_lists(server: RempartProcess) -> None:
    assert server.request("GET", "/?command=ping") == (200, {"status": "ok"})
    assert server.request("POST", "/command/ping", {})[0] == 200
    assert server.command(
        "addBLEntry", {"netmask": "192.0.2.0/24", "expire_secs": 3600, "reason": "abuse"}
    ) == (200, {"status": "ok"})
    assert (
        server.command(
            "addWLEntry",
            {
                "ip": "192.0.2.7",
                "login": "doctor@example.org",
                "expire_secs": 3600,
                "reason": "EHR sender",
            },
        )[0]
        == 200
    )
    _code, body = server.command(
        "allow",
        {"login": "x@example.org", "remote": "192.0.2.9", "pwhash": "0001", "protocol": "imap"},
    )
    assert body["status"] == -1 and body["msg"]
    _code, body = server.command(
        "allow",
        {
            "login": "Doctor@Example.org",
            "remote": "192.0.2.7",
            "pwhash": "0001",
            "protocol": "smtp",
        },
    )
    assert body["status"] == 0, "allow beats block"
    _, bl = server.command("getBL")
    assert bl["bl_entries"][0]["ip"] == "192.0.2.0/24"
    _, wl = server.command("getWL")
    assert wl["wl_entries"][0]["iplogin"] == "192.0.2.7:doctor@example.org"
    assert server.command("delBLEntry", {"netmask": "192.0.2.0/24"}) == (200, {"status": "ok"})
    assert server.command("delBLEntry", {"netmask": "192.0.2.0/24"})[0] == 200  # absent: ok
    _code, body = server.command("allow", {"login": "x@example.org", "remote": "192.0.2.9"})
    assert body["status"] == 0


def test_native_api_and_password_never_stored(server: RempartProcess, tmp_path: Path) -> None:
    secret = "Unique-Pa55word-Marker"
    body = {
        "login": "Carol@Example.org",
        "ip": "2001:db8::7",
        "protocol": "web",
        "password": secret,
        "user_agent": "Mozilla/5.0",
    }
    for _ in range(4):
        assert server.request("POST", "/v1/report", {**body, "success": False})[0] == 200
    code, verdict = server.request("POST", "/v1/decide", body)
    assert code == 200
    assert verdict["verdict"] == "delay" and verdict["delay_s"] > 0
    assert verdict["reasons"][0]["code"] == "ip_login_failures"
    server.stop()  # flushes the journal
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


@pytest.mark.parametrize(
    ("path", "payload", "status", "fragment"),
    [
        ("/?command=allow", b"{not json", 400, "malformed JSON"),
        ("/?command=allow", b"[1,2]", 400, "JSON object"),
        ("/?command=allow", b'{"remote":"1.2.3.4"}', 400, "missing field 'login'"),
        ("/?command=allow", b'{"login":5,"remote":"1.2.3.4"}', 400, "must be a string"),
        ("/?command=allow", b'{"login":"a","remote":"1.2.3.999"}', 400, "not an IP"),
        ("/?command=allow", b'{"login":"' + b"a" * 1100 + b'","remote":"1.2.3.4"}', 400, "1024"),
        ("/?command=report", b'{"login":"a","remote":"1.2.3.4"}', 400, "'success'"),
        ("/?command=report", b'{"login":"a","remote":"1.2.3.4","success":"maybe"}', 400, "boolean"),
        ("/?command=nope", b"{}", 404, "unknown command"),
        ("/?command=addBLEntry", b'{"netmask":"300.0.0.0/8"}', 400, "not a network"),
        ("/?command=addBLEntry", b'{"ip":"1.2.3.4","expire_secs":-5}', 400, "between 0"),
        ("/?command=reset", b"{}", 400, "No ip, login or ja3"),
        ("/v1/decide", b'{"login":"a","ip":"1.2.3.4","protocol":"gopher"}', 400, "protocol"),
        ("/v1/decide", b'{"login":"a","ip":"1.2.3.4","password":7}', 400, "password"),
        ("/v1/decide", b"", 400, "empty body"),
        ("/v1/nothing", b"{}", 404, "no such path"),
    ],
)
def test_bad_input_gets_a_clear_4xx(
    server: RempartProcess, path: str, payload: bytes, status: int, fragment: str
) -> None:
    code, body = server.request("POST", path, raw=payload)
    assert code == status, body
    assert fragment in body["error"]
    assert server.request("GET", "/?command=ping")[0] == 200  # still serving


def test_auth_and_size_limits(server: RempartProcess) -> None:
    code, body = server.request(
        "POST", "/?command=allow", {"login": "a", "remote": "1.2.3.4"}, password="wrong"
    )
    assert code == 401 and "wrong API password" in body["error"]
    code, _ = server.request("POST", "/?command=allow", {}, password=None)
    assert code == 401
    code, body = server.request("POST", "/?command=allow", raw=b"{" + b" " * 70000 + b"}")
    assert code == 413
    answer = raw_request(server.port, b"GARBAGE / HTTP/9\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")
    assert server.request("GET", "/?command=ping")[0] == 200
    conn = http.client.HTTPConnection("127.0.0.1", server.port)
    conn.request("GET", "/metrics")
    metrics = conn.getresponse().read().decode()
    assert "rempart_decisions_total" in metrics


def test_a_body_over_the_limit_is_refused_as_soon_as_it_is_known(server: RempartProcess) -> None:
    """A Content-Length over the limit is answered 413 at the headers, and a chunked body once it
    passes the limit: not after a client that never finishes has held the connection open."""
    auth = base64.b64encode(f"wforce:{PASSWORD}".encode()).decode()
    head = f"POST /?command=allow HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n"
    announced = (head + "Content-Length: 100000000\r\n\r\n").encode() + b"{" * 10
    chunk = b"%x\r\n%s\r\n" % (8192, b" " * 8192)
    chunked = (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + chunk * 9  # unfinished
    for payload in (announced, chunked):
        started = time.monotonic()
        answer = raw_request(server.port, payload)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
        assert b"body larger than 65536 bytes" in answer
        assert time.monotonic() - started < 3  # the header timeout would take 10 s
    assert server.request("GET", "/?command=ping")[0] == 200


def test_wforce_api_errors_have_wforce_shape(server: RempartProcess) -> None:
    """Every error on the wforce routes, the routing and password refusals included, carries
    wforce's {"status": "failure", "reason": ...} (and Rempart's `error` beside it)."""
    cases = [
        ("POST", "/?command=nosuch", PASSWORD, 404, "unknown command 'nosuch'"),
        ("GET", "/?command=allow", PASSWORD, 405, "allow needs POST"),
        ("POST", "/?command=allow", "wrong", 401, "wrong API password"),
        ("POST", "/command/allow", None, 401, "authentication required"),
    ]
    for method, path, password, status, reason in cases:
        code, body = server.request(method, path, {} if method == "POST" else None, password)
        assert code == status, body
        assert body["status"] == "failure" and reason in body["reason"], body
        assert reason in body["error"]
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("POST", "/?command=allow", b"{}")
    answer = conn.getresponse()
    assert answer.status == 401 and answer.getheader("WWW-Authenticate", "").startswith("Basic")
    # The native API keeps its own shape.
    code, body = server.request("POST", "/v1/decide", {}, password="wrong")
    assert code == 401 and body == {"error": "wrong API password", "status": 401}


def test_block_entries_and_familiarity_survive_restart(server: RempartProcess) -> None:
    server.command(
        "addBLEntry", {"login": "mallory@example.org", "expire_secs": 3600, "reason": "fraud"}
    )
    server.command(
        "report",
        {
            "login": "dave@example.org",
            "remote": "198.51.100.20",
            "pwhash": "0aaa",
            "success": True,
            "policy_reject": False,
        },
    )
    server.restart()
    _, body = server.command("allow", {"login": "mallory@example.org", "remote": "192.0.2.1"})
    assert body["status"] == -1
    _, explained = server.request(
        "POST",
        "/v1/explain",
        {"login": "dave@example.org", "ip": "198.51.100.33", "protocol": "imap"},
    )
    assert explained["signals"]["familiar_network"] is True


def test_generated_password_file_and_journal_cli(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REMPART_API_PASSWORD"}
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rempart", "serve", "--port", "0", "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    proc.stdout.readline()
    proc.terminate()
    proc.wait(10)
    password = (data / "api-password").read_text().strip()
    assert password in first
    assert stat.S_IMODE((data / "api-password").stat().st_mode) == 0o600
    assert stat.S_IMODE((data / "fingerprint.key").stat().st_mode) == 0o600

    server = RempartProcess(data).start()
    server.command("allow", {"login": "eve@example.org", "remote": "203.0.113.5"})
    server.command(
        "report", {"login": "eve@example.org", "remote": "203.0.113.5", "success": False}
    )
    server.command("allow", {"login": "frank@example.org", "remote": "203.0.113.6"})
    server.stop()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "rempart",
            "journal",
            "--data-dir",
            str(data),
            "--login",
            "EVE@example.org",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["kind"] for r in records] == ["decision", "report"]
    assert {r["login"] for r in records} == {"eve@example.org"}
    verify = subprocess.run(
        [sys.executable, "-m", "rempart", "journal", "--data-dir", str(data), "verify"],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0 and "intact: 3 records" in verify.stdout
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "rempart",
            "journal",
            "--data-dir",
            str(data),
            "--since",
            "yesterday-ish",
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "--since" in bad.stderr
