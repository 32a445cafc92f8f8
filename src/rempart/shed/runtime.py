"""HAProxy runtime API client (the stats socket): read stats and tables, update maps and maxconn.

Each call opens the UNIX socket, sends ``;``-separated commands and reads until HAProxy closes
it. Every failure (socket missing, refused, timeout, command error) raises
:class:`RuntimeUnavailable`, which the control loop treats as "keep the last good state".
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from dataclasses import dataclass

_TABLE_ENTRY = re.compile(r"key=(\S+).*?http_req_cnt=(\d+).*?http_req_rate\(\d+\)=(\d+)")
# Columns the control loop reads; an answer without them is not HAProxy's statistics.
_STAT_COLUMNS = {"pxname", "svname", "scur", "qcur", "stot", "rtime", "slim"}


class RuntimeUnavailable(RuntimeError):
    """The HAProxy runtime socket could not be used."""


@dataclass(frozen=True, slots=True)
class TableEntry:
    count: int  # requests since the entry was created
    rate: int  # requests in the table's rate period (1 s for the shed tables)


class HAProxyRuntime:
    """Commands over ``socket_path``; ``timeout`` bounds each exchange."""

    def __init__(self, socket_path: str, timeout: float = 1.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    async def command(self, *commands: str) -> str:
        for cmd in commands:
            if "\n" in cmd or ";" in cmd:
                raise ValueError(f"runtime command must be one line without ';': {cmd!r}")
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_unix_connection(self.socket_path)
                try:
                    writer.write(("; ".join(commands) + "\n").encode())
                    await writer.drain()
                    data = await reader.read()
                finally:
                    writer.close()
        except TimeoutError:
            raise RuntimeUnavailable(
                f"HAProxy runtime socket {self.socket_path}: no answer within {self.timeout:g} s"
            ) from None
        except OSError as exc:
            raise RuntimeUnavailable(f"HAProxy runtime socket {self.socket_path}: {exc}") from exc
        return data.decode("utf-8", "replace")

    async def show_stat(self) -> list[dict[str, str]]:
        """Rows of ``show stat`` (one per frontend, backend and server) as dicts."""
        text = await self.command("show stat")
        header = text.partition("\n")[0]
        if not text.startswith("# ") or not set(header[2:].split(",")) >= _STAT_COLUMNS:
            raise RuntimeUnavailable(f"unexpected 'show stat' answer: {text[:80]!r}")
        try:
            rows = list(csv.DictReader(io.StringIO(text[2:])))
        except csv.Error as exc:
            raise RuntimeUnavailable(f"unreadable 'show stat' answer: {exc}") from None
        for row in rows:
            if None in row or any(value is None for value in row.values()):
                raise RuntimeUnavailable(f"'show stat' row of another width: {row}"[:200])
        return rows

    async def show_table(self, table: str) -> dict[str, TableEntry]:
        text = await self.command(f"show table {table}")
        if not text.startswith(f"# table: {table},"):
            raise RuntimeUnavailable(f"unexpected 'show table {table}' answer: {text[:80]!r}")
        entries: dict[str, TableEntry] = {}
        for line in text.splitlines()[1:]:
            if not line.strip():
                continue
            match = _TABLE_ENTRY.search(line)
            if not line.startswith("0x") or match is None:
                raise RuntimeUnavailable(f"unreadable 'show table {table}' line: {line[:80]!r}")
            entries[match.group(1)] = TableEntry(int(match.group(2)), int(match.group(3)))
        return entries

    async def set_map(self, map_file: str, values: dict[str, str]) -> None:
        """Set every ``key value`` in the map, adding keys HAProxy does not hold yet."""
        if not values:
            return
        answer = await self.command(*(f"set map {map_file} {k} {v}" for k, v in values.items()))
        if "entry not found" in answer:
            current = await self.command(f"show map {map_file}")
            present = {line.split()[1] for line in current.splitlines() if len(line.split()) >= 3}
            missing = [f"add map {map_file} {k} {v}" for k, v in values.items() if k not in present]
            if missing:
                answer = await self.command(*missing)
        _check(answer)

    async def add_hostile(self, map_file: str, source: str) -> None:
        _check(
            await self.command(f"del map {map_file} {source}", f"add map {map_file} {source} 1"),
            ignore=("key not found",),
        )

    async def del_hostile(self, map_file: str, source: str) -> None:
        _check(await self.command(f"del map {map_file} {source}"), ignore=("key not found",))

    async def set_maxconn(self, backend: str, server: str, value: int) -> None:
        _check(await self.command(f"set maxconn server {backend}/{server} {int(value)}"))


# Phrases of HAProxy 2.6 runtime answers that mean the command was not applied.
REFUSALS = (
    "unknown",
    "error",
    "not found",
    "invalid",
    "denied",
    "no such",
    "garbage",
    "require",
    "cannot",
    "can't",
    "failed",
)


def _check(answer: str, ignore: tuple[str, ...] = ()) -> None:
    lowered = answer.lower()
    for phrase in ignore:
        lowered = lowered.replace(phrase, "")
    if any(marker in lowered for marker in REFUSALS):
        raise RuntimeUnavailable(f"HAProxy refused the command: {answer.strip()[:200]}")
