"""Log tailing where no hook exists: follow log files, parse outcomes, report them.

`FileFollower` reads the complete lines appended to one path. It survives rotation by rename
(the old file is drained, then the new one read from its start; the old one is still watched for
a few seconds for a writer that has not reopened yet) and truncation (copytruncate: read again
from the start), and its position (device, inode, offset) is saved after every processed batch,
so a restarted tailer resumes where it stopped: lines are neither reported twice nor lost, even
when the file was rotated while the tailer was down (the rotated file is found next to the path
by its inode, e.g. `mail.log.1`; compressed rotations are out of reach, hence logrotate's
`delaycompress`). A file seen for the first time is read from its end (`[tail] start_at`).

`Tailer` turns lines into `LogEvent`s with a parser per file and hands them to a sink:
`EngineSink` (in-process, `rempart serve` with `[tail] files`) or `HttpSink` (a running server
over the native API, `rempart tail`). There is no hook to refuse a login, so enforcement goes
through the lists: after each failure the sink asks for a verdict, which is where the policy's
`block = {...}` rules add the source to the block list; export it to the data plane with
`GET /?command=getBL`. Bad lines are counted and skipped, never fatal.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from rempart.adapters.logparse import BadLine, LogEvent, LogParser, ParserError, load_parser
from rempart.adapters.logparse import regex_parser as make_regex_parser
from rempart.adapters.sources import source_login
from rempart.config import ConfigError
from rempart.engine.keys import KeyError_, canonical_login
from rempart.model import Attempt

if TYPE_CHECKING:
    from rempart.adapters.context import TailContext
    from rempart.engine.engine import Engine

log = logging.getLogger("rempart.tail")

MAX_LINE_BYTES = 65536
READ_CHUNK = 1 << 20
ROTATED_GRACE_SECONDS = 5.0
SUMMARY_SECONDS = 300.0


@dataclass(slots=True)
class Position:
    dev: int
    ino: int
    offset: int

    def to_json(self) -> dict[str, int]:
        return {"dev": self.dev, "ino": self.ino, "offset": self.offset}


@dataclass(slots=True)
class _Open:
    fh: Any
    dev: int
    ino: int
    offset: int  # end of the last complete line handed out
    buffer: bytes = b""
    until: float = 0.0  # for a rotated file: stop watching it after this


@dataclass(slots=True)
class Line:
    text: str
    item: _Open
    start: int  # byte offset of the line in its file
    end: int  # byte offset after its newline


class FileFollower:
    """The complete lines appended to one path, across rotations and restarts."""

    def __init__(
        self, path: str | Path, saved: list[Position] | None, start_at: str = "end"
    ) -> None:
        self.path = Path(path)
        self.current: _Open | None = None
        self.rotated: list[_Open] = []
        self.long_lines = 0
        self._open_initial(saved or [], start_at)

    # --- opening ------------------------------------------------------------------------------
    def _stat(self) -> os.stat_result | None:
        try:
            return os.stat(self.path)
        except OSError:
            return None

    def _open(self, path: Path, offset: int) -> _Open | None:
        try:
            fh = open(path, "rb")  # noqa: SIM115 - kept open while followed
        except OSError:
            return None
        st = os.fstat(fh.fileno())
        if offset > st.st_size:
            offset = 0  # truncated since
        fh.seek(offset)
        return _Open(fh, st.st_dev, st.st_ino, offset)

    def _find_by_inode(self, dev: int, ino: int) -> Path | None:
        folder = self.path.parent
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            return None
        for name in names:
            if not name.startswith(self.path.name) or name == self.path.name:
                continue
            try:
                st = os.stat(folder / name)
            except OSError:
                continue
            if st.st_dev == dev and st.st_ino == ino:
                return folder / name
        return None

    def _open_initial(self, saved: list[Position], start_at: str) -> None:
        st = self._stat()
        if not saved:
            if st is not None:
                self.current = self._open(self.path, st.st_size if start_at == "end" else 0)
            return
        for pos in saved:  # oldest first: files rotated away, then the one at the path
            if st is not None and (st.st_dev, st.st_ino) == (pos.dev, pos.ino):
                self.current = self._open(self.path, pos.offset)
                return
            # Rotated (perhaps while we were down): finish it before the newer files.
            old = self._find_by_inode(pos.dev, pos.ino)
            opened = self._open(old, pos.offset) if old is not None else None
            if opened is None:
                log.warning("tail %s: a file read before the restart is gone", self.path)
                continue
            opened.until = float("inf")  # drained once, then dropped
            self.rotated.append(opened)
        if st is not None:  # a file started since: read it whole
            self.current = self._open(self.path, 0)

    # --- reading ------------------------------------------------------------------------------
    def _read(self, item: _Open, limit: int) -> list[Line]:
        """Complete lines of one open file (up to about `limit` bytes)."""
        out: list[Line] = []
        while limit > 0:
            chunk = item.fh.read(min(READ_CHUNK, limit))
            if not chunk:
                break
            limit -= len(chunk)
            data = item.buffer + chunk
            base = item.offset
            start = 0
            while True:
                end = data.find(b"\n", start)
                if end < 0:
                    break
                raw = data[start:end]
                if len(raw) > MAX_LINE_BYTES:
                    self.long_lines += 1
                else:
                    text = raw.decode("utf-8", "replace").rstrip("\r")
                    out.append(Line(text, item, base + start, base + end + 1))
                start = end + 1
            item.offset = base + start
            item.buffer = data[start:]
            if len(item.buffer) > MAX_LINE_BYTES:  # a line without end: skip what we have
                self.long_lines += 1
                item.offset += len(item.buffer)
                item.buffer = b""
        return out

    def poll(self, limit: int = READ_CHUNK) -> list[Line]:
        """New complete lines, oldest file first. `Line.item.offset` moves past them; a
        consumer that cannot take a line calls `rewind(line)`."""
        out: list[Line] = []
        now = time.monotonic()
        for item in list(self.rotated):
            lines = self._read(item, limit)
            out += lines
            if not lines and (item.until == float("inf") or now > item.until):
                item.fh.close()  # drained (and its lines processed) in an earlier poll
                self.rotated.remove(item)
        st = self._stat()
        cur = self.current
        if cur is not None:
            out += self._read(cur, limit)
            if st is None or (st.st_dev, st.st_ino) != (cur.dev, cur.ino):
                # Renamed away (or deleted): drained above; watch it a little longer for a
                # writer that has not reopened its log yet.
                cur.until = now + ROTATED_GRACE_SECONDS
                self.rotated.append(cur)
                self.current = cur = None
            elif st.st_size < cur.offset + len(cur.buffer):
                log.info("tail %s: truncated, reading from the start", self.path)
                cur.fh.seek(0)
                cur.offset, cur.buffer = 0, b""
                out += self._read(cur, limit)
        if cur is None and st is not None:
            self.current = self._open(self.path, 0)
            if self.current is not None:
                out += self._read(self.current, limit)
        return out

    @staticmethod
    def rewind(line: Line) -> None:
        """Read `line` (and what follows it in its file) again at the next poll."""
        item = line.item
        item.fh.seek(line.start)
        item.offset = line.start
        item.buffer = b""

    def positions(self) -> list[Position]:
        """Where a restart resumes: every file still open (rotated ones first, oldest first),
        each at the end of its last processed line."""
        return [
            Position(item.dev, item.ino, item.offset)
            for item in [*self.rotated, self.current]
            if item is not None
        ]

    def close(self) -> None:
        for item in [*self.rotated, self.current]:
            if item is not None:
                item.fh.close()
        self.rotated, self.current = [], None


# --- sinks ------------------------------------------------------------------------------------
class Sink(Protocol):
    def send(self, event: LogEvent) -> None: ...


class SinkError(RuntimeError):
    """The sink cannot take events now (server unreachable): retry later, lose nothing."""


@dataclass
class EngineSink:
    """Reports straight into this process's engine (`rempart serve` with `[tail] files`)."""

    engine: Engine
    canonical: Callable[[str], str]

    def send(self, event: LogEvent) -> None:
        login = ""
        if event.login:
            try:
                login = self.canonical(event.login)
            except (KeyError_, ValueError):
                login = ""
        if not login and event.outcome == "success":
            return  # nothing to learn from an anonymous success
        attempt = Attempt(
            login=login or source_login(event.ip),
            ip=event.ip,
            protocol=event.protocol,
            raw_login=event.login,
        )
        outcome = event.to_outcome()
        for _ in range(event.count):
            self.engine.report(attempt, outcome)
        if not outcome.success and not outcome.policy_reject:
            # No hook can refuse this login: the verdict is asked so that the policy's
            # block rules put the source on the block list.
            self.engine.decide(attempt)


