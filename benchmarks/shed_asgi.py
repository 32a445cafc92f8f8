"""Benchmark: ``AdmissionMiddleware`` on uvicorn under a >=10x sheddable flood, on vs off.

Run: ``python benchmarks/shed_asgi.py [--flood-seconds 20]``. Loopback only, bounded in time.
Prints the figures and writes them to docs/benchmarks.md, subsection "ASGI middleware" of
"## Admission control (shed)" (``--no-doc`` to only print).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import uvicorn
from shed.asgi_experiment import ASGI_LOAD, run
from shed.doc import update_subsection

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shed_haproxy import rows

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flood-seconds", type=float, default=20.0)
    parser.add_argument("--work", type=float, default=ASGI_LOAD.work, help="seconds per request")
    parser.add_argument("--flood-rps", type=float, default=ASGI_LOAD.flood_rps)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    capacity_rps = ASGI_LOAD.capacity / args.work
    load = replace(
        ASGI_LOAD,
        work=args.work,
        flood_seconds=args.flood_seconds,
        flood_rps=args.flood_rps,
        critical_plus_rps=0.1 * capacity_rps,
        critical_rps=0.2 * capacity_rps,
        baseline_seconds=5,
    )
    with tempfile.TemporaryDirectory() as tmp:
        on = run(Path(tmp) / "on", load, enforce=True)
        off = run(Path(tmp) / "off", load, enforce=False)
    table = [
        f"Application: {load.capacity} concurrent x {load.work * 1000:g} ms = "
        f"{load.capacity_rps:g} req/s, in the same uvicorn process as the middleware "
        f"(uvicorn {uvicorn.__version__}, httptools, uvloop); flood {load.flood_rps:g} req/s on "
        f"a sheddable route ({load.flood_rps / load.capacity_rps:g}x capacity) from "
        f"{load.flood_sources} sources 127.1.x.y, {load.flood_seconds:g} s; steady "
        f"{load.critical_plus_rps:g} req/s critical_plus and {load.critical_rps:g} req/s critical; "
        f"unloaded p99 from a {load.baseline_seconds:g} s phase without flood. Each stream has its "
        "own load-generator process. Success = 200 within 2 s out of all attempts.",
        "",
        "| shedding | class | offered req/s | success | shed 503 | failed | p99 ms "
        "| unloaded p99 ms (this run) | reference unloaded p99 ms (lower of both) | p99 ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows("on", on, off),
        *rows("off", off, on),
        "",
        f"With the middleware: final limit {on['final_limit']}, measured no-load RTT "
        f"{on['rtt_noload_ms']} ms ({on['minrtt_measurements']} re-measurements), shed per class "
        f"{on['shed_total']}.",
    ]
    text = "\n".join(table)
    print(text)
    if args.no_doc:
        return
    update_subsection(
        DOC,
        "ASGI middleware",
        f"Command: `python benchmarks/shed_asgi.py --flood-seconds {args.flood_seconds:g} "
        f"--work {args.work:g} --flood-rps {args.flood_rps:g}` (Python {sys.version.split()[0]}, 2 cores shared by "
        "the server and the load generators).\n\n" + text,
    )


if __name__ == "__main__":
    main()
