"""Real HAProxy fed by a real `rempart serve`: a source blocked at the login layer gets 403 from
HAProxy within a second, without the login backend (nor Rempart) seeing its next request; other
sources pass, an allow entry wins, expiry lifts the block, a restarted HAProxy is resynced."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import tomli_w

from benchmarks.shed.experiment import _port_open, haproxy_binary, wait_for
from rempart.process import free_port
from rempart.shed.blocklist_map import BLOCKLIST_MAP
from rempart.shed.config import parse_shed
from rempart.shed.haproxy_config import render
from rempart.shed.maps import ensure_maps
from rempart.shed.runtime import HAProxyRuntime
from tests.conftest import need
from tests.integration.rig import PASSWORD, RempartProcess

pytestmark = [pytest.mark.haproxy, pytest.mark.timeout(120)]

ATTACKER, OTHER, LATE, SPRAYER = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"


class LoginBackend:
    """The protected login application: asks Rempart (`allow`) for every login request and
    records each one it receives, so a test can tell whether a request got past HAProxy."""

    def __init__(self, rempart_port: Callable[[], int]) -> None:
        self.seen: list[str] = []
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                status = 200
                if url.path == "/login":
                    query = parse_qs(url.query)
                    source, user = query["ip"][0], query.get("user", [""])[0]
                    backend.seen.append(source)
                    status = backend.sign_in(source, user)
                body = b"backend\n"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.rempart_port = rempart_port
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def sign_in(self, source: str, user: str) -> int:
        """200 for a login Rempart allows; 429 when Rempart denies it; with a `user`, the
        password is wrong: 401 and the failure reported (a password spray); 503 when Rempart
        cannot be reached."""
        login = user or "user@example.org"
        try:
            answer = self.wforce("allow", {"login": login, "remote": source})
        except OSError:
            return 503  # Rempart is down
        if int(answer["status"]) < 0:
            return 429
        if not user:
            return 200
        report = {"login": login, "remote": source, "success": False, "pwhash": "0bad"}
        self.wforce("report", {**report, "policy_reject": False})
        return 401

    def wforce(self, command: str, body: dict[str, Any]) -> Any:
        conn = http.client.HTTPConnection("127.0.0.1", self.rempart_port(), timeout=5)
        try:
            token = base64.b64encode(f"wforce:{PASSWORD}".encode()).decode()
            headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
            conn.request("POST", f"/?command={command}", body=json.dumps(body), headers=headers)
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def login(port: int, source: str, user: str = "") -> int:
    """A login request through HAProxy from `source`; its HTTP status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
    try:
        conn.request("GET", f"/login?ip={source}&user={user}")
        answer = conn.getresponse()
        answer.read()
        return answer.status
    finally:
        conn.close()


def until(port: int, source: str, status: int, within: float) -> float:
    """Seconds until a login from `source` gets `status` (AssertionError after `within`)."""
    started = time.monotonic()
    while True:
        got = login(port, source)
        elapsed = time.monotonic() - started
        if got == status:
            return elapsed
        assert elapsed < within, f"{source}: still {got} after {elapsed:.2f} s, wanted {status}"
        time.sleep(0.02)


def decisions(server: RempartProcess) -> float:
    status, text = server.request("GET", "/metrics", password=None)
    assert status == 200
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in str(text).splitlines()
        if line.startswith("rempart_decisions_total{")
    )


def metric(server: RempartProcess, name: str) -> float:
    text = str(server.request("GET", "/metrics", password=None)[1])
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "_total "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


class Proxy:
    def __init__(self, binary: str, cfg: Path, port: int, log: Path) -> None:
        self.binary, self.cfg, self.port, self.log = binary, cfg, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [self.binary, "-db", "-f", str(self.cfg)], stdout=out, stderr=out
            )
        wait_for(lambda: _port_open(self.port) or self.proc.poll() is not None, "haproxy")
        assert self.proc.poll() is None, self.log.read_text()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[tuple[RempartProcess, Proxy, LoginBackend]]:
    binary = haproxy_binary()
    need("haproxy", binary is not None, "install Debian's haproxy (apt-get install haproxy)")
    assert binary is not None
    holder: dict[str, RempartProcess] = {}
    backend = LoginBackend(lambda: holder["server"].port)
    front = free_port()
    shed = {
        "interval": 0.5,
        "haproxy": {
            "bind": f"127.0.0.1:{front}",
            "runtime_socket": str(tmp_path / "haproxy.sock"),
            "map_dir": str(tmp_path / "maps"),
        },
        "services": [{"name": "web", "upstream": f"127.0.0.1:{backend.port}"}],
        "blocklist": {"sweep_interval": 0.2, "check_interval": 0.5},
    }
    settings = parse_shed({k: v for k, v in shed.items() if k != "blocklist"})
    ensure_maps(Path(settings.haproxy.map_dir), ["web"])
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(render(settings))
    proxy = Proxy(binary, cfg, front, tmp_path / "haproxy.log")
    proxy.start()
    server = RempartProcess(tmp_path / "data", tomli_w.dumps({"shed": shed}))
    holder["server"] = server
    try:
        server.start()
        yield server, proxy, backend
    finally:
        server.stop()
        proxy.stop()
        backend.close()


