"""Build src/rempart/breach/data/popular-passwords.txt.gz from ../shared/data/passwords/.

Passwords only (the source lists hold no user names). Order: the ranked 10-million top-10000 list
first (it is the top of a far larger sample), then the `*-withcount.txt` lists by summed count
(descending; ties by password) until N passwords. Deterministic: the same inputs give the same
bytes. Usage: python scripts/build_popular_passwords.py [SOURCE_DIR] [N]
"""

from __future__ import annotations

import gzip
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src/rempart/breach/data/popular-passwords.txt.gz"
LINE = re.compile(r"^ *(\d+)(?: (.*))?$")


def build(source: Path, n: int) -> list[str]:
    counts: dict[str, int] = {}
    for f in sorted(source.glob("*-withcount.txt")):
        for line in f.read_text("utf-8").splitlines():
            m = LINE.match(line)
            if m and m.group(2):
                pw = m.group(2)
                counts[pw] = counts.get(pw, 0) + int(m.group(1))
    ranked = (source / "10-million-password-list-top-10000.txt").read_text("utf-8").splitlines()
    out: list[str] = []
    seen: set[str] = set()
    by_count = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    for pw in [*ranked, *(pw for pw, _ in by_count)]:
        if pw and "\n" not in pw and pw not in seen:
            seen.add(pw)
            out.append(pw)
            if len(out) == n:
                break
    return out


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared/data/passwords"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    words = build(source, n)
    data = ("\n".join(words) + "\n").encode("utf-8")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0) as gz:
        gz.write(data)
    print(f"{OUT}: {len(words)} passwords, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
