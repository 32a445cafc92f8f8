"""Webhooks: engine events delivered as signed journal records to a real local HTTP receiver."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from rempart.engine.engine import Engine
from rempart.engine.events import FetchersLearned
from rempart.model import Attempt, Protocol
from rempart.ops.webhooks import Webhook, WebhookSender, sign


def test_posture_changes_arrive_signed_and_decisions_do_not() -> None:
    received: list[tuple[bytes, str]] = []
    done = threading.Event()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, self.headers["X-Rempart-Signature"]))
            self.send_response(204)
            self.end_headers()
            done.set()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    sender = WebhookSender([Webhook(url, "s3cret", frozenset({"posture"}))])
    engine = Engine.in_memory()
    engine.listeners.append(sender.listener)
    try:
        engine.decide(Attempt("a@example.org", "192.0.2.1", Protocol.IMAP), 1.0)
        sender.listener(
            FetchersLearned(1.5, "{}")
        )  # learned state: no record, no hook (once a TypeError)
        engine.set_posture(Protocol.IMAP, "strict", "ann", "wave", now=2.0, ttl=60)
        assert done.wait(10)
    finally:
        sender.close()
        server.shutdown()
    assert len(received) == 1
    body, signature = received[0]
    assert signature == sign("s3cret", body)
    doc = json.loads(body)
    assert doc["type"] == "posture" and doc["to"] == "strict" and doc["by"] == "ann"
    assert doc["held"] is True and doc["until"] == 62.0 and doc["source"] == "operator"
