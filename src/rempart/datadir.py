"""The data directory: created private, checked usable, and locked by its one writer.

Everything under it (journal, state.sqlite3 and its WAL/SHM, counters.bin, the leak corpus,
keys, operator accounts) describes users: the directory is 0700 and the process umask 0o077, so
whatever any part of Rempart creates there is readable by the service's user only.

One process at a time may write it: `rempart serve` holds an exclusive `flock` on
`<data_dir>/rempart.lock` for its lifetime, and the file names the holder (pid, host, start
time) for the message the next one prints. The kernel drops the lock when the holder dies, so
a kill -9 leaves nothing to clean up. `rempart leaks ingest` writes only the corpus, which the
server picks up on its own; it takes its own lock (`leaks/ingest.lock`) against a second ingest.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import stat
import time
from pathlib import Path
from typing import IO

PRIVATE_UMASK = 0o077
DIR_MODE = 0o700
LOCK_NAME = "rempart.lock"
WORKERS_DIR = "workers"  # the decision workers' own directories (rempart.workers)


class DataDirError(Exception):
    """The data directory cannot be used; the message says why and what to do."""


def private_umask() -> None:
    """Files this process creates from now on are readable by its user only."""
    os.umask(PRIVATE_UMASK)


def prepare(path: str | Path, create: bool = True) -> Path:
    """The data directory, created 0700 (parents too) when missing; DataDirError if unusable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DataDirError(f"data directory {path} exists and is not a directory")
    if not path.exists():
        if not create:
            raise DataDirError(f"data directory {path} does not exist")
        try:
            path.mkdir(mode=DIR_MODE, parents=True)
        except OSError as exc:
            raise DataDirError(f"cannot create data directory {path}: {exc.strerror}") from None
    info = path.stat()
    if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) & 0o077:
        try:
            path.chmod(DIR_MODE)  # an older install's 0755: close it
        except OSError as exc:
            raise DataDirError(f"cannot make {path} private (0700): {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise DataDirError(
            f"data directory {path} is not writable by this user (uid {os.geteuid()})"
        )
    close_open_files(path)
    return path


def close_open_files(path: Path) -> None:
    """Files an older version left readable by others become the owner's only."""
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            entry = os.path.join(root, name)
            try:
                info = os.lstat(entry)
                if stat.S_ISLNK(info.st_mode) or not stat.S_IMODE(info.st_mode) & 0o077:
                    continue
                os.chmod(entry, DIR_MODE if stat.S_ISDIR(info.st_mode) else 0o600)
            except OSError:
                continue  # not ours to change (another owner): left as the operator made it


class DirLock:
    """An exclusive flock on a lock file, naming its holder; released by `release` or death."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self._file: IO[str] | None = None

    def acquire(self) -> DirLock:
        try:
            fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held while running)
        except OSError as exc:
            raise DataDirError(f"cannot open lock file {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = describe_holder(fh.read())
            fh.close()
            raise DataDirError(
                f"{self.path.parent} is in use by {holder}; {self.what} refuses to share it "
                "(stop that process, or give this one another data directory)"
            ) from None
        fh.seek(0)
        fh.truncate()
        started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": started}))
        fh.flush()
        self._file = fh
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None

    def __enter__(self) -> DirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def describe_holder(text: str) -> str:
    try:
        info = json.loads(text)
        return f"pid {info['pid']} on {info['host']} (since {info['since']})"
    except (ValueError, KeyError, TypeError):
        return "another process (its lock file names no holder)"


def lock(data_dir: Path, what: str = "rempart serve") -> DirLock:
    """Hold the data directory's writer lock; DataDirError naming the holder if taken."""
    return DirLock(data_dir / LOCK_NAME, what).acquire()


def worker_dir(data_dir: str | Path, index: int) -> Path:
    """Where decision worker `index` keeps its state store (the Redis mirror) and journal."""
    return Path(data_dir) / WORKERS_DIR / str(index)
