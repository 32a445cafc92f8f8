"""The Postfix policy service of a real `rempart serve`: C connections (as C smtpd processes
keep them), each sending N RCPT requests one after the other (Postfix waits for each answer),
the request Postfix 3.7.11 sends, for A distinct accounts with the recipient limit on. Prints
requests per second and latency percentiles.

    PYTHONPATH=src python benchmarks/postfix_policy.py --connections 8 --requests 5000
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from rempart.process import ServeProcess, free_port

REQUEST = (
    "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
    "client_address=192.0.2.{host}\nclient_name=unknown\nclient_port=47776\n"
    "reverse_client_name=unknown\nserver_address=198.51.100.25\nserver_port=587\n"
    "helo_name=laptop\nsender={login}\nrecipient=r{i}@example.net\nrecipient_count=0\n"
    "queue_id=\ninstance=711a.6b1094cd.3fe09.0\nsize=0\netrn_domain=\nstress=\n"
    "sasl_method=PLAIN\nsasl_username={login}\nsasl_sender=\nccert_subject=\nccert_issuer=\n"
    "ccert_fingerprint=\nccert_pubkey_fingerprint=\nencryption_protocol=\n"
    "encryption_cipher=\nencryption_keysize=0\npolicy_context=\n\n"
)


async def client(port: int, number: int, requests: int, accounts: int) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    latencies = []
    for i in range(requests):
        login = f"user{(number * requests + i) % accounts}@example.org"
        data = REQUEST.format(host=number % 250 + 1, login=login, i=i).encode()
        started = time.perf_counter()
        writer.write(data)
        answer = await reader.readuntil(b"\n\n")
        latencies.append(time.perf_counter() - started)
        assert answer.startswith(b"action="), answer
    writer.close()
    return latencies


async def measure(port: int, connections: int, requests: int, accounts: int) -> None:
    started = time.perf_counter()
    runs = await asyncio.gather(*(client(port, c, requests, accounts) for c in range(connections)))
    elapsed = time.perf_counter() - started
    latencies = sorted(x for run in runs for x in run)
    total = len(latencies)
    print(
        f"{total} requests over {connections} connections in {elapsed:.2f} s: "
        f"{total / elapsed:,.0f} requests/s; latency p50 {latencies[total // 2] * 1e3:.2f} ms, "
        f"p99 {latencies[int(total * 0.99)] * 1e3:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--requests", type=int, default=5000, help="per connection")
    parser.add_argument("--accounts", type=int, default=10_000)
    args = parser.parse_args()
    port = free_port()
    config = f"[postfix]\nenabled = true\nport = {port}\nrecipients_per_hour = 1000000\n"
    with tempfile.TemporaryDirectory() as tmp:
        server = ServeProcess(Path(tmp) / "data", config, "benchmark-password-0123456789")
        server.start()
        try:
            asyncio.run(measure(port, args.connections, args.requests, args.accounts))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
