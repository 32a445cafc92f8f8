"""Leak-corpus benchmark: ingest rate vs a plain read+split baseline, bytes/pair, lookup, memory.

Usage: python benchmarks/breach_ingest.py [LINES] [--before SRC] [--rounds N] [--unusual SHARE]
Generates a combo list of LINES lines (default 10,000,000) in a temp dir (deleted after),
ingests it on one core with the Dovecot fingerprints on (nonce set, full hash), and prints the
figures recorded in docs/benchmarks.md. Each ingest runs in a fresh subprocess; its CPU time is
that process's own (user + system).

--before SRC also ingests the same file with another source tree (e.g. an older commit's `src`
from `git archive`), alternating with this one for N rounds, prints both rates and their ratio,
and checks that both built byte-identical corpora (they share one key). --unusual 0.1 makes a
tenth of the lines URL-prefixed, `+tag`ged, Latin-1 or junk (the per-line path's share).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rempart.breach.corpus import LeakCorpus
from rempart.breach.fpset import FingerprintSet
from rempart.breach.ingest import ingest
from rempart.breach.keyfile import KEY_FILE, load_or_create_key
from rempart.breach.settings import BreachSettings, DovecotHash
from rempart.breach.store import KINDS, corpus_dir, current_name
from rempart.model import Attempt

SETTINGS = BreachSettings(dovecot=DovecotHash("bench-nonce", 0))


UNUSUAL = [
    b"https://login.example.com/auth:%s:%s",  # URL prefix
    b"%s+news:%s",  # +tag, folded away
    b"%s:%s\xe9t\xe9",  # Latin-1 password
    b"no separator %s %s",  # junk
    b"%s:",  # empty password
]


def generate(path: Path, n: int, unusual: float = 0.0) -> None:
    """`n` lines, mostly `login@domain:password`; a share `unusual` of other shapes and junk."""
    rnd = random.Random(2026)
    domains = [b"example.org", b"mail.example.net", b"gmail.example", b"corp.example"]
    words = [b"summer", b"dragon", b"monkey", b"letmein", b"azerty", b"soleil", b"marseille"]
    with path.open("wb", buffering=1 << 20) as fh:
        batch = []
        for i in range(n):
            login = b"user%d.%d@%s" % (rnd.getrandbits(20), i % 97, domains[i & 3])
            pw = words[i % 7] + b"%d" % rnd.getrandbits(24)
            sep = b";" if i % 50 == 0 else b":"
            if unusual and rnd.random() < unusual:
                shape = UNUSUAL[i % len(UNUSUAL)]
                line = shape % (login, pw) if shape.count(b"%s") == 2 else shape % login
            else:
                line = login + sep + pw
            batch.append(line + (b"\r\n" if i % 13 == 0 else b"\n"))
            if len(batch) == 100_000:
                fh.write(b"".join(batch))
                batch.clear()
        fh.write(b"".join(batch))


def baseline(path: Path) -> float:
    """Read and split every line on the first separator, no hashing: lines/s."""
    t0 = time.perf_counter()
    n = 0
    with path.open("rb") as fh:
        pending = b""
        while block := fh.read(4 << 20):
            lines = (pending + block).split(b"\n")
            pending = lines.pop()
            for line in lines:
                line.partition(b":")
            n += len(lines)
    return n / (time.perf_counter() - t0)


def ingest_once(combo: Path, data: Path) -> None:
    """Child mode: ingest `combo` into `data` and print wall and CPU seconds as JSON."""
    c0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    summary = ingest(data, [str(combo)], SETTINGS)
    wall = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
    peak = c1.ru_maxrss * 1024  # kB on Linux
    print(json.dumps({"wall": wall, "cpu": cpu, "peak_rss": peak, "corpus": summary["corpus"]}))


def run_ingest(combo: Path, data: Path, key: bytes, src: str | None) -> dict:
    """Ingest in a fresh process (with `src` first on the path when given)."""
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    fd = os.open(data / KEY_FILE, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, key.hex().encode() + b"\n")
    os.close(fd)
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out = subprocess.run(
        [sys.executable, __file__, "--ingest-only", str(combo), str(data)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def corpus_bytes(data: Path) -> list[bytes]:
    gen = corpus_dir(data) / current_name(data)
    return [(gen / f"{k}.u64").read_bytes() for k in KINDS]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("lines", nargs="?", type=int, default=10_000_000)
    ap.add_argument("--before", metavar="SRC", help="another source tree to compare with")
    ap.add_argument("--rounds", type=int, default=1, help="alternating rounds (default 1)")
    ap.add_argument(
        "--unusual", type=float, default=0.0, help="share of lines in other shapes (default 0)"
    )
    ap.add_argument("--ingest-only", nargs=2, metavar=("COMBO", "DATA"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.ingest_only:
        ingest_once(Path(args.ingest_only[0]), Path(args.ingest_only[1]))
        return
    n = args.lines
    tmp = Path(tempfile.mkdtemp(prefix="rempart-bench-"))
    try:
        combo = tmp / "combo.txt"
        t0 = time.perf_counter()
        generate(combo, n, args.unusual)
        print(f"generated {n:,} lines ({combo.stat().st_size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
        key = load_or_create_key(tmp / "keydir")
        base = baseline(combo)
        print(f"baseline read+split: {base:,.0f} lines/s")
        runs: dict[str, list[dict]] = {"after": [], "before": []}
        for r in range(args.rounds):
            if args.before:
                got = run_ingest(combo, tmp / "before", key, args.before)
                runs["before"].append(got)
                _report(f"round {r + 1} before", n, got, base)
            got = run_ingest(combo, tmp / "data", key, None)
            runs["after"].append(got)
            _report(f"round {r + 1} ingest", n, got, base)
        if args.before:
            b_cpu = statistics.median(n / x["cpu"] for x in runs["before"])
            a_cpu = statistics.median(n / x["cpu"] for x in runs["after"])
            b_wall = statistics.median(n / x["wall"] for x in runs["before"])
            a_wall = statistics.median(n / x["wall"] for x in runs["after"])
            same = corpus_bytes(tmp / "before") == corpus_bytes(tmp / "data")
            print(f"before/after (medians over {args.rounds} rounds): {b_cpu:,.0f} -> "
                  f"{a_cpu:,.0f} lines per CPU-second (x{a_cpu / b_cpu:.2f}); wall {b_wall:,.0f} "
                  f"-> {a_wall:,.0f} lines/s (x{a_wall / b_wall:.2f}); corpora byte-identical: "
                  f"{same}")  # fmt: skip
        lookups(tmp / "data", runs["after"][-1]["corpus"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _report(label: str, n: int, got: dict, base: float) -> None:
    rate = n / got["wall"]
    print(f"{label}: {rate:,.0f} lines/s wall, {n / got['cpu']:,.0f} lines per CPU-second "
          f"(one core), {got['wall']:.1f} s; overhead vs baseline x{base / rate:.1f} (wall), "
          f"x{base * got['cpu'] / n:.1f} (CPU); peak RSS {got['peak_rss'] / 1e6:.0f} MB")  # fmt: skip


def lookups(data: Path, counts: dict[str, int]) -> None:
    """Storage, memory and lookup figures of the corpus built by this source tree."""
    pairs = counts["pairs"]
    gen = corpus_dir(data) / current_name(data)
    disk = sum(f.stat().st_size for f in gen.glob("*.u64"))
    print(f"pairs {pairs:,}, logins {counts['logins']:,}, dovecot "
          f"{counts['dovecot']:,}; storage {disk / pairs:.2f} bytes/pair "
          f"({disk / 1e6:.0f} MB fingerprints)")  # fmt: skip
    rss0 = _rss()
    corpus = LeakCorpus(data, SETTINGS)
    rss1 = _rss()
    mem = corpus.stats()["memory_bytes"]
    print(f"lookup memory: {mem / 1e6:.0f} MB arrays+index ({mem / pairs:.2f} B/pair); "
          f"RSS growth on load {(rss1 - rss0) / 1e6:.0f} MB")  # fmt: skip
    fps = [corpus.fingerprint_password(f"u{i}@example.org", f"pw{i}") for i in range(20000)]
    attempts = [Attempt(login=f"u{i}@example.org", ip="192.0.2.1",
                        pair_fingerprint=fp.pair_fingerprint) for i, fp in enumerate(fps)]  # fmt: skip
    t0 = time.perf_counter()
    for a in attempts:
        corpus.leaked_pair(a)
    pair_us = (time.perf_counter() - t0) / len(attempts) * 1e6
    t0 = time.perf_counter()
    for a in attempts:
        corpus.login_exposed(a.login)
    login_us = (time.perf_counter() - t0) / len(attempts) * 1e6
    for a in attempts:
        a.pair_fingerprint = b""
        a.pwhash = "ab" * 32
    t0 = time.perf_counter()
    for a in attempts:
        corpus.leaked_pair(a)
    dove_us = (time.perf_counter() - t0) / len(attempts) * 1e6
    raw = FingerprintSet(corpus._snap.pairs.array)
    probe = [int(x) for x in raw.array[:: max(1, pairs // 20000)]]
    t0 = time.perf_counter()
    for x in probe:
        _ = x in raw
    set_us = (time.perf_counter() - t0) / len(probe) * 1e6
    print(f"lookup: leaked_pair (native fingerprint) {pair_us:.2f} us, login_exposed "
          f"{login_us:.2f} us, leaked_pair (Dovecot pwhash) {dove_us:.2f} us, "
          f"raw set membership {set_us:.2f} us")  # fmt: skip
    print(
        "memory formula at lookup: 8 B x (pairs + Dovecot pairs + distinct logins) + "
        "bucket index (<= 1/4 B per member) -> <= 24.75 B/pair; 100M pairs <= 2.48 GB"
    )


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


if __name__ == "__main__":
    main()
