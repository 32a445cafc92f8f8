"""Past days as a mail server logs them: the `learned` deployment of a scenario.

Owns writing the legitimate IMAP/POP3 traffic of the days before the scenario as Dovecot's
login processes log it (the real format, as in `adapters/logparsers/dovecot.toml`), and warming
a simulated Rempart through the real `rempart learn` path: the log is learned into a data
directory, whose familiarity and detector state the engine then restores, as `rempart serve`
does at start.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

from rempart.adapters.logparse import load_parser
from rempart.config import Settings
from rempart.engine.engine import Engine
from rempart.learn import DETECTOR_STATE, learn
from rempart.model import Protocol
from rempart.sim import world as world_mod
from rempart.sim.world import World

_LEGACY = {Protocol.IMAP: "imap", Protocol.POP3: "pop3"}


def write_dovecot_log(past: World, path: Path, shift: float) -> int:
    """Every IMAP/POP3 attempt of `past`, `shift` seconds earlier, as Dovecot logs it (all
    let through: nobody was protecting the service). Returns the lines written."""
    lines = 0
    last = shift
    with path.open("w", encoding="utf-8") as out:
        for n, event in enumerate(past.stream()):
            name = _LEGACY.get(event.protocol)
            if name is None:
                continue
            t = event.t + shift
            stamp = time.strftime("%b %d %H:%M:%S", time.gmtime(t))
            session = f"{n:016x}"
            if event.correct:
                out.write(
                    f"{stamp} {name}-login: Info: Login: user=<{event.login}>, method=PLAIN, "
                    f"rip={event.ip}, lip=192.0.2.1, mpid={n % 65536}, session=<{session}>\n"
                )
            else:
                out.write(
                    f"{stamp} {name}-login: Info: Disconnected: Connection closed (auth failed, "
                    f"1 attempts in 2 secs): user=<{event.login}>, method=PLAIN, "
                    f"rip={event.ip}, lip=192.0.2.1, session=<{session}>\n"
                )
            lines += 1
            last = t
    os.utime(path, (last, last))  # syslog lines carry no year: `learn` takes the file's
    return lines


def warm_from_logs(engine: Engine, world: World, settings: Settings) -> None:
    """Learn the days before `world` from their Dovecot log into `engine`, through a data
    directory as `rempart learn` then `rempart serve` would."""
    days = world.scenario.deployment.history_days
    quiet = dataclasses.replace(world.scenario, attacks=[], duration_h=24.0 * days)
    past = world_mod.build(quiet, world.seed)
    with tempfile.TemporaryDirectory(prefix="rempart-sim-history-") as tmp:
        log = Path(tmp) / "dovecot.log"
        write_dovecot_log(past, log, 0.0)  # the defender's clock starts the day after
        data = Path(tmp) / "data"
        learn(settings, data, [log], load_parser("dovecot"))
        from rempart.state.sqlite import SqliteStore

        store = SqliteStore(data)
        try:
            for login, marker, last in store.load_familiarity():
                engine.familiarity.restore(login, marker, last)
            saved = store.get_setting(DETECTOR_STATE)
            if saved and engine.campaign is not None:
                engine.campaign.load(json.loads(saved))
        finally:
            store.close()
