"""Sequential list changes through the wforce-compatible API: N `addBLEntry` calls, one after
the other on one keep-alive connection, each answered only once its journal record and state
row are durable (issue 18: 2,000 adds took 108.6 s; wforce 3.0.1 takes 4.7 s).

    PYTHONPATH=src python benchmarks/list_adds.py --count 2000
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    seconds = run(args.count)
    print(
        f"{args.count} sequential addBLEntry: {seconds:.2f} s "
        f"({seconds / args.count * 1000:.2f} ms each)"
    )


if __name__ == "__main__":
    main()
