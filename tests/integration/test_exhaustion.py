"""Connection exhaustion against a real `rempart serve` (issue 13 item 4).

Close to 20,000 idle and partial-header connections from 127.0.0.1 (as many as this process's
descriptor limit allows), while a trusted client on 127.0.0.2 keeps asking over keep-alive and
over new connections: its answers keep coming at its usual latency, the server logs the limit and
counts it in /metrics, and the timeouts close every flood connection.
"""

from __future__ import annotations

import contextlib
import resource
import selectors
import socket
import statistics
import threading
import time
from pathlib import Path

import pytest

from rempart.process import ServeProcess

TARGET = 20_000
HEADER_TIMEOUT = 10.0
PING = b"GET /healthz HTTP/1.1\r\nHost: rempart\r\n\r\n"


def _raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(rest) < length:
        rest += sock.recv(4096)
    return head


class TrustedClient(threading.Thread):
    """Dovecot's stand-in: a keep-alive connection and new connections, from 127.0.0.2."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.samples: list[tuple[float, str, float]] = []  # (when, kind, seconds)
        self.failures: list[str] = []
        self.stop = threading.Event()

    def _connect(self) -> socket.socket:
        sock = socket.socket()
        sock.settimeout(5)
        sock.bind(("127.0.0.2", 0))
        sock.connect(("127.0.0.1", self.port))
        return sock

    def run(self) -> None:
        keep = self._connect()
        beat = 0
        while not self.stop.is_set():
            for kind in ("keepalive", "new") if beat % 5 == 0 else ("keepalive",):
                started = time.monotonic()
                try:
                    if kind == "new":
                        with self._connect() as sock:
                            sock.sendall(PING)
                            head = _read_response(sock)
                    else:
                        keep.sendall(PING)
                        head = _read_response(keep)
                    assert head.startswith(b"HTTP/1.1 200"), head[:40]
                except (OSError, AssertionError) as exc:
                    self.failures.append(f"{kind}: {exc!r}")
                    if kind == "keepalive":
                        keep.close()
                        keep = self._connect()
                    continue
                self.samples.append((started, kind, time.monotonic() - started))
            beat += 1
            time.sleep(0.02)
        keep.close()

    def latencies(self, kind: str, since: float, until: float) -> list[float]:
        return [s for when, k, s in self.samples if k == kind and since <= when < until]


def _metric(port: int, name: str) -> float:
    with socket.socket() as sock:
        sock.settimeout(5)
        sock.bind(("127.0.0.2", 0))
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    for line in data.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


@pytest.mark.parametrize("limit", ["ceiling", "per_client"])
def test_twenty_thousand_connections_from_one_address(tmp_path: Path, limit: str) -> None:
    """`ceiling`: the per-client cap lifted, so the global ceiling and the trusted headroom
    act; `per_client`: the defaults, where the cap of 256 per address acts first."""
    nofile = _raise_nofile()
    flood_size = min(TARGET, nofile - 300)  # descriptors for the trusted client, pipes, files
    config = (
        "[server]\n"
        f"header_timeout = {HEADER_TIMEOUT}\n"
        "idle_timeout = 5.0\n"
        + ("max_connections_per_client = 0\n" if limit == "ceiling" else "")
        + 'trusted_clients = ["127.0.0.2"]\n'
    )
    server = ServeProcess(tmp_path / "data", config, password="exhaustion-test-pw").start()
    trusted = TrustedClient(server.port)
    flood: list[socket.socket] = []
    try:
        trusted.start()
        time.sleep(1.5)
        baseline_end = time.monotonic()
        for i in range(flood_size):
            sock = socket.socket()
            # Explicit source ports: letting the kernel pick 20,000 of them toward one
            # destination costs it a scan per connect (42 s here instead of 3 s).
            with contextlib.suppress(OSError):
                sock.bind(("127.0.0.1", 60999 - i))
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", server.port))
            flood.append(sock)
        # Half of them send the start of a request, once connected, and never finish it.
        selector = selectors.DefaultSelector()
        for sock in flood[1::2]:
            selector.register(sock, selectors.EVENT_WRITE)
        partial = 0
        while selector.get_map() and time.monotonic() < baseline_end + 20:
            for key, _ in selector.select(timeout=0.5):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                selector.unregister(sock)
                try:
                    sock.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                    partial += 1
                except OSError:
                    pass  # refused at once by the ceiling
        selector.close()
        flood_end = time.monotonic()
        time.sleep(1.0)
        open_during = _metric(server.port, "rempart_http_connections_open")
        ceiling = _metric(server.port, "rempart_http_connections_ceiling")
        refused = _metric(server.port, f'rempart_http_connections_refused_total{{limit="{limit}"}}')

        # Every flood connection is closed by the server: at once (ceiling) or by the timeout.
        selector = selectors.DefaultSelector()
        for sock in flood:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        pending = len(flood)
        deadline = flood_end + HEADER_TIMEOUT + 10
        while pending and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.5):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                with contextlib.suppress(OSError):
                    sock.recv(4096)
                selector.unregister(sock)
                pending -= 1
        all_closed = time.monotonic()
        selector.close()
        trusted.stop.set()
        trusted.join(10)
        timed_out = _metric(
            server.port, 'rempart_http_connections_timed_out_total{timeout="header"}'
        )
        open_after = _metric(server.port, "rempart_http_connections_open")
    finally:
        for sock in flood:
            sock.close()
        trusted.stop.set()
        server.stop()

    base_keep = trusted.latencies("keepalive", 0, baseline_end)
    base_new = trusted.latencies("new", 0, baseline_end)
    # From the first flood connection until the last one is closed.
    flood_keep = trusted.latencies("keepalive", baseline_end, all_closed)
    flood_new = trusted.latencies("new", baseline_end, all_closed)
    log = "".join(server.output)
    figures = {
        "flood connections": flood_size,
        "flood seconds": round(flood_end - baseline_end, 2),
        "partial-header connections": partial,
        "open during flood": open_during,
        "ceiling": ceiling,
        "limit": limit,
        "refused": refused,
        "closed by header timeout": timed_out,
        "seconds after flood until all closed": round(all_closed - flood_end, 2),
        "trusted keep-alive median ms before/during": (
            round(statistics.median(base_keep) * 1000, 2),
            round(statistics.median(flood_keep) * 1000, 2),
        ),
        "trusted keep-alive max ms during": round(max(flood_keep) * 1000, 2),
        "trusted new-connection median ms before/during": (
            round(statistics.median(base_new) * 1000, 2),
            round(statistics.median(flood_new) * 1000, 2),
        ),
        "trusted requests during flood": len(flood_keep) + len(flood_new),
        "trusted failures": trusted.failures,
    }
    print(figures)
    assert not trusted.failures, figures
    assert pending == 0, figures
    assert refused > 0 and timed_out > 0, figures
    assert refused + timed_out >= flood_size, figures
    assert open_after <= 2, figures
    assert "connection limit: refused" in log, log[-2000:]
    if limit == "per_client":
        assert open_during <= 256 + 2, figures
    # "Its usual latency": the median stays within a few milliseconds of the calm one.
    assert statistics.median(flood_keep) < statistics.median(base_keep) * 5 + 0.01, figures
    assert statistics.median(flood_new) < statistics.median(base_new) * 5 + 0.02, figures
