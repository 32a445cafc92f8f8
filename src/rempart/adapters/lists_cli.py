"""`rempart lists import|export`: block and allow lists in bulk, in wforce's `getBL` shape.

Both talk to the running server over its API, never to the data directory: the server is the
one writer of the lists, so an import is journaled entry by entry, reaches Redis peers, and
takes effect at once, with no restart and no second process racing the store. An import is
checked whole before anything is applied (every bad line named by number), then sent in
batches that each share one durable commit.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import click

from rempart.adapters.listfile import Record, RecordError, detect_format, read_records
from rempart.adapters.listfile import write_records as write_file
from rempart.client import Client, ClientError
from rempart.config import ConfigError, load_settings

_ENTRY_ERROR = re.compile(r"^400: entry (\d+): (.*)$", re.S)
MAX_SHOWN = 20


def _client(config: str | None, data_dir: str | None, url: str | None) -> Client:
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        return Client.for_settings(settings, data_dir or settings.server.data_dir, url)
    except ClientError as exc:
        raise click.ClickException(str(exc)) from None


def batches(records: list[Record], max_bytes: int) -> list[list[Record]]:
    """Consecutive records grouped so that each request body stays under `max_bytes`."""
    out: list[list[Record]] = []
    current: list[Record] = []
    size = 64
    for record in records:
        cost = len(json.dumps(record.as_dict(), ensure_ascii=False).encode()) + 2
        if current and size + cost > max_bytes:
            out.append(current)
            current, size = [], 64
        current.append(record)
        size += cost
    if current:
        out.append(current)
    return out


def _send(client: Client, which: str, batch: list[Record], dry_run: bool, confirm: bool) -> Any:
    body = {
        "list": which,
        "entries": [r.as_dict() for r in batch],
        "dry_run": dry_run,
        "confirm": confirm,
    }
    return client.call("POST", "/v1/lists/batch", body)


def _line_error(exc: ClientError, batch: list[Record]) -> str | None:
    found = _ENTRY_ERROR.match(str(exc))
    if found is None or int(found.group(1)) >= len(batch):
        return None
    return f"line {batch[int(found.group(1))].line}: {found.group(2)}"


@click.group("lists")
def lists() -> None:
    """Import or export block and allow lists (CSV or JSON lines, getBL's shape)."""


common = [
    click.option("--list", "which", type=click.Choice(["block", "allow"]), default="block"),
    click.option(
        "--format",
        "fmt",
        type=click.Choice(["csv", "jsonl"]),
        default=None,
        help="File format (default: from the file name, .csv else JSON lines).",
    ),
    click.option("--url", default=None, help="Server URL (default from [server])."),
    click.option("--config", type=click.Path(dir_okay=False), help="TOML configuration file."),
    click.option("--data-dir", default=None, help="Where the API password file is."),
]


def _with_common(func: Any) -> Any:
    for option in reversed(common):
        func = option(func)
    return func


@lists.command("import")
@click.argument("path", type=click.Path(dir_okay=False, exists=True, allow_dash=True))
@_with_common
@click.option("--confirm-wide", is_flag=True, help="Accept networks wider than the confirm limit.")
@click.option(
    "--batch-bytes",
    default=60_000,
    show_default=True,
    type=click.IntRange(1024),
    help="Largest request body (keep under [server] max_body_bytes).",
)
def import_command(
    path: str,
    which: str,
    fmt: str | None,
    url: str | None,
    config: str | None,
    data_dir: str | None,
    confirm_wide: bool,
    batch_bytes: int,
) -> None:
    """Add every entry of PATH (- for stdin) to a list of the running server.

    Lines take getBL's shape: {"ip": "192.0.2.0/24", "expiration": "2026-Dec-01 09:33:38",
    "reason": "..."} (or login, iplogin "ip:login", ja3, ipja3 "ip:ja3"; "+infinity" never
    expires; "expire_secs" may replace "expiration"). CSV: type,key,expiration,reason.
    Nothing is applied unless every line is good; entries already expired are skipped."""
    started = time.monotonic()
    client = _client(config, data_dir, url)
    fmt = detect_format(path, fmt)
    stream = sys.stdin if path == "-" else open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
    with stream:
        read = list(read_records(stream, fmt))
    records = [r for r in read if isinstance(r, Record)]
    errors = [str(e) for e in read if isinstance(e, RecordError)]
    groups = batches(records, batch_bytes)
    if records:  # the server checks everything (with its login rules) before anything is applied
        _shown["step"] = -1
        checked = 0
        for batch in groups:
            try:
                _send(client, which, batch, True, confirm_wide)
            except ClientError as exc:
                line = _line_error(exc, batch)
                if line is None:
                    raise click.ClickException(f"nothing imported: {exc}") from None
                errors.append(line)
            checked += len(batch)
            _progress("checked", checked, len(records))
    if errors:
        errors.sort(key=lambda text: int(text.split(":", 1)[0].removeprefix("line ")))
        for error in errors[:MAX_SHOWN]:
            click.echo(error, err=True)
        more = f" (the first {MAX_SHOWN} shown)" if len(errors) > MAX_SHOWN else ""
        raise click.ClickException(
            f"nothing imported: {len(errors)} bad line{'s' * (len(errors) != 1)}{more}"
        )
    added = expired = done = 0
    _shown["step"] = -1
    for batch in groups:
        try:
            answer = _send(client, which, batch, False, confirm_wide)
        except ClientError as exc:
            raise click.ClickException(
                f"stopped after {added} entries were added: {exc}. Running the same import "
                "again is safe (an entry replaces the one with the same key)."
            ) from None
        added += answer["added"]
        expired += answer["expired"]
        done += len(batch)
        _progress("imported", done, len(records))
    seconds = time.monotonic() - started
    click.echo(
        f"{which} list: {added} entries added, {expired} already expired and skipped, "
        f"{len(groups)} batches, {seconds:.1f} s",
        err=True,
    )


@lists.command("export")
@click.argument("path", type=click.Path(dir_okay=False, allow_dash=True), default="-")
@_with_common
def export_command(
    path: str,
    which: str,
    fmt: str | None,
    url: str | None,
    config: str | None,
    data_dir: str | None,
) -> None:
    """Write the live entries of a list to PATH (default stdout), in the shape getBL answers."""
    client = _client(config, data_dir, url)
    command = "getWL" if which == "allow" else "getBL"
    try:
        answer = client.call("GET", f"/?command={command}")
    except ClientError as exc:
        raise click.ClickException(str(exc)) from None
    records = answer["wl_entries" if which == "allow" else "bl_entries"]
    fmt = detect_format(path, fmt)
    if path == "-":
        count = write_file(records, sys.stdout, fmt)
    else:
        with Path(path).open("w", encoding="utf-8", newline="") as out:
            count = write_file(records, out, fmt)
    click.echo(f"{which} list: {count} entries exported", err=True)


_shown = {"step": -1}


def _progress(what: str, done: int, total: int) -> None:
    """On a terminal, one line rewritten; otherwise a line at each tenth and at the end."""
    if sys.stderr.isatty():
        click.echo(f"\r{what} {done:,}/{total:,}", err=True, nl=done == total)
        return
    step = done * 10 // max(total, 1)
    if step != _shown["step"] or done == total:
        _shown["step"] = step
        click.echo(f"{what} {done:,}/{total:,}", err=True)
