"""The corpus on disk: immutable generations switched atomically, so readers never see half a write.

Layout under `<data dir>/leaks/`:
  corpus/CURRENT            name of the live generation (replaced by rename)
  corpus/gen-NNNNNN/        logins.u64, pairs.u64, dovecot.u64 (sorted little-endian uint64),
                            meta.json (key id, Dovecot tag, sources, exposed accounts)
A new generation is written in full and fsynced before CURRENT points at it; a crash or a full
disk leaves CURRENT on the old one. Old generations are removed after the switch.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

KINDS = ("logins", "pairs", "dovecot")
FORMAT_VERSION = 1


class CorpusError(RuntimeError):
    """The corpus on disk is unusable (foreign key, bad files); the message says what to do."""


@dataclass
class Generation:
    """One loaded corpus generation."""

    name: str = ""
    arrays: dict[str, np.ndarray] = field(
        default_factory=lambda: {k: np.zeros(0, dtype=np.uint64) for k in KINDS}
    )
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def sources(self) -> list[dict[str, Any]]:
        return list(self.meta.get("sources", []))

    @property
    def exposed(self) -> list[dict[str, Any]]:
        return list(self.meta.get("exposed", []))


def leaks_dir(data_dir: Path) -> Path:
    return data_dir / "leaks"


def corpus_dir(data_dir: Path) -> Path:
    return leaks_dir(data_dir) / "corpus"


def current_name(data_dir: Path) -> str:
    """Name of the live generation, '' when nothing was ingested yet."""
    try:
        return (corpus_dir(data_dir) / "CURRENT").read_text("ascii").strip()
    except FileNotFoundError:
        return ""


def _read_array(path: Path, shared: bool) -> np.ndarray:
    """A generation file's fingerprints: copied into this process's memory, or (`shared`)
    mapped read-only from the file, so every process of the host (the primary and its decision
    workers) looks them up in the same page-cache pages."""
    if not shared or path.stat().st_size == 0 or np.dtype("<u8") != np.dtype(np.uint64):
        return np.fromfile(path, dtype="<u8").astype(np.uint64)
    mapped = np.memmap(path, dtype=np.uint64, mode="r")
    # Fault every page in now (one read per 4 KiB), so lookups do not, while the pages stay
    # in memory; a generation replaced later stays mapped until it is dropped.
    np.bitwise_or.reduce(mapped[:: mmap.PAGESIZE // 8])
    return mapped


def load(data_dir: Path, key_id: str, shared: bool = False) -> Generation:
    """Load the live generation into memory: each process its own copy (no page faults on a
    lookup), or, `shared`, one copy for the host in the page cache (`_read_array`)."""
    name = current_name(data_dir)
    if not name:
        return Generation(meta={"version": FORMAT_VERSION, "key_id": key_id})
    gdir = corpus_dir(data_dir) / name
    try:
        meta = json.loads((gdir / "meta.json").read_text("utf-8"))
        arrays = {k: _read_array(gdir / f"{k}.u64", shared) for k in KINDS}
    except (OSError, ValueError) as exc:
        raise CorpusError(f"cannot read leak corpus {gdir}: {exc}") from None
    if meta.get("key_id") != key_id:
        raise CorpusError(
            f"leak corpus {gdir} was built with another key than {data_dir / 'leaks.key'}; "
            "restore that key or remove the corpus and ingest again"
        )
    for k in KINDS:
        if len(arrays[k]) != meta.get("counts", {}).get(k, -1):
            raise CorpusError(f"leak corpus {gdir}/{k}.u64 does not match meta.json")
    return Generation(name=name, arrays=arrays, meta=meta)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_file(path: Path, data: bytes) -> None:
    """Write `path` atomically and durably (temp file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def commit(data_dir: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> str:
    """Write a new generation and make it live; returns its name."""
    cdir = corpus_dir(data_dir)
    cdir.mkdir(parents=True, exist_ok=True)
    old = current_name(data_dir)
    number = int(old.split("-")[1]) + 1 if old else 1
    name = f"gen-{number:06d}"
    tmp = cdir / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(cdir / name, ignore_errors=True)
    tmp.mkdir()
    meta = dict(meta, version=FORMAT_VERSION, counts={k: len(arrays[k]) for k in KINDS})
    for k in KINDS:
        with open(tmp / f"{k}.u64", "wb") as fh:
            fh.write(np.ascontiguousarray(arrays[k], dtype="<u8").tobytes())
            fh.flush()
            os.fsync(fh.fileno())
    write_file(tmp / "meta.json", json.dumps(meta, indent=1, sort_keys=True).encode())
    _fsync_dir(tmp)
    os.rename(tmp, cdir / name)
    _fsync_dir(cdir)
    write_file(cdir / "CURRENT", name.encode() + b"\n")
    _fsync_dir(cdir)
    for stale in cdir.iterdir():
        if stale.name != name and stale.name.startswith(("gen-", ".gen-")):
            shutil.rmtree(stale, ignore_errors=True)
    return name
