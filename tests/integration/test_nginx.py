"""A real nginx (Debian's package, auth_request) in front of a tiny app, asking a real
`rempart serve`, which tails nginx's log of the login location to learn the outcomes.

Clients connect from distinct loopback addresses (127.0.0.2, 127.0.0.66...); nginx sees them
as $remote_addr and tells Rempart in X-Real-IP, which Rempart believes from nginx only.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rempart.adapters.nginx import nginx_config
from tests.conftest import need
from tests.integration.rig import PASSWORD, RempartProcess, free_port

pytestmark = [pytest.mark.timeout(60)]

USERS = {"alice@example.org": "correct-horse", "bob@example.org": "tr0ub4dor"}
HOME, ATTACKER = "127.0.0.2", "127.0.0.66"


def nginx_available() -> tuple[bool, str]:
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if binary is None:
        return False, "install Debian's nginx (apt-get install nginx)"
    version = subprocess.run([binary, "-V"], capture_output=True, text=True, check=False).stderr
    if "--with-http_auth_request_module" not in version:
        return False, f"{binary} is built without the auth_request module"
    return True, binary


class App(ThreadingHTTPServer):
    """The protected application: HTTP Basic login against USERS; remembers what nginx sent."""

    daemon_threads = True

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        super().__init__(("127.0.0.1", 0), _AppHandler)


class _AppHandler(BaseHTTPRequestHandler):
    server: App

    def do_GET(self) -> None:
        self.server.seen.append({k.lower(): v for k, v in self.headers.items()})
        user, _, password = ("", "", "")
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        ok = USERS.get(user) == password
        body = b"welcome\n" if ok else b"wrong login or password\n"
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class NginxRig:
    """nginx with its own prefix, configuration and logs in a temporary directory."""

    def __init__(self, root: Path, snippet: str) -> None:
        ok, binary = nginx_available()
        need("nginx", ok, binary)
        self.binary = binary
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        temp = "\n".join(
            f"    {name}_temp_path {root}/{name};"
            for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (root / "nginx.conf").write_text(
            f"worker_processes 1;\nerror_log {root}/error.log info;\n"
            f"events {{ worker_connections 128; }}\n"
            f"http {{\n    access_log off;\n{temp}\n{snippet}\n}}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, port: int) -> NginxRig:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "-p",
                f"{self.root}/",
                "-c",
                str(self.root / "nginx.conf"),
                "-e",
                str(self.root / "error.log"),
                "-g",
                f"daemon off; pid {self.root}/nginx.pid;",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"nginx exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}"
                )
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                return self
            time.sleep(0.05)
        raise RuntimeError("nginx did not start: " + self.error_log())

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None

    def error_log(self) -> str:
        path = self.root / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


def get(
    port: int,
    source: str,
    login: str = "",
    password: str = "",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """GET /login through nginx from a chosen loopback source address."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    hdrs = dict(headers or {})
    if login:
        hdrs["Authorization"] = "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()
    try:
        conn.request("GET", "/login", headers=hdrs)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


SPRAY = """
[[policy.rules]]
name = "spray_pattern"
when = "failed_logins(ip, '1h') >= 3 and not shared_ip"
action = "deny"
block = {{ scope = "ip", ttl = "1h" }}
message = "Too many different accounts tried from your address. Try again later."

[[policy.rules]]
name = "confirm_after_failure"
when = "failures(login, '1h') >= 1 and failures(ip, '1h') <= 1"
action = "step_up"
message = "Confirm it is you."

[tail]
files = [{{ path = "{log}", parser = "nginx" }}]
poll_seconds = 0.1
start_at = "start"
"""


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[RempartProcess, NginxRig, App, int, Path]]:
    ok, why = nginx_available()
    need("nginx", ok, why)
    app = App()
    threading.Thread(target=app.serve_forever, daemon=True).start()
    login_log = tmp_path / "nginx" / "login.log"
    rempart = RempartProcess(tmp_path / "rempart-data", SPRAY.format(log=login_log)).start()
    port = free_port()
    snippet = nginx_config(
        rempart=f"127.0.0.1:{rempart.port}",
        api_password=PASSWORD,
        location="/login",
        upstream=f"http://127.0.0.1:{app.server_address[1]}",
        listen=f"127.0.0.1:{port}",
        access_log=str(login_log),
    )
    nginx = NginxRig(tmp_path / "nginx", snippet)
    try:
        nginx.start(port)
        yield rempart, nginx, app, port, login_log
    finally:
        nginx.stop()
        rempart.stop()
        app.shutdown()


