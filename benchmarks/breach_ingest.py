"""Leak-corpus benchmark: ingest rate vs a plain read+split baseline, bytes/pair, lookup, memory.

Usage: python benchmarks/breach_ingest.py [LINES]   (default 10,000,000)
Generates a combo list in a temp dir (deleted after), ingests it on one core with the Dovecot
fingerprints on (nonce set, full hash), and prints the figures recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rempart.breach.corpus import LeakCorpus
from rempart.breach.fpset import FingerprintSet
from rempart.breach.ingest import ingest
from rempart.breach.settings import BreachSettings, DovecotHash
from rempart.model import Attempt


def generate(path: Path, n: int) -> None:
    rnd = random.Random(2026)
    domains = [b"example.org", b"mail.example.net", b"gmail.example", b"corp.example"]
    words = [b"summer", b"dragon", b"monkey", b"letmein", b"azerty", b"soleil", b"marseille"]
    with path.open("wb", buffering=1 << 20) as fh:
        batch = []
        for i in range(n):
            login = b"user%d.%d@%s" % (rnd.getrandbits(20), i % 97, domains[i & 3])
            pw = words[i % 7] + b"%d" % rnd.getrandbits(24)
            sep = b";" if i % 50 == 0 else b":"
            batch.append(login + sep + pw + (b"\r\n" if i % 13 == 0 else b"\n"))
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


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
    tmp = Path(tempfile.mkdtemp(prefix="rempart-bench-"))
    try:
        combo = tmp / "combo.txt"
        t0 = time.perf_counter()
        generate(combo, n)
        print(f"generated {n:,} lines ({combo.stat().st_size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
        base = baseline(combo)
        settings = BreachSettings(dovecot=DovecotHash("bench-nonce", 0))
        c0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        summary = ingest(tmp / "data", [str(combo)], settings)
        wall = time.perf_counter() - t0
        c1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
        rate = n / wall
        print(f"baseline read+split: {base:,.0f} lines/s")
        print(f"ingest: {rate:,.0f} lines/s wall, {n / cpu:,.0f} lines per CPU-second "
              f"(one core), {wall:.1f} s; overhead vs baseline x{base / rate:.1f}")  # fmt: skip
        pairs = summary["corpus"]["pairs"]
        gen = tmp / "data/leaks/corpus" / summary["generation"]
        disk = sum(f.stat().st_size for f in gen.glob("*.u64"))
        print(f"pairs {pairs:,}, logins {summary['corpus']['logins']:,}, dovecot "
              f"{summary['corpus']['dovecot']:,}; storage {disk / pairs:.2f} bytes/pair "
              f"({disk / 1e6:.0f} MB fingerprints)")  # fmt: skip
        rss0 = _rss()
        corpus = LeakCorpus(tmp / "data", settings)
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
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


if __name__ == "__main__":
    main()
