"""`rempart learn`: warm a data directory from past authentication logs before serving.

Owns replaying log files (plain, gzip, rotated series) through the log-tailing parsers into
the two things a running deployment learns from outcomes: account familiarity (the networks
each account succeeded from) and the campaign detector's baselines. It runs while the server is
stopped (it takes the data directory's lock when one exists), streams line by line (memory is
bounded by the familiarity kept, as in `rempart serve`), and records what it learned per file
(a hash of the file's first bytes, and how far it read), so learning a file again, or a rotated
copy of it, adds nothing, and a log that grew since is learned from where it stopped.

Timestamps are read from each line: syslog (`Nov 23 17:17:39`, the year from the file's
modification time), ISO 8601 (`2026-11-23T17:17:39+01:00`) and nginx's
`[23/Nov/2026:17:17:39 +0000]`. Syslog times carry no zone and are taken as UTC.
"""

from __future__ import annotations

import calendar
import fcntl
import gzip
import hashlib
import io
import json
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from rempart.adapters.logparse import BadLine, LogParser
from rempart.config import Settings
from rempart.engine.campaign import CampaignDetector
from rempart.engine.familiarity import Familiarity
from rempart.engine.keys import net_keys

DETECTOR_STATE = "campaign.state"  # the same setting `rempart serve` restores
LEARNED_FILES = "learn.files"  # what was learned: [{head, head_bytes, offset, path}, ...]
HEAD_BYTES = 4096  # a file is known by the hash of its first bytes (a rename keeps it)
MAX_RECORDS = 10_000
LOCK_NAME = "rempart.lock"

_MONTHS = {m: i for i, m in enumerate(calendar.month_abbr) if m}
_SYSLOG = re.compile(r"^([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d\d):(\d\d):(\d\d)")
_ISO = re.compile(r"^(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?)(Z|[+-]\d\d:?\d\d)?")
_NGINX = re.compile(r"\[(\d\d)/([A-Z][a-z]{2})/(\d{4}):(\d\d):(\d\d):(\d\d) ([+-]\d{4})\]")
_ROTATED = re.compile(r"^(?P<base>.+?)[.-](?P<n>\d+)(?P<gz>\.gz)?$")


class LearnError(Exception):
    """Learning cannot start (the data directory is in use, a parser is unknown...)."""


@dataclass
class FileReport:
    path: str
    lines: int = 0
    events: int = 0
    skipped: bool = False  # already learned in full
    resumed_at: int = 0  # bytes already learned before this run
    problems: list[str] = field(default_factory=list)


@dataclass
class Summary:
    files: list[FileReport] = field(default_factory=list)
    successes: int = 0
    failures: int = 0
    new_networks: int = 0
    accounts: int = 0
    first: float | None = None
    last: float | None = None

    @property
    def problems(self) -> list[str]:
        return [p for f in self.files for p in f.problems]


def series(paths: list[Path]) -> list[Path]:
    """The files in learning order: each rotated series oldest first (`log.3.gz`, `log.2`,
    `log.1`, `log`), each file once."""

    def key(path: Path) -> tuple[str, int]:
        match = _ROTATED.match(path.name)
        if match:
            return str(path.with_name(match["base"])), -int(match["n"])
        return str(path), 0

    unique = {p.resolve() if p.exists() else p: p for p in paths}
    return sorted(unique.values(), key=key)


def timestamp(line: str, year: int) -> float | None:
    """UNIX time of a log line, or None when it starts with no known timestamp."""
    match = _SYSLOG.match(line)
    if match and match[1] in _MONTHS:
        month, day = _MONTHS[match[1]], int(match[2])
        h, m, s = int(match[3]), int(match[4]), int(match[5])
        return float(calendar.timegm((year, month, day, h, m, s, 0, 0, 0)))
    match = _ISO.match(line)
    if match:
        text = match[1].replace(" ", "T") + (match[2] or "+00:00").replace("Z", "+00:00")
        try:
            return datetime.fromisoformat(text).timestamp()
        except ValueError:
            return None
    match = _NGINX.search(line)
    if match and match[2] in _MONTHS:
        text = f"{match[3]}-{_MONTHS[match[2]]:02d}-{match[1]}T{match[4]}:{match[5]}:{match[6]}"
        try:
            return datetime.fromisoformat(text + match[7][:3] + ":" + match[7][3:]).timestamp()
        except ValueError:
            return None
    return None


