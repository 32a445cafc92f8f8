"""Decision workers: extra processes that answer the decision API on `[server] decision_port`,
so one host decides on as many cores as it has.

This module owns their life and their link to the primary (the `rempart serve` process that
starts them):
- the primary binds the decision port once, so a port in use is said before anything starts,
  and a worker that restarts keeps the port and the connections queued on it;
- it starts the workers (`python -m rempart.decision_worker`, given the listening sockets), waits until
  each says it is ready, restarts one that dies (with a growing delay if it keeps dying), and
  stops them all (SIGTERM, then SIGKILL after STOP_TIMEOUT_S);
- each worker writes JSON lines on a control pipe: `{"ready": pid}` once; then, every second,
  its figures for the primary's dashboard and metrics (`{"figures": …}`, see
  `LiveStats.figures`) and the app-password uses it saw (`{"uses": [[id, when, network],
  ...]}`), which the primary, their one writer, records. A worker stops when its primary is
  gone.

What they learn they share as separate hosts do: each worker is a replication node
(`rempart.state.replication`) with its own SQLite mirror and journal under
`<data_dir>/workers/<i>/`, so its reports reach the other workers and the primary through Redis,
and the primary's list, posture and reset changes reach it. Hence `decision_workers` needs
`[state] backend = "redis"` (checked by `rempart.preflight`).

Why processes and not threads: a decision is pure Python-level CPU under one interpreter lock.
Why a port of their own: everything an operator changes (the console and its sessions, the
app-password API, operator accounts) and every effect outside the process (HAProxy and
nftables feeds, the Postfix policy service, log tailing) keeps one writer, the primary, on
`[server] port`; the decision API alone is what needs more than one core.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rempart.acceptor import listening_sockets
from rempart.datadir import WORKERS_DIR

log = logging.getLogger(__name__)

CONFIG_NAME = "config.toml"  # the primary's configuration, as the workers read it
START_TIMEOUT_S = 120.0  # a worker loads the leak corpus and warms from Redis before it is ready
STOP_TIMEOUT_S = 10.0
STEADY_S = 30.0  # a worker that ran this long before dying is restarted at once
MAX_RESTART_DELAY_S = 30.0
TOPS_WANTED_S = 3.0
MAX_QUEUED = 1000  # control messages a worker keeps while its primary is not reading


class WorkerError(Exception):
    """A decision worker could not start; the message says why."""


def worker_count(setting: int, cores: int | None = None) -> int:
    """`[server] decision_workers` as a number of processes: -1 is one per core this process
    may run on, less one for the primary, and at least one."""
    if setting >= 0:
        return setting
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
        cores = cores or os.cpu_count() or 1
    return max(1, cores - 1)


class Control:
    """A worker's end of its link to the primary: JSON lines on the control pipe, written by a
    thread of their own, so a primary slow to read never stalls the decisions; and, on its
    stdin, a byte from the primary each second while the dashboard wants the top sources."""

    def __init__(self, fd: int, parent: int, requests_fd: int = 0) -> None:
        self.fd = fd
        self.parent = parent
        self.requests_fd = requests_fd
        os.set_blocking(requests_fd, False)
        self._tops_until = 0.0
        self.broken = False
        self.dropped = 0
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name="rempart-control", daemon=True)
        self._thread.start()

    def send(self, message: dict[str, Any]) -> bool:
        """Queue one message; False once the primary is gone. Beyond MAX_QUEUED waiting
        messages (the primary is not reading), new ones are dropped and counted."""
        if self.broken:
            return False
        if self._queue.qsize() >= MAX_QUEUED:
            self.dropped += 1
            return True
        self._queue.put(orjson.dumps(message) + b"\n")
        return True

    def _write(self) -> None:
        while (line := self._queue.get()) is not None:
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(self.fd, view) :]
            except OSError:  # BrokenPipeError: the primary is gone
                self.broken = True
                return

    def close(self, timeout: float = 2.0) -> None:
        """Send what is queued (at most `timeout` seconds), then close the pipe."""
        self._queue.put(None)
        self._thread.join(timeout)
        with contextlib.suppress(OSError):
            os.close(self.fd)

    def alive(self) -> bool:
        """Whether the primary that started this worker still runs."""
        return os.getppid() == self.parent

    def tops_wanted(self) -> bool:
        """Whether the primary asked for the top sources in the last TOPS_WANTED_S seconds."""
        try:
            asked = os.read(self.requests_fd, 4096)
        except BlockingIOError:
            asked = None
        except OSError:
            asked = b""
        if asked == b"":  # end of file: the primary is gone
            self.broken = True
        elif asked:
            self._tops_until = time.monotonic() + TOPS_WANTED_S
        return time.monotonic() < self._tops_until


@dataclass(slots=True)
class _Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    ready: asyncio.Future[None] | None = None
    started: float = 0.0
    restarts: int = 0
    failures: int = 0  # deaths in a row, each before STEADY_S
    restart_at: float = 0.0
    last_exit: int | None = None
    reading: asyncio.Task[None] | None = field(default=None, repr=False)


class DecisionWorkers:
    """The primary's side: the decision port, the worker processes, their control pipes."""

    def __init__(
        self,
        count: int,
        data_dir: Path,
        config_text: str,
        on_message: Callable[[int, dict[str, Any]], None],
        wants_tops: Callable[[], bool] = lambda: False,
    ) -> None:
        self.count = count
        self.data_dir = Path(data_dir)
        self.config_text = config_text
        self.on_message = on_message
        self.wants_tops = wants_tops
        self.sockets: list[socket.socket] = []
        self.workers = [_Worker(i) for i in range(count)]
        self._asked = 0.0
        self.figures: dict[int, dict[str, Any]] = {}  # each worker's last (LiveStats.figures)
        self.stopping = False
        self.config_file: Path | None = None  # the configuration the workers read (start())

    def bind(self, host: str, port: int) -> int:
        """Listen on the decision port (every address of `host`); the bound port. Raises
        OSError (in use, …)."""
        self.sockets = listening_sockets(host, port, backlog=4096)
        return int(self.sockets[0].getsockname()[1])

    def _write_config(self) -> None:
        if not self.config_text:
            return
        folder = self.data_dir / WORKERS_DIR
        folder.mkdir(mode=0o700, exist_ok=True)
        self.config_file = folder / CONFIG_NAME
        self.config_file.write_text(self.config_text)  # the process umask keeps it 0600

    async def start(self) -> None:
        """Start every worker and wait until each is ready; WorkerError if one is not."""
        self._write_config()
        for worker in self.workers:
            await self._spawn(worker)
        deadline = time.monotonic() + START_TIMEOUT_S
        for worker in self.workers:
            assert worker.process is not None and worker.ready is not None
            exited: asyncio.Future[Any] = asyncio.ensure_future(worker.process.wait())
            waiting: set[asyncio.Future[Any]] = {worker.ready, exited}
            done, _ = await asyncio.wait(
                waiting,
                timeout=max(0.0, deadline - time.monotonic()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if worker.ready not in done:
                exited.cancel()
                await self.stop()
                if not done:
                    raise WorkerError(
                        f"decision worker {worker.index} was not ready after "
                        f"{START_TIMEOUT_S:.0f} s"
                    )
                raise WorkerError(
                    f"decision worker {worker.index} exited with status "
                    f"{worker.process.returncode} before it was ready (its messages are above)"
                )
            exited.cancel()

    async def _spawn(self, worker: _Worker) -> None:
        read_fd, write_fd = os.pipe()
        fds = [s.fileno() for s in self.sockets]
        command = [sys.executable, "-m", "rempart.decision_worker", "--index", str(worker.index)]
        command += ["--data-dir", str(self.data_dir), "--control-fd", str(write_fd)]
        command += ["--listen-fds", ",".join(map(str, fds))]
        if self.config_file is not None:
            command += ["--config", str(self.config_file)]
        try:
            worker.process = await asyncio.create_subprocess_exec(
                *command, pass_fds=(*fds, write_fd), stdin=subprocess.PIPE
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        loop = asyncio.get_running_loop()
        worker.ready = loop.create_future()
        worker.started = time.monotonic()
        reader = asyncio.StreamReader(limit=1 << 20)
        pipe = os.fdopen(read_fd, "rb", buffering=0)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
        worker.reading = asyncio.ensure_future(self._read(worker, reader, worker.ready))
        log.info("decision worker %d started (pid %d)", worker.index, worker.process.pid)

    async def _read(
        self, worker: _Worker, reader: asyncio.StreamReader, ready: asyncio.Future[None]
    ) -> None:
        while line := await reader.readline():
            try:
                message = orjson.loads(line)
                if not isinstance(message, dict):
                    raise ValueError("not an object")
                if "ready" in message and not ready.done():
                    ready.set_result(None)
                    continue
                figures = message.get("figures")
                if isinstance(figures, dict):
                    self.figures[worker.index] = figures
                self.on_message(worker.index, message)
            except Exception:  # a worker's bug must not stop the primary
                log.exception("decision worker %d: unusable control message", worker.index)

    async def run(self, stop: asyncio.Event) -> None:
        """Restart workers that die until `stop` is set; then stop them all."""
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.2)
                if stop.is_set():
                    break
                now = time.monotonic()
                if self.wants_tops() and now - self._asked >= 1.0:
                    self._asked = now
                    self._ask_tops()
                for worker in self.workers:
                    process = worker.process
                    if process is None or process.returncode is None:
                        continue
                    if worker.restart_at == 0.0:
                        self._schedule_restart(worker, process.returncode, now)
                    elif now >= worker.restart_at:
                        worker.restart_at = 0.0
                        worker.restarts += 1
                        try:
                            await self._spawn(worker)
                        except OSError as exc:  # no process could be made (EAGAIN, ENOMEM)
                            log.error("decision worker %d not restarted: %s", worker.index, exc)
                            worker.started = time.monotonic()  # the next delay grows
        finally:
            await self.stop()

    def _ask_tops(self) -> None:
        for worker in self.workers:
            process = worker.process
            if process is not None and process.returncode is None and process.stdin is not None:
                with contextlib.suppress(Exception):  # a worker dying now: run() restarts it
                    process.stdin.write(b"t")

    def _schedule_restart(self, worker: _Worker, status: int, now: float) -> None:
        worker.last_exit = status
        lived = now - worker.started
        worker.failures = 0 if lived >= STEADY_S else worker.failures + 1
        delay = 0.5 if worker.failures == 0 else min(MAX_RESTART_DELAY_S, 2.0**worker.failures)
        worker.restart_at = now + delay
        log.error(
            "decision worker %d (pid %s) exited with status %d after %.1f s; restarting it in "
            "%.1f s",
            worker.index,
            worker.process.pid if worker.process else "?",
            status,
            lived,
            delay,
        )

    async def stop(self) -> None:
        """SIGTERM every worker, SIGKILL those still running after STOP_TIMEOUT_S; close the
        decision port."""
        if self.stopping:
            return
        self.stopping = True
        running = [w.process for w in self.workers if w.process and w.process.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        if running:
            await asyncio.wait(
                [asyncio.ensure_future(p.wait()) for p in running], timeout=STOP_TIMEOUT_S
            )
            for process in running:
                if process.returncode is None:
                    log.error("decision worker pid %d did not stop: killed", process.pid)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()
        for worker in self.workers:
            if worker.reading is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(worker.reading, 2)  # the last uses they sent
        for sock in self.sockets:
            sock.close()

    def status(self) -> list[dict[str, Any]]:
        """Each worker's pid, state, restarts and counts (for `stats`)."""
        out = []
        for w in self.workers:
            figures = self.figures.get(w.index, {})
            running = bool(w.process and w.process.returncode is None)
            out.append(
                {
                    "index": w.index,
                    "pid": w.process.pid if w.process else None,
                    "running": running,
                    "restarts": w.restarts,
                    "last_exit": w.last_exit,
                    "decisions": _by_label(figures.get("decisions", {})),
                    "reports": _by_label(figures.get("reports", {})),
                }
            )
        return out


def _by_label(counts: dict[str, int]) -> dict[str, int]:
    """{"imap/deny": 3, "pop3/deny": 1} -> {"deny": 4}."""
    out: dict[str, int] = {}
    for key, n in counts.items():
        label = key.rpartition("/")[2]
        out[label] = out.get(label, 0) + n
    return out


class WorkerCollector(Collector):
    """Prometheus figures of the decision workers, on the primary's /metrics: each worker's
    decisions and reports as it last told them (its own, like `rempart_decisions` is the
    primary's own; sum both for the host), whether it runs, and its restarts."""

    def __init__(self, workers: DecisionWorkers) -> None:
        self.workers = workers

    def collect(self) -> Iterator[Metric]:
        decisions = CounterMetricFamily(
            "rempart_worker_decisions",
            "A decision worker's decisions",
            labels=["worker", "verdict"],
        )
        reports = CounterMetricFamily(
            "rempart_worker_reports", "A decision worker's reports", labels=["worker", "outcome"]
        )
        running = GaugeMetricFamily(
            "rempart_worker_running", "1 while the decision worker runs", labels=["worker"]
        )
        restarts = CounterMetricFamily(
            "rempart_worker_restarts", "Times the decision worker was restarted", labels=["worker"]
        )
        for status in self.workers.status():
            worker = str(status["index"])
            for verdict, n in sorted(status["decisions"].items()):
                decisions.add_metric([worker, verdict], n)
            for outcome, n in sorted(status["reports"].items()):
                reports.add_metric([worker, outcome], n)
            running.add_metric([worker], int(status["running"]))
            restarts.add_metric([worker], status["restarts"])
        yield from (decisions, reports, running, restarts)