class HttpSink:
    """Reports to a running server over the native API (`/v1/report`, then `/v1/decide`)."""

    def __init__(self, url: str, password: str, timeout: float = 10.0) -> None:
        parts = urlsplit(url if "://" in url else "http://" + url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"unsupported URL scheme {parts.scheme!r}")
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        token = base64.b64encode(f"tail:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
        self.conn: http.client.HTTPConnection | None = None

    def _post(self, path: str, body: dict[str, Any]) -> None:
        for attempt in (1, 2):  # once more on a keep-alive connection the server closed
            if self.conn is None:
                cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
                self.conn = cls(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request("POST", self.prefix + path, json.dumps(body), self.headers)
                resp = self.conn.getresponse()
                payload = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise SinkError(f"cannot reach rempart: {exc}") from None
                continue
            if resp.status >= 500 or resp.status in (401, 407):
                raise SinkError(f"{path}: {resp.status} {payload[:200]!r}")
            if resp.status >= 400:
                log.warning("tail: %s refused an event: %s %s", path, resp.status, payload[:200])
            return

    def send(self, event: LogEvent) -> None:
        login = event.login
        if not login and event.outcome == "success":
            return
        body: dict[str, Any] = {
            "login": login or source_login(event.ip),
            "ip": event.ip,
            "protocol": event.protocol.value,
            "success": event.outcome == "success",
            "policy_reject": event.outcome == "policy_reject",
            "unknown_login": event.outcome == "unknown_login",
        }
        for _ in range(event.count):
            self._post("/v1/report", body)
        if event.outcome in ("failure", "unknown_login"):
            self._post("/v1/decide", {k: body[k] for k in ("login", "ip", "protocol")})

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class PrintSink:
    """Prints events as JSON lines (`rempart tail --print`: try a parser on a log)."""

    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out

    def send(self, event: LogEvent) -> None:
        self.out(
            json.dumps(
                {
                    "outcome": event.outcome,
                    "ip": event.ip,
                    "login": event.login,
                    "protocol": event.protocol.value,
                    "count": event.count,
                }
            )
        )


# --- the tailer --------------------------------------------------------------------------------
@dataclass
class FileStats:
    lines: int = 0
    events: int = 0
    ignored: int = 0
    bad: int = 0


@dataclass
class Source:
    path: str
    parser: LogParser
    follower: FileFollower | None = None
    stats: FileStats = field(default_factory=FileStats)


class Tailer:
    """Followers, parsers, one sink, and the offsets file."""

    def __init__(
        self,
        sources: Sequence[tuple[str, LogParser]],
        sink: Sink,
        state_file: str | Path | None,
        start_at: str = "end",
    ) -> None:
        self.sink = sink
        self.state_file = Path(state_file) if state_file else None
        saved = self._load()
        self.sources = [Source(str(Path(p)), parser) for p, parser in sources]
        for src in self.sources:
            src.follower = FileFollower(src.path, saved.get(os.path.abspath(src.path)), start_at)
        self._saved: dict[str, Any] = {k: [p.to_json() for p in v] for k, v in saved.items()}
        self._record_positions()
        self.save()  # a first start "at the end" must resume there, not at a later end

    def _record_positions(self) -> None:
        for src in self.sources:
            assert src.follower is not None
            self._saved[os.path.abspath(src.path)] = [p.to_json() for p in src.follower.positions()]

    def _load(self) -> dict[str, list[Position]]:
        """{absolute path: [positions, oldest file first]} from the offsets file."""
        if self.state_file is None or not self.state_file.exists():
            return {}
        try:
            data = json.loads(self.state_file.read_text())
            return {
                path: [Position(int(p["dev"]), int(p["ino"]), int(p["offset"])) for p in files]
                for path, files in data.items()
            }
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("tail: ignoring unreadable offsets file %s: %s", self.state_file, exc)
            return {}

    def save(self) -> None:
        """Write the offsets noted by the last `apply` (atomically: temporary file, rename)."""
        if self.state_file is None:
            return
        snapshot = json.dumps(self._saved)
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        with open(tmp, "w") as fh:
            fh.write(snapshot)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.state_file)

    def read(self) -> list[tuple[Source, list[Line]]]:
        """New lines of every file (file I/O only: safe to run in a worker thread)."""
        batches = []
        for src in self.sources:
            assert src.follower is not None
            lines = src.follower.poll()
            if lines:
                batches.append((src, lines))
        return batches

    def apply(self, batches: list[tuple[Source, list[Line]]], save: bool = True) -> int:
        """Parse and send, then note how far each file got (and save it, unless `save` is
        False: then call `save()`, e.g. from a worker thread). At the first line the sink
        cannot take (SinkError) every file rewinds to its first unsent line, kept for the next
        poll."""
        handled = 0
        error: SinkError | None = None
        for src, lines in batches:
            assert src.follower is not None
            rewound: set[int] = set()
            for line in lines:
                if error is None:
                    try:
                        self._line(src, line.text)
                        handled += 1
                        continue
                    except SinkError as exc:
                        error = exc
                if id(line.item) not in rewound:
                    rewound.add(id(line.item))
                    src.follower.rewind(line)
        self._record_positions()
        if save:
            self.save()
        if error is not None:
            raise error
        return handled

    def _line(self, src: Source, text: str) -> None:
        try:
            event = src.parser.parse(text)
        except BadLine as exc:
            src.stats.lines += 1
            src.stats.bad += 1
            log.warning("tail %s: bad line skipped (%s): %.200s", src.path, exc, text)
            return
        if event is not None:
            self.sink.send(event)  # may raise SinkError: the line is read again later
            src.stats.events += 1
        else:
            src.stats.ignored += 1
        src.stats.lines += 1

    def poll_once(self) -> int:
        batches = self.read()
        return self.apply(batches) if batches else 0

    def close(self) -> None:
        for src in self.sources:
            if src.follower is not None:
                src.follower.close()
        close = getattr(self.sink, "close", None)
        if close is not None:
            close()


# --- configuration -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TailSettings:
    files: list[tuple[str, LogParser]]
    poll_seconds: float
    state_file: str
    start_at: str


def parser_for(spec: dict[str, Any], where: str) -> LogParser:
    """The parser of a `[tail] files` entry or of the command line's options."""
    try:
        if spec.get("regex"):
            return make_regex_parser(
                str(spec["regex"]),
                str(spec.get("outcome", "failure")),
                str(spec.get("protocol", "other")),
            )
        if not spec.get("parser"):
            raise ParserError("needs 'parser' (dovecot, postfix, sshd, nginx) or 'regex'")
        return load_parser(str(spec["parser"]))
    except ParserError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def tail_settings(raw: dict[str, Any]) -> TailSettings:
    """Typed `[tail]` settings; ConfigError naming the entry and the key otherwise."""
    table = raw.get("tail", {})
    files = table.get("files", [])
    if not isinstance(files, list):
        raise ConfigError("[tail] files: expected an array of tables")
    parsed: list[tuple[str, LogParser]] = []
    for i, entry in enumerate(files, 1):
        where = f"[tail] files entry {i}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a table {{ path = ..., parser = ... }}")
        unknown = set(entry) - {"path", "parser", "regex", "outcome", "protocol"}
        if unknown:
            raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        path = entry.get("path")
        if not isinstance(path, str) or not path:
            raise ConfigError(f"{where}: 'path' must be a non-empty string")
        parsed.append((path, parser_for(entry, f"{where} ({path})")))
    poll = table.get("poll_seconds", 0.5)
    if isinstance(poll, bool) or not isinstance(poll, int | float) or not 0.05 <= poll <= 60:
        raise ConfigError(f"[tail] poll_seconds: a number from 0.05 to 60, got {poll!r}")
    state_file = table.get("state_file", "")
    if not isinstance(state_file, str):
        raise ConfigError("[tail] state_file: expected a string")
    start_at = table.get("start_at", "end")
    if start_at not in ("end", "start"):
        raise ConfigError(f'[tail] start_at: "end" or "start", got {start_at!r}')
    return TailSettings(parsed, float(poll), state_file, start_at)


