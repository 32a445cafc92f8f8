"""Log tailing inside `rempart serve` (`[tail] files`): file reads in a worker thread, engine
calls on the event loop, the offsets file next to the other state. The machinery (following,
parsing, sinks, settings) is in `rempart.adapters.tail`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rempart.adapters.settings import TailSettings
from rempart.adapters.tail.sinks import EngineSink
from rempart.adapters.tail.tailer import Tailer, log_summary
from rempart.engine.keys import canonical_login

if TYPE_CHECKING:
    from rempart.adapters.context import TailContext
    from rempart.engine.engine import Engine

log = logging.getLogger("rempart.tail")

SUMMARY_SECONDS = 300.0


async def run_tailing(
    engine: Engine,
    canonical: Callable[[str], str],
    settings: TailSettings,
    state_file: Path,
    stop: asyncio.Event,
) -> None:
    """Follow `settings.files` into `engine` until `stop` is set: file reads in a worker
    thread, engine calls on the loop."""
    loop = asyncio.get_running_loop()
    tailer = await loop.run_in_executor(
        None,
        lambda: Tailer(
            settings.files, EngineSink(engine, canonical), state_file, settings.start_at
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
    A bad `[tail]` table stops the server before it listens, naming the entry and the key.
    What the tailer needs is taken from its context here."""
    settings = service.settings.section(TailSettings)
    if not settings.files:
        return None
    engine = service.engine
    rules = service.settings.logins
    state_file = Path(settings.state_file or service.data_dir / "tail-offsets.json")

    def canonical(raw: str) -> str:
        return canonical_login(raw, rules)

    return lambda stop: asyncio.ensure_future(
        run_tailing(engine, canonical, settings, state_file, stop)
    )
