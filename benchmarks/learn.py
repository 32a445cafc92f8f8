"""`rempart learn` on a generated month of Dovecot logs: lines per second and peak memory.

Generates `--days` days of Dovecot login-process lines (`--users` accounts polling IMAP, a few
percent failing, a rotated series: dovecot.log, dovecot.log.1, dovecot.log.2.gz, ...), then
times `python -m rempart learn` on them in a child process into a fresh data directory, and
reads the child's peak RSS. Writes the "rempart learn" section of docs/benchmarks.md.

    python benchmarks/learn.py --days 30 --users 20000
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from decision_service import write_section

START = 1_793_491_200.0  # 2026-11-01 00:00 UTC


def generate(folder: Path, days: int, users: int, polls_per_day: int, seed: int = 1) -> int:
    """One file per day, newest `dovecot.log`, older ones rotated (gzip after the first)."""
    rng = random.Random(seed)
    homes = [
        f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}" for _ in range(users)
    ]
    lines = 0
    for day in range(days):
        age = days - 1 - day
        name = "dovecot.log" if age == 0 else f"dovecot.log.{age}" + (".gz" if age > 1 else "")
        path = folder / name
        opener = gzip.open if name.endswith(".gz") else open
        step = 86400.0 / (users * polls_per_day)
        with opener(path, "wt", encoding="utf-8") as out:  # type: ignore[operator]
            t = START + day * 86400
            for n in range(users * polls_per_day):
                user = rng.randrange(users)
                ip = f"{homes[user]}.{rng.randrange(1, 255)}"
                stamp = time.strftime("%b %d %H:%M:%S", time.gmtime(t + n * step))
                if rng.random() < 0.03:
                    out.write(
                        f"{stamp} imap-login: Info: Disconnected: Connection closed (auth failed, "
                        f"1 attempts in 2 secs): user=<user{user}@example.org>, method=PLAIN, "
                        f"rip={ip}, lip=192.0.2.1, session=<{n:x}>\n"
                    )
                else:
                    out.write(
                        f"{stamp} imap-login: Info: Login: user=<user{user}@example.org>, "
                        f"method=PLAIN, rip={ip}, lip=192.0.2.1, mpid={n % 65536}, "
                        f"session=<{n:x}>\n"
                    )
                lines += 1
        mtime = START + (day + 1) * 86400
        os.utime(path, (mtime, mtime))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--polls-per-day", type=int, default=20)
    parser.add_argument("--no-write", action="store_true", help="Do not touch docs/benchmarks.md.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rempart-learn-bench-") as tmp:
        logs = Path(tmp) / "logs"
        logs.mkdir()
        lines = generate(logs, args.days, args.users, args.polls_per_day)
        size = sum(p.stat().st_size for p in logs.iterdir())
        files = [str(p) for p in logs.iterdir()]
        command = [sys.executable, "-m", "rempart", "learn", *files, "--quiet"]
        command += ["--data-dir", str(Path(tmp) / "data")]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"rempart learn failed:\n{done.stdout}\n{done.stderr}")
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_mb = usage.ru_maxrss / 1024
        cpu = usage.ru_utime + usage.ru_stime
        again = time.perf_counter()
        subprocess.run(command, capture_output=True, text=True, check=True)
        second = time.perf_counter() - again
    rate = lines / seconds
    print(done.stdout.strip())
    print(
        f"{lines:,} lines ({size / 1e6:.0f} MB on disk) in {seconds:.1f} s: {rate:,.0f} lines/s; "
        f"peak RSS {peak_mb:.0f} MB; learning them again: {second:.1f} s"
    )
    if args.no_write:
        return
    section = f"""## rempart learn

`python benchmarks/learn.py --days {args.days} --users {args.users} --polls-per-day {args.polls_per_day}`
({time.strftime("%Y-%m-%d")}, one core of the shared 2-core machine): {args.days} days of Dovecot
login-process lines, {args.users:,} accounts polling IMAP {args.polls_per_day} times a day from
their home /24, 3 % failing; a rotated series (`dovecot.log`, `.1`, `.2.gz` ...), {size / 1e6:.0f} MB.

| lines | seconds (CPU) | lines/s | lines per CPU-second | peak RSS | the same files again |
|---|---|---|---|---|---|
| {lines:,} | {seconds:.1f} ({cpu:.1f}) | {rate:,.0f} | {lines / cpu:,.0f} | {peak_mb:.0f} MB | {second:.1f} s (nothing learned twice) |

Besides the lines, every 10 s of history closes a detector tick (about 8,600 a day per
protocol, a fraction of a millisecond each): a month of a small service's logs costs that
much whatever its volume; a large provider's month is dominated by the lines.

Memory is the familiarity kept (as `rempart serve` keeps it: bounded per account by
`[familiarity] max_networks`) plus the detector's few KB: lines are streamed, never held.
"""
    write_section("rempart learn", section)


if __name__ == "__main__":
    main()