def test_login_layer_block_reaches_haproxy_within_a_second(
    edge: tuple[RempartProcess, Proxy, LoginBackend],
) -> None:
    server, proxy, backend = edge
    port = proxy.port
    assert login(port, ATTACKER) == 200 and backend.seen == [ATTACKER]

    blocked_at = time.monotonic()
    status, _ = server.command("addBLEntry", {"ip": ATTACKER, "expire_secs": 8, "reason": "t"})
    assert status == 200
    until(port, ATTACKER, 403, within=1.0)
    assert time.monotonic() - blocked_at < 1.0  # from the login layer's block to HAProxy's 403
    seen, asked = len(backend.seen), decisions(server)
    for _ in range(5):
        assert login(port, ATTACKER) == 403  # refused by HAProxy itself...
    assert len(backend.seen) == seen  # ...the login backend never saw these
    assert decisions(server) == asked  # ...nor did Rempart
    assert login(port, OTHER) == 200  # another source passes

    # An allow entry wins at the edge as it does at the login layer, and its removal restores.
    server.command("addWLEntry", {"ip": ATTACKER, "expire_secs": 60, "reason": "t"})
    assert until(port, ATTACKER, 200, within=1.0) < 1.0
    server.command("delWLEntry", {"ip": ATTACKER})
    assert until(port, ATTACKER, 403, within=1.0) < 1.0

    # A network: every address in it is refused, the neighbours are not.
    server.command("addBLEntry", {"netmask": "127.0.7.0/24", "expire_secs": 600, "reason": "t"})
    until(port, "127.0.7.9", 403, within=1.0)
    assert login(port, "127.0.8.1") == 200

    # Expiry lifts the block without anyone removing it.
    until(port, ATTACKER, 200, within=12.0)
    lifted_after = time.monotonic() - blocked_at
    assert 7.5 < lifted_after < 9.5, lifted_after

    map_file = Path(server.data_dir).parent / "maps" / BLOCKLIST_MAP
    assert map_file.read_text() == "127.0.7.0/24 1\n"  # what a reload starts from
    assert metric(server, "rempart_haproxy_blocklist_added") == 3  # block, again, network
    assert metric(server, "rempart_haproxy_blocklist_removed") == 2  # allowed, expired
    assert metric(server, "rempart_haproxy_blocklist_entries") == 1


def test_changes_while_haproxy_is_down_are_applied_when_it_is_back(
    edge: tuple[RempartProcess, Proxy, LoginBackend],
) -> None:
    server, proxy, _backend = edge
    port = proxy.port
    server.command("addBLEntry", {"netmask": "127.0.7.0/24", "expire_secs": 600, "reason": "t"})
    until(port, "127.0.7.9", 403, within=1.0)
    proxy.stop()
    server.command("delBLEntry", {"netmask": "127.0.7.0/24"})
    server.command("addBLEntry", {"ip": LATE, "expire_secs": 600, "reason": "t"})
    time.sleep(1.0)  # the feed tries, fails, keeps the changes
    assert metric(server, "rempart_haproxy_blocklist_failures") >= 1
    assert metric(server, "rempart_haproxy_blocklist_in_sync") == 0
    proxy.start()  # a new HAProxy process: it loads blocklist.map, the feed resyncs
    until(port, LATE, 403, within=2.0)
    until(port, "127.0.7.9", 200, within=2.0)
    wait_for(lambda: metric(server, "rempart_haproxy_blocklist_in_sync") == 1, "resync", 3.0)
    assert any("blocklist" in line and "retrying" in line for line in server.output)


def test_an_automatic_block_of_the_policy_reaches_haproxy(
    edge: tuple[RempartProcess, Proxy, LoginBackend],
) -> None:
    server, proxy, backend = edge
    port = proxy.port
    statuses = []
    for n in range(60):  # a password spray from one address, through HAProxy
        statuses.append(login(port, SPRAYER, user=f"user{n}@example.org"))
        if statuses[-1] == 429:
            break
    denied_at = time.monotonic()
    assert statuses[-1] == 429, statuses  # the login layer denied it and blocked the source
    assert backend.seen[-1] == SPRAYER
    blocked = server.command("getBL")[1]
    assert SPRAYER in json.dumps(blocked), blocked
    until(port, SPRAYER, 403, within=1.0)
    assert time.monotonic() - denied_at < 1.0
    seen = len(backend.seen)
    assert login(port, SPRAYER, user="user999@example.org") == 403
    assert len(backend.seen) == seen
    assert login(port, OTHER) == 200


def test_a_restarted_rempart_resyncs_haproxy_from_its_stored_lists(
    edge: tuple[RempartProcess, Proxy, LoginBackend],
) -> None:
    server, proxy, _backend = edge
    port = proxy.port
    server.command("addBLEntry", {"ip": ATTACKER, "expire_secs": 600, "reason": "t"})
    until(port, ATTACKER, 403, within=1.0)
    server.stop()
    # Meanwhile HAProxy's map drifts: the block is gone, a stranger is refused.
    socket_path = str(Path(server.data_dir).parent / "haproxy.sock")
    map_file = str(Path(server.data_dir).parent / "maps" / BLOCKLIST_MAP)
    runtime = HAProxyRuntime(socket_path)
    asyncio.run(runtime.command(f"clear map {map_file}", f"add map {map_file} {OTHER} 1"))
    assert login(port, ATTACKER) == 503 and login(port, OTHER) == 403  # 503: Rempart is down
    server.start()  # restores its lists; the feed's first exchange is a full resync
    until(port, ATTACKER, 403, within=2.0)
    until(port, OTHER, 200, within=2.0)
