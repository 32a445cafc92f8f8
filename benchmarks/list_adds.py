"""List changes through the API: N sequential `addBLEntry` calls, one after the other on one
keep-alive connection, each answered only once its journal record and state row are durable
(issue 18: 2,000 adds took 108.6 s; wforce 3.0.1 takes 4.7 s); and `rempart lists import` of an
M-entry JSON-lines file into a fresh server (checked whole, then applied in batches).

    PYTHONPATH=src python benchmarks/list_adds.py --count 2000 --import-count 100000
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rempart.process import ServeProcess

PASSWORD = "benchmark-password-0123456789"


def run(count: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        server = ServeProcess(Path(tmp) / "data", password=PASSWORD).start()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            auth = "Basic " + base64.b64encode(f"x:{PASSWORD}".encode()).decode()
            headers = {"Authorization": auth, "Content-Type": "application/json"}
            started = time.perf_counter()
            for i in range(count):
                body = {
                    "ip": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
                    "expire_secs": 3600,
                    "reason": "benchmark",
                }
                conn.request("POST", "/?command=addBLEntry", json.dumps(body), headers)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    raise SystemExit(f"add {i}: HTTP {response.status}")
            return time.perf_counter() - started
        finally:
            server.stop()


def run_import(count: int) -> tuple[float, str]:
    """Seconds for `rempart lists import` of `count` entries, and its summary line."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "feed.jsonl"
        with path.open("w") as out:
            for i in range(count):
                ip = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
                out.write(
                    json.dumps({"ip": ip, "expiration": "+infinity", "reason": "feed"}) + "\n"
                )
        server = ServeProcess(Path(tmp) / "data", password=PASSWORD).start()
        try:
            started = time.perf_counter()
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "rempart",
                    "lists",
                    "import",
                    str(path),
                    "--url",
                    server.base,
                ],
                capture_output=True,
                text=True,
                env={**os.environ, "REMPART_API_PASSWORD": PASSWORD},
                check=False,
            )
            seconds = time.perf_counter() - started
            if done.returncode != 0:
                raise SystemExit(f"import failed: {done.stderr[-2000:]}")
            return seconds, done.stderr.strip().splitlines()[-1]
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--import-count", type=int, default=0, help="also time an import")
    args = parser.parse_args()
    if args.count:
        seconds = run(args.count)
        print(
            f"{args.count} sequential addBLEntry: {seconds:.2f} s "
            f"({seconds / args.count * 1000:.2f} ms each)"
        )
    if args.import_count:
        seconds, summary = run_import(args.import_count)
        print(f"lists import of {args.import_count} entries: {seconds:.2f} s ({summary})")


if __name__ == "__main__":
    main()
