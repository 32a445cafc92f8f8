"""`rempart nft`: the nftables sync as its own process, for hosts where `rempart serve` does not
run as root. It reads the running server's lists over the API (getBL / getWL, every `poll_s`)
and applies the differences with the same batches and resyncs as the in-process sync.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Iterable
from typing import Any

import click

from rempart.client import Client, ClientError
from rempart.config import ConfigError, load_settings
from rempart.engine.lists import ListEntry
from rempart.firewall.ruleset import table_script
from rempart.firewall.settings import NftSettings
from rempart.firewall.sync import NftSync, pause
from rempart.model import ListName

log = logging.getLogger(__name__)

EntryKey = tuple[ListName, str, str]  # list, kind, value


def entries_of(which: ListName, records: Iterable[Any], now: float) -> dict[EntryKey, ListEntry]:
    """The address and network entries of a getBL / getWL answer (other kinds are not
    network-level). getBL prints an address as a /32 or /128, which is installed as one."""
    from rempart.adapters.listfile import RecordError, parse_time
    from rempart.engine.keys import KeyError_
    from rempart.engine.lists import normalise

    out: dict[EntryKey, ListEntry] = {}
    for record in records:
        key = record.get("ip") if isinstance(record, dict) else None
        if not isinstance(key, str):
            continue
        try:
            value = normalise("netmask", key)
            expires = parse_time(str(record.get("expiration", "")))
        except (KeyError_, RecordError) as exc:
            log.warning("skipped %s-list record %r: %s", which.value, record, exc)
            continue
        host = value.endswith(("/32", "/128"))
        kind, value = ("ip", value.rsplit("/", 1)[0]) if host else ("netmask", value)
        known = out.get((which, kind, value))
        if known is not None and (known.expires == 0 or 0 < expires < known.expires):
            continue  # the same address listed twice (ip and /32): the longer expiry wins
        out[(which, kind, value)] = ListEntry(kind, value, expires, "", now)
    return out


class ListPoller:
    """The server's lists as last read (the sync's source), fed into the sync as differences."""

    def __init__(self, client: Client, settings: NftSettings) -> None:
        self.client = client
        self.entries: dict[EntryKey, ListEntry] = {}
        self.sync = NftSync(settings, self.source)

    def read(self) -> dict[EntryKey, ListEntry]:
        now = time.time()
        out: dict[EntryKey, ListEntry] = {}
        for which, command in ((ListName.BLOCK, "getBL"), (ListName.ALLOW, "getWL")):
            answer = self.client.call("GET", f"/?command={command}")
            records = answer.get(_ANSWER_KEY[command]) if isinstance(answer, dict) else None
            if not isinstance(records, list):
                raise ClientError(f"{command}: unexpected answer {str(answer)[:200]!r}")
            out.update(entries_of(which, records, now))
        return out

    def apply(self, fresh: dict[EntryKey, ListEntry]) -> int:
        """Hand the differences from the last read to the sync; how many there were."""
        changed = 0
        for key, entry in self.entries.items():
            if key not in fresh:
                self.sync.remove(key[0], entry)
                changed += 1
        for key, entry in fresh.items():
            old = self.entries.get(key)
            if old is None or old.expires != entry.expires:
                self.sync.put(key[0], entry)
                changed += 1
        self.entries = fresh
        return changed

    def source(self) -> list[tuple[ListName, ListEntry]]:
        return [(key[0], entry) for key, entry in self.entries.items()]

    async def run(self, stop: asyncio.Event, every: float) -> None:
        failing = False
        while not stop.is_set():
            try:
                self.apply(await asyncio.to_thread(self.read))
                if failing:
                    log.info("the server answers again")
                failing = False
            except ClientError as exc:
                if not failing:
                    log.warning("cannot read the lists (keeping the table as it is): %s", exc)
                failing = True
            await pause(stop, every)


_ANSWER_KEY = {"getBL": "bl_entries", "getWL": "wl_entries"}


async def _main(poller: ListPoller, sync: NftSync, every: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    poller.apply(await asyncio.to_thread(poller.read))  # the first resync has the lists
    await asyncio.gather(poller.run(stop, every), sync.run(stop))


@click.command("nft")
@click.option("--config", type=click.Path(dir_okay=False), help="TOML configuration file.")
@click.option("--data-dir", default=None, help="State directory (for the API password).")
@click.option("--url", default=None, help="Server URL (default: [server] host and port).")
@click.option(
    "--print-table",
    is_flag=True,
    help="Print the table an empty list would generate, with its sets and chain, and exit.",
)
def nft(config: str | None, data_dir: str | None, url: str | None, print_table: bool) -> None:
    """Keep the nftables sets in sync with a running server's lists (as a separate process:
    this one needs CAP_NET_ADMIN or an [nftables] command such as sudo -n nft; the server
    does not). [nftables] enabled is for the in-process sync and is not needed here."""
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    nft_settings = settings.section(NftSettings)
    if print_table:
        click.echo(table_script(nft_settings, {}, time.time()), nl=False)
        return
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        client = Client.for_settings(settings, data_dir or settings.server.data_dir, url)
    except (ClientError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    poller = ListPoller(client, nft_settings)
    try:
        asyncio.run(_main(poller, poller.sync, nft_settings.poll_s))
    except ClientError as exc:
        raise click.ClickException(str(exc)) from None
