"""Resumable ingest of combo lists into the corpus: checkpoints, merge, atomic commit, summary.

Work happens in `<data dir>/leaks/ingest-work/`: every `chunk_lines` lines the batch's sorted
fingerprints are written (temp + fsync + rename) and then `job.json` records the byte offset
reached. A run killed at any point (even `kill -9`) and started again with the same inputs picks
up from the last checkpoint; since the corpus is a union of sets, the final corpus is identical to
an uninterrupted run. The live corpus changes only at the final atomic commit (store.commit).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from rempart.breach import store
from rempart.breach.audit import Auditor, UserDb
from rempart.breach.fingerprints import Fingerprinter
from rempart.breach.fpset import sorted_unique, union_sorted
from rempart.breach.hashing import SAMPLE_LINES, Batch, hash_lines
from rempart.breach.keyfile import load_or_create_key
from rempart.breach.reader import InputError, check_input, identity, open_stream, read_blocks
from rempart.breach.settings import BreachSettings
from rempart.datadir import DataDirError, DirLock

WORK = "ingest-work"


class IngestError(RuntimeError):
    """The ingest stopped; the message says which file/line and whether it can be resumed."""


@dataclass
class Progress:
    """Callback hooks for a progress display (see cli.py)."""

    start_file: Callable[[str, int | None, int], None] = lambda path, total, done: None
    advance: Callable[[int, int], None] = lambda position, lines: None
    end_file: Callable[[], None] = lambda: None


def work_dir(data_dir: Path) -> Path:
    return store.leaks_dir(data_dir) / WORK


def pending_job(data_dir: Path) -> dict[str, Any] | None:
    """The interrupted job waiting to be resumed, if any."""
    try:
        return json.loads((work_dir(data_dir) / "job.json").read_text("utf-8"))
    except FileNotFoundError:
        return None


def _write_job(wdir: Path, job: dict[str, Any]) -> None:
    store.write_file(wdir / "job.json", json.dumps(job, indent=1, sort_keys=True).encode())


def _chunk_path(wdir: Path, file_index: int, number: int) -> Path:
    return wdir / f"f{file_index:04d}-{number:06d}.bin"


def _write_chunk(path: Path, batch: Batch) -> None:
    arrays = [batch.logins, batch.pairs, batch.dovecot]
    header = np.array([len(a) for a in arrays], dtype="<u8").tobytes()
    body = b"".join(np.ascontiguousarray(a, dtype="<u8").tobytes() for a in arrays)
    store.write_file(path, header + body)


def _read_chunk(path: Path) -> dict[str, np.ndarray]:
    raw = np.fromfile(path, dtype="<u8").astype(np.uint64)
    counts = [int(c) for c in raw[:3]]
    out, pos = {}, 3
    for kind, n in zip(store.KINDS, counts, strict=True):
        out[kind] = raw[pos : pos + n]
        pos += n
    if pos != len(raw):
        raise IngestError(f"checkpoint {path} is damaged; run again with --restart")
    return out


def ingest(
    data_dir: Path,
    paths: list[str],
    settings: BreachSettings,
    source: str | None = None,
    userdb: UserDb | None = None,
    restart: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Ingest `paths` (or resume the same interrupted ingest); returns the closing summary.

    One ingest at a time per data directory (`leaks/ingest.lock`); a running server is no
    conflict: it only reads the corpus and picks up each committed generation."""
    leaks = store.leaks_dir(data_dir)
    try:
        leaks.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IngestError(f"cannot create {leaks}: {exc.strerror}") from None
    lock = DirLock(leaks / "ingest.lock", "rempart leaks ingest")
    try:
        lock.acquire()
    except DataDirError as exc:
        raise IngestError(str(exc)) from None
    try:
        return _ingest(data_dir, paths, settings, source, userdb, restart, progress)
    finally:
        lock.release()


