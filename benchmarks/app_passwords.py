"""App-password cost: in Rempart's decision, and in Dovecot's login path.

Usage: python benchmarks/app_passwords.py [--decisions N] [--logins N]

1. Rempart: the wforce `allow` handler in process (body → Attempt → app-password marking →
   decision → answer) for Dovecot's bodies without app-password attributes, with them before
   the password check (the account holds app passwords), and after it (credential "app"),
   N decisions each over 10,000 accounts of which half hold 3 app passwords; µs per decision,
   best of 5 rounds.
2. Dovecot (needs root and Dovecot with dovecot-sqlite, as the integration rig): IMAP logins
   (new connection, LOGIN, LOGOUT, one at a time) through a real `rempart serve`, with the main
   password (first passdb, SHA512-CRYPT) and with an app password (second passdb: SQLite lookup
   plus Argon2id verification at the configured cost), alternating runs; logins/s, p50, p99.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rempart.config import from_mapping  # noqa: E402
from rempart.httpserver import HttpApp, Request  # noqa: E402
from rempart.server import Service  # noqa: E402

PASSWORD = "bench-password-123"
AUTH = {"authorization": "Basic " + base64.b64encode(b"x:" + PASSWORD.encode()).decode()}


def wforce_context(service: Service) -> object:
    from rempart.adapters.context import WforceContext

    return WforceContext(
        service.engine,
        service.settings.logins,
        service.canonical_login,
        -1,
        service.commit,
        service.stats,
        (8, 32),
        service.app_passwords,
    )


def decision_figures(n: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="apppass-bench-"))
    settings = from_mapping(
        {
            "journal": {"enabled": False},
            "dovecot": {"hash_nonce": "bench-nonce", "hash_truncate_bits": 0},
            "app_passwords": {"argon2_memory_kib": 1024, "argon2_time_cost": 1},
        }
    )
    service = Service(settings, tmp / "data", PASSWORD, leaks=None)
    app = HttpApp(service.router())
    loop = asyncio.new_event_loop()
    store = service.app_passwords
    assert store is not None
    logins = [f"user{i}@example.org" for i in range(10_000)]
    ids: dict[str, str] = {}

    async def fill() -> None:
        for login in logins[::2]:
            for k in range(3):
                item, _ = await store.create(login, f"app {k}", ("imap", "pop3"), 0.0, time.time())
                ids[login] = item.id

    loop.run_until_complete(fill())

    def bodies(kind: str) -> list[bytes]:
        out = []
        for i in range(n):
            login = logins[(i * 2) % len(logins)]  # accounts holding app passwords
            body = {
                "device_id": "",
                "login": login,
                "protocol": "imap",
                "pwhash": "5c" * 32,  # no app password's prefix: the full prefix check
                "remote": f"10.{i % 250}.{(i // 250) % 250}.7",
                "tls": False,
            }
            if kind == "before":
                body["attrs"] = {"credential": "", "app_password": ""}
            elif kind == "app":
                body["attrs"] = {"credential": "app", "app_password": ids[login]}
            out.append(json.dumps(body).encode())
        return out

    figures = {}
    for kind in ("plain", "before", "app"):
        raws = bodies(kind)
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for raw in raws:
                app.dispatch(Request("POST", "/", "command=allow", AUTH, raw, "127.0.0.1"))
            best = min(best, (time.perf_counter() - t0) / n * 1e6)
        figures[kind] = round(best, 2)
    # The marking alone (index lookups), on attempts already parsed.
    from rempart.adapters.wforce import attempt_from

    for kind in ("before", "app"):
        attempts = []
        for raw in bodies(kind)[:10_000]:
            data = json.loads(raw)
            attempts.append(attempt_from(data, wforce_context(service)))
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            now = time.time()
            for attempt in attempts:
                attempt.app_password = False
                store.mark(attempt, now)
            best = min(best, (time.perf_counter() - t0) / len(attempts) * 1e6)
        figures[f"mark_only_{kind}"] = round(best, 2)
    service.close()
    loop.close()
    shutil.rmtree(tmp)
    return figures


def dovecot_figures(logins: int, memory_kib: int, time_cost: int) -> dict[str, dict[str, float]]:
    from tests.integration.rig import DovecotRig, RempartProcess, free_port

    tmp = Path(tempfile.mkdtemp(prefix="apppass-bench-", dir="/tmp"))
    data = tmp / "rempart-data"
    config = (
        f'[app_passwords]\ndovecot_db_group = "dovecot"\nargon2_memory_kib = {memory_kib}\n'
        f"argon2_time_cost = {time_cost}\n"
    )
    rempart = RempartProcess(data, config)
    rempart.port = free_port()
    users = {"alice@example.org": "correct-horse"}
    dovecot = DovecotRig(
        tmp / "dovecot", rempart.port, users, app_passwords_db=data / "dovecot-app-passwords.db"
    )
    rempart.start()
    dovecot.start()
    try:
        assert dovecot.imap_login("alice@example.org", "correct-horse", "127.0.0.2") == "OK"
        status, doc = rempart.request(
            "POST", "/v1/app-passwords/alice@example.org", {"label": "bench"}
        )
        assert status == 201, doc
        secrets = {"main": "correct-horse", "app": doc["secret"]}
        runs: dict[str, list[float]] = {"main": [], "app": []}
        for _ in range(3):
            for kind, secret in secrets.items():
                for _ in range(logins // 3):
                    t0 = time.perf_counter()
                    assert dovecot.imap_login("alice@example.org", secret, "127.0.0.2") == "OK"
                    runs[kind].append(time.perf_counter() - t0)
        out = {}
        for kind, lat in runs.items():
            lat.sort()
            out[kind] = {
                "logins_per_s": round(len(lat) / sum(lat), 1),
                "p50_ms": round(1000 * statistics.median(lat), 1),
                "p99_ms": round(1000 * lat[int(len(lat) * 0.99) - 1], 1),
            }
        return out
    finally:
        dovecot.stop()
        rempart.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=50_000)
    parser.add_argument("--logins", type=int, default=300)
    parser.add_argument("--argon2-memory-kib", type=int, default=19456)
    parser.add_argument("--argon2-time-cost", type=int, default=2)
    args = parser.parse_args()
    if args.decisions:
        print("allow handler, µs per decision:", json.dumps(decision_figures(args.decisions)))
    if args.logins:
        cost = (args.argon2_memory_kib, args.argon2_time_cost)
        print(f"Dovecot IMAP logins, Argon2id m={cost[0]} t={cost[1]}:", end=" ")
        print(json.dumps(dovecot_figures(args.logins, *cost)))


if __name__ == "__main__":
    main()
