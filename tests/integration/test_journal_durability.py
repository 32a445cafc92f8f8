"""Acknowledged changes survive kill -9 in the journal, against a real `rempart serve`.

List changes (sequential and concurrent, under decision traffic), posture changes and operator
changes are made; the server is killed with SIGKILL right after the last answer, restarted, and
every acknowledged change must be in the journal, with `rempart journal verify` passing. Then
a record is removed by hand (with the chain re-hashed, as a forger would) and verify must fail
naming the entry the state holds but the journal lacks.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import orjson

from rempart.ops.journal import GENESIS, Journal
from rempart.process import ServeProcess

PASSWORD = "durability-test-password-0123"
REMPART = (sys.executable, "-m", "rempart")


class Api:
    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        token = base64.b64encode(f"x:{PASSWORD}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}

    def post(self, path: str, body: dict[str, object]) -> int:
        self.conn.request("POST", path, json.dumps(body), self.headers)
        response = self.conn.getresponse()
        response.read()
        return response.status


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*REMPART, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )


def test_acknowledged_changes_survive_kill_9_and_verify_names_a_removed_one(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    server = ServeProcess(data, "", PASSWORD).start()
    added: list[str] = []
    removed: list[str] = []
    postures: list[tuple[str, str]] = []
    stop_traffic = threading.Event()

    def traffic() -> None:
        api = Api(server.port)
        i = 0
        while not stop_traffic.is_set():
            i += 1
            body = {"login": f"user{i % 50}@example.org", "remote": f"198.51.100.{i % 200}"}
            try:
                api.post("/?command=allow", body)
                report = {**body, "success": i % 3 == 0, "policy_reject": False}
                api.post("/?command=report", report)
            except OSError:  # the server was killed under this traffic
                return

    def concurrent_adds(worker: int, acked: list[str]) -> None:
        api = Api(server.port)
        for j in range(15):
            ip = f"203.0.{worker}.{j}"
            if api.post("/?command=addBLEntry", {"ip": ip, "expire_secs": 3600}) == 200:
                acked.append(ip)

    try:
        runner = threading.Thread(target=traffic, daemon=True)
        runner.start()
        api = Api(server.port)
        for i in range(30):
            ip = f"192.0.2.{i}"
            assert api.post("/?command=addBLEntry", {"ip": ip, "expire_secs": 3600}) == 200
            added.append(ip)
        for ip in added[:5]:
            assert api.post("/?command=delBLEntry", {"ip": ip}) == 200
            removed.append(ip)
        for protocol, level in (("imap", "strict"), ("pop3", "guarded"), ("imap", "guarded")):
            body = {"protocol": protocol, "level": level, "reason": "durability test"}
            assert api.post("/v1/posture", body) == 200
            postures.append((protocol, level))
        env = {"REMPART_OPERATOR_PASSWORD": "a long operator passphrase"}
        for name in ("alice", "bob"):
            done = cli("operator", "add", name, "--data-dir", str(data), env=env)
            assert done.returncode == 0 and "journaled by the running server" in done.stdout, (
                done.stdout + done.stderr
            )
        done = cli("operator", "remove", "bob", "--data-dir", str(data))
        assert "journaled by the running server" in done.stdout, done.stdout + done.stderr
        acked: list[str] = []
        workers = [threading.Thread(target=concurrent_adds, args=(w, acked)) for w in range(6)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert len(acked) == 90
        # The last acknowledged changes, then SIGKILL at once.
        assert (
            api.post("/?command=addBLEntry", {"login": "last@example.org", "expire_secs": 60})
            == 200
        )
        server.kill()
        stop_traffic.set()
        runner.join(10)
        server.start()  # the restart replays nothing from the journal: it must already hold all
        server.stop()
    finally:
        stop_traffic.set()
        server.stop()

    journal = Journal(data / "journal")
    lists = {
        (r["kind"], r["value"]) for r in journal.records(kinds=frozenset({"list_add", "list_del"}))
    }
    for ip in added + acked:
        assert ("list_add", ip) in lists, f"acknowledged block of {ip} missing from the journal"
    for ip in removed:
        assert ("list_del", ip) in lists, f"acknowledged removal of {ip} missing from the journal"
    assert ("list_add", "last@example.org") in lists
    journaled_postures = [
        (r["protocol"], r["to"]) for r in journal.records(kinds=frozenset({"posture"}))
    ]
    assert [p for p in journaled_postures if p in postures] == postures
    operators = [
        (r["kind"], r["operator"])
        for r in journal.records(
            kinds=frozenset({"operator_added", "operator_removed", "operator_password_changed"})
        )
    ]
    assert operators == [
        ("operator_added", "alice"),
        ("operator_added", "bob"),
        ("operator_removed", "bob"),
    ]
    verified = cli("journal", "--data-dir", str(data), "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "every list entry, posture and operator in the state is journaled" in verified.stdout

    # A forger removes the record of one block and re-hashes the chain: the chain is intact,
    # the cross-check is not.
    target = "192.0.2.17"
    _remove_and_rechain(
        data / "journal", lambda r: r.get("kind") == "list_add" and r.get("value") == target
    )
    verified = cli("journal", "--data-dir", str(data), "verify")
    assert verified.returncode != 0
    assert f"block-list entry ip {target}" in verified.stderr
    assert "no record of its addition" in verified.stderr

    # A plain removal breaks the chain, and verify says where.
    _remove_and_rechain(data / "journal", lambda r: r.get("kind") == "posture", rechain=False)
    verified = cli("journal", "--data-dir", str(data), "verify")
    assert verified.returncode != 0 and "sequence jumps" in verified.stderr


def _remove_and_rechain(directory: Path, drop, rechain: bool = True) -> None:  # type: ignore[no-untyped-def]
    """Remove the first record matching `drop`; re-hash the chain after it unless told not to."""
    prev, seq, dropped = GENESIS, 0, False
    for segment in sorted(directory.glob("segment-*.jsonl")):
        out: list[bytes] = []
        for line in segment.read_bytes().splitlines():
            rec = json.loads(line)
            if not dropped and drop(rec):
                dropped = True
                continue
            if rechain:
                seq += 1
                rec.pop("hash")
                rec["seq"], rec["prev"] = seq, prev
                body = orjson.dumps(rec)
                prev = hashlib.sha256(prev.encode() + body).hexdigest()
                line = b'%s,"hash":"%s"}' % (body[:-1], prev.encode())
            out.append(line)
        segment.write_bytes(b"\n".join(out) + b"\n")
    assert dropped