def _ingest(
    data_dir: Path,
    paths: list[str],
    settings: BreachSettings,
    source: str | None,
    userdb: UserDb | None,
    restart: bool,
    progress: Progress | None,
) -> dict[str, Any]:
    progress = progress or Progress()
    if not paths:
        raise IngestError("no input file given")
    for p in paths:
        try:
            check_input(p)
        except InputError as exc:
            raise IngestError(f"{exc}; nothing was ingested, the corpus is unchanged") from None
    if paths.count("-") > 1:
        raise IngestError("stdin ('-') can be given only once")
    key = load_or_create_key(data_dir)
    fpr = Fingerprinter(key, settings.dovecot)
    base = store.load(data_dir, fpr.key_id)
    base_tag = base.meta.get("dovecot_tag", "")
    if len(base.arrays["dovecot"]) and base_tag != fpr.dovecot_tag:
        raise IngestError(
            "[dovecot] hash_nonce/hash_truncate_bits differ from those the corpus was built with; "
            "restore them, or remove the corpus directory and ingest all lists again"
        )
    wdir = work_dir(data_dir)
    inputs: list[dict[str, Any]] = [
        {
            "path": p if p == "-" else str(Path(p).resolve()),
            "source": source or ("stdin" if p == "-" else Path(p).name),
            "identity": identity(p),
        }
        for p in paths
    ]
    fingerprint = {
        "inputs": inputs,
        "userdb": userdb.path if userdb else None,
        "dovecot_tag": fpr.dovecot_tag,
        "key_id": fpr.key_id,
        "base": base.name,
        "settings": [settings.leaks.max_password_bytes, repr(settings.logins)],
    }
    job = pending_job(data_dir)
    if job is not None and (restart or job.get("fingerprint") != fingerprint):
        if not restart:
            names = ", ".join(i["path"] for i in job.get("fingerprint", {}).get("inputs", []))
            raise IngestError(
                f"an interrupted ingest of {names} is pending: run that same command again to "
                "resume it, or add --restart to discard it"
            )
        shutil.rmtree(wdir)
        job = None
    if job is None:
        shutil.rmtree(wdir, ignore_errors=True)
        wdir.mkdir(parents=True)
        now = time.time()
        job = {
            "fingerprint": fingerprint,
            "started_at": now,
            "date": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d"),
            "files": [
                {
                    "offset": 0,
                    "skipping": False,
                    "lines": 0,
                    "valid": 0,
                    "chunks": 0,
                    "done": False,
                    "rejected": {},
                    "samples": {},
                }
                for _ in inputs
            ],
            "exposed": {},
        }
        _write_job(wdir, job)
    _drop_orphan_chunks(wdir, job)
    auditor = Auditor(userdb, settings.leaks.audit_workers) if userdb else None
    try:
        for index, (path, state) in enumerate(zip(paths, job["files"], strict=True)):
            if not state["done"]:
                _ingest_file(wdir, job, index, path, inputs[index]["source"], fpr, settings,
                             auditor, progress)  # fmt: skip
    finally:
        if auditor:
            auditor.close()
    return _commit(data_dir, wdir, job, inputs, base, fpr)


def _drop_orphan_chunks(wdir: Path, job: dict[str, Any]) -> None:
    """Remove chunk files written after the last job.json update (a kill between the two)."""
    wanted = {
        _chunk_path(wdir, i, n).name
        for i, state in enumerate(job["files"])
        for n in range(state["chunks"])
    }
    for f in wdir.iterdir():
        if (f.name.startswith("f") and f.name not in wanted) or f.name.startswith("."):
            f.unlink()


def _ingest_file(
    wdir: Path,
    job: dict[str, Any],
    index: int,
    path: str,
    source: str,
    fpr: Fingerprinter,
    settings: BreachSettings,
    auditor: Auditor | None,
    progress: Progress,
) -> None:
    state = job["files"][index]
    audit_logins = auditor.userdb.accounts if auditor else ()
    total = None if path == "-" else os.stat(path).st_size
    progress.start_file(path, total, state["lines"])
    try:
        with open_stream(path) as (stream, raw):
            blocks = read_blocks(
                stream, raw, state["offset"], state["skipping"], settings.leaks.chunk_lines
            )
            for block in blocks:
                batch = hash_lines(
                    block.lines,
                    state["lines"] + 1,
                    fpr,
                    settings.logins,
                    settings.leaks.max_password_bytes,
                    audit_logins,
                    all_utf8=block.ascii,
                )
                if auditor and batch.audit:
                    found = auditor.exposed(batch.audit, set(job["exposed"]))
                    for login in sorted(found):
                        job["exposed"][login] = source
                batch.audit.clear()
                _write_chunk(_chunk_path(wdir, index, state["chunks"]), batch)
                state["chunks"] += 1
                state["offset"] = block.offset
                state["skipping"] = block.skipping
                state["lines"] += batch.lines
                state["valid"] += batch.valid
                for reason, n in batch.rejected.items():
                    state["rejected"][reason] = state["rejected"].get(reason, 0) + n
                    s = state["samples"].setdefault(reason, [])
                    s.extend(batch.samples[reason][: SAMPLE_LINES - len(s)])
                _write_job(wdir, job)
                progress.advance(block.position, batch.lines)
    except OSError as exc:
        if exc.filename and str(wdir) in str(exc.filename):
            raise IngestError(
                f"cannot write the ingest checkpoint {exc.filename}: {exc.strerror or exc}; "
                "the corpus is unchanged; fix this and run the same command to resume"
            ) from None
        raise IngestError(
            f"{path}: read error after line {state['lines']}: {exc.strerror or exc}; "
            "the corpus is unchanged; run the same command to resume"
        ) from None
    except (EOFError, zlib.error) as exc:
        raise IngestError(
            f"{path}: damaged compressed data after line {state['lines']}: {exc}; "
            "the corpus is unchanged"
        ) from None
    finally:
        progress.end_file()
    if state["valid"] == 0:
        firsts = _first_rejections(state)
        # Nothing of this job can be committed: drop it, so no pending ingest is left behind
        # to refuse the next command.
        shutil.rmtree(wdir, ignore_errors=True)
        raise IngestError(
            f"{path}: no valid login/password line in {state['lines']} lines ({firsts}); "
            "nothing was committed, the corpus is unchanged; run again without this file"
        )
    state["done"] = True
    _write_job(wdir, job)