def _open(path: Path) -> io.BufferedIOBase:
    with path.open("rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else path.open("rb")


def _head(path: Path) -> tuple[str, int]:
    with _open(path) as f:
        data = f.read(HEAD_BYTES)
    return hashlib.sha256(data).hexdigest(), len(data)


def _lock(data_dir: Path) -> IO[str] | None:
    """The data directory's lock, when one exists (`rempart serve` holds it while running)."""
    path = data_dir / LOCK_NAME
    if not path.exists():
        return None
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise LearnError(
            f"{data_dir} is in use (a running rempart serve holds {path}): stop it, then learn"
        ) from None
    return handle


class Learner:
    """Familiarity and detector of one data directory, fed with log events."""

    def __init__(self, settings: Settings, store: Any) -> None:
        self.store = store
        f = settings.familiarity
        self.familiarity = Familiarity(f.ttl_days * 86400.0, f.max_networks, f.max_devices)
        for login, marker, last in store.load_familiarity():
            self.familiarity.restore(login, marker, last)
        self.detector = CampaignDetector(settings.campaign)
        saved = store.get_setting(DETECTOR_STATE)
        self.warnings: list[str] = []
        if saved:
            try:
                self.detector.load(json.loads(saved))
            except ValueError as exc:
                self.warnings.append(f"setting {DETECTOR_STATE!r} unreadable, learning anew: {exc}")
        raw = store.get_setting(LEARNED_FILES)
        self.records: list[dict[str, Any]] = json.loads(raw) if raw else []
        self.touched: set[str] = set()  # accounts whose familiarity changed

    def learned_offset(self, head: str, head_bytes: int) -> int:
        for record in self.records:
            if record["head"] == head and record["head_bytes"] == head_bytes:
                return int(record["offset"])
        return 0

    def record(self, path: Path, head: str, head_bytes: int, offset: int) -> None:
        self.records = [
            r for r in self.records if not (r["head"] == head and r["head_bytes"] == head_bytes)
        ]
        self.records.append(
            {"head": head, "head_bytes": head_bytes, "offset": offset, "path": str(path)}
        )
        del self.records[:-MAX_RECORDS]

    def learn_file(
        self,
        path: Path,
        parser: LogParser,
        summary: Summary,
        progress: Callable[[int], object] = lambda n: None,
    ) -> FileReport:
        report = FileReport(str(path))
        summary.files.append(report)
        try:
            head, head_bytes = _head(path)
            year = datetime.fromtimestamp(path.stat().st_mtime, UTC).year
        except (OSError, EOFError, zlib.error) as exc:
            report.problems.append(f"{path}: cannot read: {exc}")
            return report
        start = self.learned_offset(head, head_bytes)
        report.resumed_at = start
        offset = start
        try:
            with _open(path) as f:
                if start:
                    f.seek(start)
                    if f.tell() != start:
                        raise EOFError("shorter than what was learned before")
                line_no = 0
                last_t: float | None = None
                for raw in f:
                    line_no += 1
                    offset += len(raw)
                    progress(len(raw))
                    if not raw.endswith(b"\n"):
                        # A line still being written (or a truncated file): learned next time.
                        offset -= len(raw)
                        report.problems.append(f"{path}:{line_no}: incomplete last line, left")
                        break
                    if b"\0" in raw:
                        report.problems.append(f"{path}:{line_no}: binary data, line skipped")
                        continue
                    line = raw.decode("utf-8", "replace")
                    report.lines += 1
                    try:
                        event = parser.parse(line)
                    except BadLine as exc:
                        report.problems.append(f"{path}:{line_no}: {exc}")
                        continue
                    t = timestamp(line, year)
                    if t is None:
                        t = last_t
                    if t is None or event is None:
                        if event is not None:
                            report.problems.append(f"{path}:{line_no}: no timestamp, skipped")
                        continue
                    last_t = t
                    self._learn(event, t, summary)
                    report.events += 1
        except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            report.problems.append(f"{path}: read stopped after byte {offset}: {exc}")
        if offset == start and start:
            report.skipped = True
        self.record(path, head, head_bytes, offset)
        return report

    def _learn(self, event: Any, t: float, summary: Summary) -> None:
        login = event.login
        subnet = net_keys(event.ip).subnet
        marker = "n" + subnet
        success = event.outcome == "success"
        if success:
            if login:
                seen = self.familiarity.accounts.get(login)
                if seen is None or marker not in seen:
                    summary.new_networks += 1
                self.familiarity.learn(login, marker, t)
                self.touched.add(login)
            familiar = True
            summary.successes += 1
        else:
            familiar = bool(login) and self.familiarity.familiar(login, marker, t)
            summary.failures += event.count
        summary.first = t if summary.first is None else min(summary.first, t)
        summary.last = t if summary.last is None else max(summary.last, t)
        protocol = event.protocol.value
        unknown = event.outcome == "unknown_login"
        for _ in range(event.count if not success else 1):
            self.detector.observe(
                protocol, t, not success, unknown, familiar, False, event.ip, subnet
            )

    def save(self) -> None:
        """Write what was learned through the store (familiarity entries changed, the
        detector's state, the record of learned files) and wait until it is durable."""
        for login in self.touched:
            for marker, last in self.familiarity.accounts.get(login, {}).items():
                self.store.put_familiarity(login, marker, last)
        # A posture the history raised is not the live one: the server restores its own.
        for st in self.detector.protocols.values():
            st.calm_since = None
        self.store.put_setting(
            DETECTOR_STATE, json.dumps(self.detector.dump(), separators=(",", ":"))
        )
        self.store.put_setting(LEARNED_FILES, json.dumps(self.records, separators=(",", ":")))
        self.store.flush(timeout=600.0)


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def learn(
    settings: Settings,
    data_dir: Path,
    paths: list[Path],
    parser: LogParser,
    progress: Callable[[int], object] = lambda n: None,
) -> Summary:
    """Learn `paths` into `data_dir`; the summary lists every problem by file and line."""
    from rempart.state import open_store

    data_dir.mkdir(parents=True, exist_ok=True)
    held = _lock(data_dir)
    try:
        store = open_store(settings, data_dir)
        try:
            learner = Learner(settings, store)
            summary = Summary()
            for path in series(paths):
                learner.learn_file(path, parser, summary, progress)
            summary.accounts = len(learner.familiarity.accounts)
            learner.save()
            for warning in learner.warnings:
                summary.files.insert(0, FileReport("(data directory)", problems=[warning]))
            return summary
        finally:
            store.close()
    finally:
        if held is not None:
            held.close()
