"""Pipelined floods against a real `rempart serve`: a client that sends without reading its
answers gets a fair share of the loop, not all of it.

Twenty keep-alive connections pipeline authenticated `allow` requests as fast as the kernel
takes them and never read an answer (a black-box audit found this stalled everyone: one read
brings a thousand requests, all answered before anyone else's, and the probe below waited up to
4 s, Dovecot's 2 s policy timeout failing every login open). Meanwhile a Dovecot-shaped client
asks once every 50 ms on its own connection: every answer comes, none slower than 0.5 s.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import socket
import threading
import time
from pathlib import Path

from rempart.process import ServeProcess

PASSWORD = "pipelining-flood-password-0123"
AUTH = "Basic " + base64.b64encode(f"wforce:{PASSWORD}".encode()).decode()
BODY = b'{"login":"pipe@example.org","remote":"10.8.8.8","pwhash":"0abc","protocol":"imap"}'
REQUEST = (
    f"POST /?command=allow HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH}\r\n"
    f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
).encode() + BODY
FLOOD_S = 6.0


def _flood(port: int, connections: int, stop: threading.Event, sent: list[int]) -> None:
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(connections)]
    burst = REQUEST * 50
    for sock in socks:
        sock.setblocking(False)
    try:
        while not stop.is_set():
            for sock in socks:
                with contextlib.suppress(BlockingIOError):
                    sent[0] += sock.send(burst) // len(REQUEST)
            time.sleep(0.005)
    finally:
        for sock in socks:
            sock.close()


def test_pipelining_clients_that_never_read_do_not_stall_the_others(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path / "data", "", PASSWORD).start()
    try:
        stop, sent = threading.Event(), [0]
        flood = threading.Thread(target=_flood, args=(server.port, 20, stop, sent), daemon=True)
        body = json.dumps(
            {
                "login": "probe@example.org",
                "remote": "10.99.0.1",
                "pwhash": "0d1",
                "protocol": "imap",
            }
        )
        headers = {"Authorization": AUTH, "Content-Type": "application/json"}
        probe = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        latencies: list[float] = []
        flood.start()
        time.sleep(0.5)
        started = time.monotonic()
        while time.monotonic() - started < FLOOD_S:
            t = time.perf_counter()
            probe.request("POST", "/?command=allow", body, headers)
            answer = probe.getresponse()
            assert answer.status == 200
            assert json.loads(answer.read())["status"] == 0
            latencies.append(time.perf_counter() - t)
            time.sleep(max(0.0, 0.05 - (time.perf_counter() - t)))
        stop.set()
        flood.join(10)
        assert sent[0] > 50_000  # the flood was one: far more than the loop answers in 6 s
        latencies.sort()
        assert len(latencies) >= 0.8 * FLOOD_S / 0.05, len(latencies)
        assert latencies[-1] < 0.5, f"slowest answer {latencies[-1]:.2f} s"
        # And once the flood's connections are gone, the server answers at once.
        probe.request("POST", "/?command=allow", body, headers)
        assert probe.getresponse().status == 200
    finally:
        server.stop()
