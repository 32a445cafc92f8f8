"""Benchmark: HAProxy admission control under a >=10x sheddable flood, shedding on vs off.

Run: ``python benchmarks/shed_haproxy.py [--flood-seconds 20]``. Loopback only, bounded in time.
Prints the figures and appends them to docs/benchmarks.md under "## Admission control (shed)".
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from rempart.shed.bench.experiment import Load, run

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADING = "## Admission control (shed)"


def rows(label: str, result: dict) -> list[str]:
    out = []
    for name, flood in result["flood"].items():
        base = result["baseline"].get(name)
        ratio = f"{flood['p99_ms'] / base['p99_ms']:.2f}" if base else "-"
        out.append(
            f"| {label} | {name} | {flood['offered_rps']} | {flood['success_ratio'] * 100:.2f} % "
            f"| {flood['shed']} | {flood['failed'] + flood['unsent']} | {flood['p99_ms']} "
            f"| {base['p99_ms'] if base else '-'} | {ratio} |"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flood-seconds", type=float, default=20.0)
    parser.add_argument("--flood-rps", type=float, default=6000.0)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    load = Load(flood_seconds=args.flood_seconds, flood_rps=args.flood_rps, baseline_seconds=5)
    with tempfile.TemporaryDirectory() as tmp:
        on = run(Path(tmp) / "on", load, enforce=True)
        off = run(Path(tmp) / "off", load, enforce=False)
    table = [
        f"Upstream: {load.capacity} concurrent x {load.work * 1000:g} ms = {load.capacity_rps:g} req/s; "
        f"flood {load.flood_rps:g} req/s on a sheddable route "
        f"({load.flood_rps / load.capacity_rps:g}x capacity) from {load.flood_sources} sources "
        f"127.1.x.y, {load.flood_seconds:g} s; steady {load.critical_plus_rps:g} req/s critical_plus "
        f"and {load.critical_rps:g} req/s critical; unloaded p99 from a {load.baseline_seconds:g} s "
        "phase without flood. Success = 200 within 2 s out of all attempts.",
        "",
        "| shedding | class | offered req/s | success | shed 503 | failed | p99 ms | unloaded p99 ms "
        "| p99 ratio |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows("on", on),
        *rows("off", off),
        "",
        f"Final limit {on['final_limit']}, admitted shares {on['final_shares']}.",
    ]
    text = "\n".join(table)
    print(text)
    if args.no_doc:
        return
    section = (
        f"\n{HEADING}\n\n### HAProxy data plane\n\nCommand: `python benchmarks/shed_haproxy.py "
        f"--flood-seconds {args.flood_seconds:g} --flood-rps {args.flood_rps:g}` "
        f"(Python {sys.version.split()[0]}, HAProxy 2.6, 2 cores shared by HAProxy, upstream, "
        "load generator and control loop).\n\n" + text + "\n"
    )
    DOC.parent.mkdir(parents=True, exist_ok=True)
    existing = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if HEADING in existing:
        existing = existing[: existing.index(HEADING)].rstrip() + "\n"
    DOC.write_text(existing + section)


if __name__ == "__main__":
    main()