def blocked_ips(rempart: RempartProcess) -> list[str]:
    status, body = rempart.request("GET", "/?command=getBL")
    assert status == 200
    # wforce's shape: one object per entry, an address as its /32 (/128).
    return [entry["ip"].split("/")[0] for entry in body["bl_entries"] if "ip" in entry]


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_spraying_source_refused_by_nginx_legit_user_passes(stack) -> None:
    rempart, _, app, port, login_log = stack

    status, _, body = get(port, HOME, "alice@example.org", "correct-horse")
    assert (status, body) == (200, b"welcome\n")
    assert app.seen[-1]["x-rempart-verdict"] == "allow"

    # One source tries several accounts: the app says 401, nginx logs it, Rempart's tailer
    # reports the failures and its spray rule puts the source on the block list.
    # Five for a rule at three: the keyed distinct count may merge two logins (about 1 % of
    # data directories' keys with three), and the tailer may block before the last ones.
    statuses = [get(port, ATTACKER, f"user{i}@example.org", "123456")[0] for i in range(5)]
    assert statuses[:3] == [401] * 3 and set(statuses) <= {401, 403}, statuses
    wait_for(lambda: ATTACKER in blocked_ips(rempart))

    status, headers, _ = get(port, ATTACKER, "bob@example.org", "tr0ub4dor")
    assert status == 403, headers
    assert headers["x-rempart-reason"] == "spray_pattern"
    assert "Try again later" in headers["x-rempart-message"]

    # Claiming another address does not help: nginx overwrites X-Real-IP with the peer, and
    # X-Forwarded-For is not believed.
    spoof = {"X-Real-IP": HOME, "X-Forwarded-For": HOME}
    assert get(port, ATTACKER, "bob@example.org", "tr0ub4dor", spoof)[0] == 403
    # Neither does asking Rempart directly from an untrusted address.
    conn = http.client.HTTPConnection(
        "127.0.0.1", rempart.port, timeout=5, source_address=(ATTACKER, 0)
    )
    token = base64.b64encode(f"x:{PASSWORD}".encode()).decode()
    conn.request(
        "GET", "/v1/nginx/auth", headers={"Authorization": f"Basic {token}", "X-Real-IP": HOME}
    )
    assert conn.getresponse().status == 403
    conn.close()

    # The legitimate user on another address is unaffected, and the app saw nothing of the
    # refused attempts.
    seen_before = len(app.seen)
    status, _, body = get(port, HOME, "alice@example.org", "correct-horse")
    assert (status, body) == (200, b"welcome\n")
    assert len(app.seen) == seen_before + 1

    # Every request of the login location is in the log the tailer reads.
    lines = login_log.read_text().splitlines()
    assert lines[0].startswith(
        f'rempart ip={HOME} login="alice@example.org" status=200 verdict=allow'
    )
    assert any(f"ip={ATTACKER}" in line and "status=403 verdict=deny" in line for line in lines)

    # One failure on carol's account from home: the next try must be confirmed (step_up is a
    # 401 whose challenge nginx hands to the client; no Basic prompt).
    assert get(port, HOME, "carol@example.org", "guess")[0] == 401
    carol = {"login": "carol@example.org", "ip": HOME, "protocol": "web"}
    wait_for(
        lambda: "confirm_after_failure" in rempart.request("POST", "/v1/explain", carol)[1]["rules"]
    )
    status, headers, _ = get(port, HOME, "carol@example.org", "guess")
    assert status == 401
    assert headers["www-authenticate"].startswith("Rempart-Step-Up")
    assert headers["x-rempart-message"] == "Confirm it is you."

    # Rempart down: the generated configuration lets logins through (fail-open) and says so.
    rempart.stop()
    status, _, body = get(port, HOME, "alice@example.org", "correct-horse")
    assert (status, body) == (200, b"welcome\n")
    assert app.seen[-1]["x-rempart-verdict"] == "unavailable"


def test_api_password_is_required(tmp_path: Path) -> None:
    ok, why = nginx_available()
    need("nginx", ok, why)
    app = App()
    threading.Thread(target=app.serve_forever, daemon=True).start()
    rempart = RempartProcess(tmp_path / "rempart-data").start()
    port = free_port()
    snippet = nginx_config(
        rempart=f"127.0.0.1:{rempart.port}",
        api_password="not-the-password",
        location="/login",
        upstream=f"http://127.0.0.1:{app.server_address[1]}",
        listen=f"127.0.0.1:{port}",
        access_log=str(tmp_path / "login.log"),
        fail_open=False,
    )
    nginx = NginxRig(tmp_path / "nginx", snippet)
    try:
        nginx.start(port)
        status, headers, _ = get(port, HOME, "alice@example.org", "correct-horse")
        assert status == 500  # fail-closed, and no password prompt for the user
        assert "www-authenticate" not in headers
        assert app.seen == []
        wait_for(lambda: "auth request unexpected status: 407" in nginx.error_log())
        # Directly, without credentials: 407 with the reason.
        code, body = rempart.request(
            "GET", "/v1/nginx/auth", password=None, headers={"X-Real-IP": HOME}
        )
        assert code == 407 and "API password" in body["error"]
    finally:
        nginx.stop()
        rempart.stop()
        app.shutdown()