def canonicalizer(service: TailContext) -> Callable[[str], str]:
    rules = service.settings.logins

    def canonical(raw: str) -> str:
        return canonical_login(raw, rules)

    return canonical


def log_summary(tailer: Tailer) -> None:
    """What each file gave since the start; a file whose lines all go unmatched says so (its
    daemon's log format may have changed)."""
    for src in tailer.sources:
        s = src.stats
        level = logging.WARNING if s.lines >= 1000 and not s.events else logging.INFO
        log.log(
            level,
            "tail %s (%s): %d lines, %d events, %d ignored, %d bad",
            src.path,
            src.parser.name,
            s.lines,
            s.events,
            s.ignored,
            s.bad,
        )


async def run_in_service(service: TailContext, settings: TailSettings, stop: asyncio.Event) -> None:
    """`rempart serve`'s tailer: file reads in a worker thread, engine calls on the loop."""
    state = settings.state_file or str(service.data_dir / "tail-offsets.json")
    loop = asyncio.get_running_loop()
    tailer = await loop.run_in_executor(
        None,
        lambda: Tailer(
            settings.files,
            EngineSink(service.engine, canonicalizer(service)),
            state,
            settings.start_at,
        ),
    )
    log.info("tailing %s", ", ".join(p for p, _ in settings.files))
    summary_at = time.monotonic() + SUMMARY_SECONDS
    try:
        while not stop.is_set():
            if time.monotonic() >= summary_at:
                summary_at += SUMMARY_SECONDS
                log_summary(tailer)
            try:
                batches = await loop.run_in_executor(None, tailer.read)
                if batches:
                    tailer.apply(batches, save=False)  # engine calls: on the loop
                    await loop.run_in_executor(None, tailer.save)
            except Exception:
                log.exception("tail: poll failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.poll_seconds)
    finally:
        tailer.close()


def tail_plan(service: TailContext) -> Callable[[asyncio.Event], asyncio.Future[None]] | None:
    """For `rempart serve`: None without `[tail] files`, else what starts the tailing task.
    A bad `[tail]` table stops the server before it listens, naming the entry and the key."""
    try:
        settings = tail_settings(service.settings.raw)
    except ConfigError as exc:
        raise SystemExit(f"config: {exc}") from None
    if not settings.files:
        return None
    return lambda stop: asyncio.ensure_future(run_in_service(service, settings, stop))