def _first_rejections(state: dict[str, Any]) -> str:
    items = sorted((lines[0], reason) for reason, lines in state["samples"].items() if lines)
    return "; ".join(f"line {n}: {reason}" for n, reason in items[:3]) or "empty file"


def _commit(
    data_dir: Path,
    wdir: Path,
    job: dict[str, Any],
    inputs: list[dict[str, Any]],
    base: store.Generation,
    fpr: Fingerprinter,
) -> dict[str, Any]:
    """Merge every checkpoint into the base generation and switch to the result."""
    current = dict(base.arrays)
    sources: dict[str, dict[str, Any]] = {}
    files = []
    for index, (inp, state) in enumerate(zip(inputs, job["files"], strict=True)):
        parts = [_read_chunk(_chunk_path(wdir, index, n)) for n in range(state["chunks"])]
        before = {k: len(current[k]) for k in store.KINDS}
        for kind in store.KINDS:
            merged = _union_all([p[kind] for p in parts])
            current[kind] = union_sorted(current[kind], merged)
        added = {k: len(current[k]) - before[k] for k in store.KINDS}
        rejected = sum(state["rejected"].values())
        files.append({
            "path": inp["path"], "source": inp["source"], "lines": state["lines"],
            "valid": state["valid"], "pairs_added": added["pairs"],
            "logins_added": added["logins"], "duplicates": state["valid"] - added["pairs"],
            "rejected": rejected, "rejected_by_reason": state["rejected"],
            "first_rejected_lines": state["samples"],
        })  # fmt: skip
        rec = sources.setdefault(inp["source"], {
            "name": inp["source"], "date": job["date"], "lines": 0, "valid": 0,
            "new_pairs": 0, "rejected": 0,
        })  # fmt: skip
        rec["lines"] += state["lines"]
        rec["valid"] += state["valid"]
        rec["new_pairs"] += added["pairs"]
        rec["rejected"] += rejected
    exposed = {e["login"]: e for e in base.exposed}
    for login, src in sorted(job["exposed"].items()):
        exposed[login] = {
            "login": login,
            "source": src,
            "date": job["date"],
            "at": job["started_at"],
        }
    tag = fpr.dovecot_tag if len(current["dovecot"]) else ""
    meta = {
        "key_id": fpr.key_id,
        "dovecot_tag": tag,
        "sources": base.sources + list(sources.values()),
        "exposed": [exposed[k] for k in sorted(exposed)],
    }
    try:
        name = store.commit(data_dir, current, meta)
    except OSError as exc:
        raise IngestError(
            f"cannot write the new corpus ({exc.filename or ''}: {exc.strerror or exc}); "
            "the live corpus is unchanged and all checkpoints are kept: fix this and run the "
            "same command to finish"
        ) from None
    shutil.rmtree(wdir, ignore_errors=True)
    lines = sum(f["lines"] for f in files)
    valid = sum(f["valid"] for f in files)
    added = sum(f["pairs_added"] for f in files)
    return {
        "generation": name,
        "files": files,
        "lines": lines,
        "valid": valid,
        "pairs_added": added,
        "duplicates": valid - added,
        "logins_added": sum(f["logins_added"] for f in files),
        "rejected": lines - valid,
        "exposed_found": sorted(job["exposed"]),
        "corpus": {k: len(current[k]) for k in store.KINDS},
    }


def _union_all(arrays: list[np.ndarray]) -> np.ndarray:
    if not arrays:
        return np.zeros(0, dtype=np.uint64)
    return sorted_unique(np.concatenate(arrays))
