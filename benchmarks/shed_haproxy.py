"""Benchmark: HAProxy admission control under a >=10x sheddable flood, shedding on vs off.

Run: ``python benchmarks/shed_haproxy.py [--flood-seconds 20]``. Loopback only, bounded in time.
Prints the figures and writes them to docs/benchmarks.md, subsection "HAProxy data plane" of
"## Admission control (shed)" (``--no-doc`` to only print).
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from shed.doc import update_subsection
from shed.experiment import Load, haproxy_binary, run

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def rows(label: str, result: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """One table row per stream; the p99 ratio divides by the *lower* unloaded p99 of the two
    runs (shedding on and off), so a noisy unloaded phase cannot flatter the ratio."""
    out = []
    for name, flood in result["flood"].items():
        base = result["baseline"].get(name)
        if base:
            reference = min(base["p99_ms"], other["baseline"][name]["p99_ms"])
            ratio = f"{flood['p99_ms'] / reference:.2f}"
        else:
            reference, ratio = "-", "-"
        out.append(
            f"| {label} | {name} | {flood['offered_rps']} | {flood['success_ratio'] * 100:.2f} % "
            f"| {flood['shed']} | {flood['failed'] + flood['unsent']} | {flood['p99_ms']} "
            f"| {base['p99_ms'] if base else '-'} | {reference} | {ratio} |"
        )
    return out


def spread(share_windows: list[Any]) -> str:
    """Max - min of the 5 s window means, absolute and relative to their mean."""
    means = [w[1] for w in share_windows]
    if not means:
        return "-"
    avg = sum(means) / len(means)
    rel = (max(means) - min(means)) / avg * 100 if avg else 0.0
    return f"{max(means) - min(means):.2f} points ({rel:.0f} % of the mean {avg:.2f} %)"


def haproxy_version() -> str:
    binary = haproxy_binary() or "haproxy"
    first = subprocess.run([binary, "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    return first.split(" - ")[0].replace("HAProxy version ", "HAProxy ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flood-seconds", type=float, default=20.0)
    parser.add_argument("--flood-rps", type=float, default=Load.flood_rps)
    parser.add_argument(
        "--initial", type=float, default=Load.initial, help="starting concurrency limit"
    )
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--log", type=Path, help="write the control loop's debug log here")
    args = parser.parse_args()
    if args.log:
        logging.basicConfig(
            filename=args.log, level=logging.DEBUG, format="%(created).3f %(message)s"
        )
    load = Load(
        flood_seconds=args.flood_seconds,
        flood_rps=args.flood_rps,
        baseline_seconds=5,
        initial=args.initial,
    )
    with tempfile.TemporaryDirectory() as tmp:
        on = run(Path(tmp) / "on", load, enforce=True)
        off = run(Path(tmp) / "off", load, enforce=False)
    table = [
        f"Upstream: {load.capacity} concurrent x {load.work * 1000:g} ms = {load.capacity_rps:g} req/s; "
        f"flood {load.flood_rps:g} req/s on a sheddable route "
        f"({load.flood_rps / load.capacity_rps:g}x capacity) from {load.flood_sources} sources "
        f"127.1.x.y, {load.flood_seconds:g} s; steady {load.critical_plus_rps:g} req/s critical_plus "
        f"and {load.critical_rps:g} req/s critical; unloaded p99 from a {load.baseline_seconds:g} s "
        "phase without flood. Each stream has its own load-generator process. "
        "Success = 200 within 2 s out of all attempts.",
        "",
        "| shedding | class | offered req/s | success | shed 503 | failed | p99 ms "
        "| unloaded p99 ms (this run) | reference unloaded p99 ms (lower of both) | p99 ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows("on", on, off),
        *rows("off", off, on),
        "",
        f"With shedding: final limit {on['final_limit']} (range {on['limit_range']} from 2 s "
        f"into the flood, {on['limit_moves']} plateau steps kept), probes' no-load RTT "
        f"{on['rtt_noload_ms']} ms, admitted "
        f"shares {on['final_shares']}; upstream served {on['upstream_rps']} req/s during the "
        f"flood with shedding, {off['upstream_rps']} without "
        f"({on['upstream_rps'] / max(off['upstream_rps'], 1e-9) * 100:.0f} %), 2xx responses; "
        f"starting limit {load.initial:g}.",
        f"Shedding episodes logged and journaled: {on['episodes']['started']} started, "
        f"{on['episodes']['ended']} ended, {on['episodes']['limit_moves']} limit moves logged; "
        f"{on['episodes']['turned_away']} requests counted as turned away (HAProxy's st_shed "
        f"counters) against {sum(f['shed'] for f in on['flood'].values()) + sum(b['shed'] for b in on['baseline'].values())} "
        "503s seen by the load generators.",
        "",
        "Sheddable share admitted per 5 s window of the flood (from 2 s in): "
        + "; ".join(
            f"{w[0]:g} s: mean {w[1]:g} % (ticks {w[2]}-{w[3]} %, limit {w[4]:g})"
            for w in on["share_windows"]
        )
        + f". Spread of the window means: {spread(on['share_windows'])}. "
        f"Load average at the end: {', '.join(f'{x:.2f}' for x in on['load_average'])}.",
    ]
    text = "\n".join(table)
    print(text)
    if args.no_doc:
        return
    update_subsection(
        DOC,
        "HAProxy data plane",
        f"Command: `python benchmarks/shed_haproxy.py --flood-seconds {args.flood_seconds:g} "
        f"--flood-rps {args.flood_rps:g} --initial {args.initial:g}` (Python {sys.version.split()[0]}, {haproxy_version()}, "
        "2 cores shared by HAProxy, upstream, load generators and control loop).\n\n" + text,
    )


if __name__ == "__main__":
    main()
