"""Ingest through the real CLI in a subprocess: kill -9 midway and resume, bad input, full disk."""

from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

from rempart.breach.ingest import pending_job
from rempart.breach.store import corpus_dir, current_name

CLI = [sys.executable, "-c", "from rempart.breach.cli import leaks; leaks()"]


def run(*args: str, data: Path, **kw) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run(
        [*CLI, *args, "--data-dir", str(data)], capture_output=True, text=True, timeout=300, **kw
    )


def _make_list(path: Path, n: int) -> None:
    rnd = random.Random(42)
    with path.open("wb") as fh:
        for i in range(n):
            fh.write(b"user%d@example.org:pw%d\n" % (rnd.randrange(n // 2), i % 9973))
            if i % 1000 == 0:
                fh.write(b"junk line %d\n" % i)


def _corpus_bytes(data: Path) -> dict[str, bytes]:
    g = corpus_dir(data) / current_name(data)
    return {k: (g / f"{k}.u64").read_bytes() for k in ("logins", "pairs", "dovecot")}


def _meta_without_dates(data: Path) -> str:
    import json

    meta = json.loads((corpus_dir(data) / current_name(data) / "meta.json").read_text())
    for s in meta["sources"]:
        s.pop("date")
    return json.dumps(meta, sort_keys=True)


def test_kill_9_midway_then_resume_gives_identical_corpus(tmp_path: Path) -> None:
    combo = tmp_path / "combo.txt"
    _make_list(combo, 600_000)
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[leaks]\nchunk_lines = 20000\n[dovecot]\nhash_nonce = "n"\nhash_truncate_bits = 0\n'
    )
    key = tmp_path / "key"
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    for d in (straight, killed):  # same key, so fingerprints are comparable
        d.mkdir()
    first = run("stats", "--config", str(cfg), data=straight)
    assert first.returncode == 0, first.stderr
    key.write_bytes((straight / "leaks.key").read_bytes())
    os.link(key, killed / "leaks.key")
    os.chmod(killed / "leaks.key", 0o600)

    ok = run("ingest", str(combo), "--config", str(cfg), "--source", "L", data=straight)
    assert ok.returncode == 0, ok.stderr

    proc = subprocess.Popen(
        [*CLI, "ingest", str(combo), "--config", str(cfg), "--source", "L",
         "--data-dir", str(killed)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = pending_job(killed) if (killed / "leaks").exists() else None
        if job and job["files"][0]["chunks"] > 0 and not job["files"][0]["done"]:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    job = pending_job(killed)
    assert job is not None and not job["files"][0]["done"], "kill came too late to test resume"
    assert current_name(killed) == ""

    resumed = run("ingest", str(combo), "--config", str(cfg), "--source", "L", data=killed)
    assert resumed.returncode == 0, resumed.stderr
    assert _corpus_bytes(killed) == _corpus_bytes(straight)
    assert _meta_without_dates(killed) == _meta_without_dates(straight)
    assert pending_job(killed) is None


def test_cli_bad_inputs_name_the_file_and_exit_nonzero(tmp_path: Path) -> None:
    data = tmp_path / "d"
    good = tmp_path / "good.txt"
    good.write_text("a@x.org:pw\n")
    assert run("ingest", str(good), data=data).returncode == 0
    gen = current_name(data)
    binary = tmp_path / "photo.jpg"
    binary.write_bytes(os.urandom(4096))
    r = run("ingest", str(binary), data=data)
    assert r.returncode != 0 and "photo.jpg" in r.stderr and "binary" in r.stderr
    r = run("ingest", str(tmp_path / "nope.txt"), data=data)
    assert r.returncode != 0 and "nope.txt" in r.stderr
    unreadable = tmp_path / "locked.txt"
    unreadable.write_text("a@x.org:pw\n")
    r = run("ingest", str(tmp_path), data=data)
    assert r.returncode != 0 and "is a directory" in r.stderr
    empty = tmp_path / "junk.txt"
    empty.write_text("no separator\n\n")
    r = run("ingest", str(empty), data=data)
    assert r.returncode != 0 and "junk.txt: no valid" in r.stderr and "line 1" in r.stderr
    assert current_name(data) == gen


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))


def test_full_disk_leaves_corpus_unchanged_and_resumable(tmp_path: Path) -> None:
    data = tmp_path / "d"
    combo = tmp_path / "big.txt"
    _make_list(combo, 60_000)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[leaks]\nchunk_lines = 5000\n")
    small = tmp_path / "small.txt"
    small.write_text("a@x.org:pw\n")
    assert run("ingest", str(small), data=data).returncode == 0
    gen = current_name(data)
    # Files larger than 200 kB cannot be written: the final corpus cannot be, like a full disk.
    r = run("ingest", str(combo), "--config", str(cfg), data=data, preexec_fn=_limit_file_size)
    assert r.returncode != 0
    assert "File too large" in r.stderr and "unchanged" in r.stderr, r.stderr
    assert current_name(data) == gen
    r = run("ingest", str(combo), "--config", str(cfg), data=data)
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stderr or current_name(data) != gen
