"""`rempart leaks …` commands (a click group the main CLI mounts): ingest, exposed, check, stats.

Every error is one line on stderr naming the file (and line) with a non-zero exit; passwords are
read from a prompt or stdin, never from argv, and never printed.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from rempart.breach.audit import UserDbError, load_userdb
from rempart.breach.corpus import LeakCorpus
from rempart.breach.ingest import IngestError, Progress, ingest
from rempart.breach.keyfile import KeyFileError
from rempart.breach.settings import BreachSettings
from rempart.breach.store import CorpusError
from rempart.config import ConfigError, load_settings

_common = [
    click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("rempart-data"),
        show_default=True,
        help="Rempart's data directory (corpus, key).",
    ),
    click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="TOML config ([leaks], [dovecot], [logins]).",
    ),
]


def common(f: Any) -> Any:
    for option in reversed(_common):
        f = option(f)
    return f


def _settings(config_file: Path | None) -> BreachSettings:
    try:
        return BreachSettings.of(load_settings(config_file))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _corpus(data_dir: Path, config_file: Path | None) -> LeakCorpus:
    try:
        return LeakCorpus(data_dir, _settings(config_file))
    except (CorpusError, KeyFileError, OSError) as exc:
        raise click.ClickException(str(exc)) from None


@click.group("leaks")
def leaks() -> None:
    """Leak corpus: ingest combo lists as keyed fingerprints, audit, export, check passwords."""


class _Bar:
    """tqdm progress per file: bytes with rate and ETA, lines/s in the postfix."""

    def __init__(self, enabled: bool | None) -> None:
        self.enabled = enabled
        self.bar: tqdm | None = None
        self.t0 = 0.0
        self.lines = 0

    def start(self, path: str, total: int | None, done_lines: int) -> None:
        self.bar = tqdm(
            total=total, unit="B", unit_scale=True, desc=Path(path).name, disable=self.enabled,
            file=sys.stderr, dynamic_ncols=True,
        )  # fmt: skip
        self.t0, self.lines = time.monotonic(), 0
        if done_lines:
            self.bar.write(f"{path}: resuming after line {done_lines}")

    def advance(self, position: int, lines: int) -> None:
        if self.bar is None:
            return
        self.lines += lines
        self.bar.update(max(0, position - self.bar.n))
        rate = self.lines / max(time.monotonic() - self.t0, 1e-9)
        self.bar.set_postfix_str(f"{self.lines:,} lines, {rate:,.0f} lines/s")

    def end(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@leaks.command("ingest")
@click.argument("files", nargs=-1, required=True)
@click.option("--source", default=None, help="Source name recorded for these files.")
@click.option(
    "--audit-userdb",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Dovecot passwd-file: mark accounts whose current password is in the list.",
)
@click.option("--restart", is_flag=True, help="Discard an interrupted ingest instead of resuming.")
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@common
def ingest_cmd(
    files: tuple[str, ...],
    source: str | None,
    audit_userdb: Path | None,
    restart: bool,
    progress: bool | None,
    as_json: bool,
    data_dir: Path,
    config_file: Path | None,
) -> None:
    """Ingest combo lists (plain, gzip, or - for stdin); resumable after an interruption."""
    settings = _settings(config_file)
    try:
        userdb = load_userdb(audit_userdb, settings.logins) if audit_userdb else None
    except UserDbError as exc:
        raise click.ClickException(str(exc)) from None
    bar = _Bar(None if progress is None else not progress)
    hooks = Progress(start_file=bar.start, advance=bar.advance, end_file=bar.end)
    t0 = time.monotonic()
    try:
        summary = ingest(data_dir, list(files), settings, source, userdb, restart, hooks)
    except (IngestError, CorpusError, KeyFileError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(
            f"{exc.filename or data_dir}: {exc.strerror or exc}; the corpus is unchanged, "
            "run the same command to resume"
        ) from None
    summary["seconds"] = round(time.monotonic() - t0, 3)
    if userdb is not None:
        summary["audit"] = {"accounts": len(userdb.accounts), "unsupported": userdb.unsupported}
    if as_json:
        click.echo(json.dumps(summary, indent=1))
    else:
        click.echo(_render_summary(summary))


def _render_summary(s: dict[str, Any]) -> str:
    out = []
    for f in s["files"]:
        out.append(
            f"{f['path']} [{f['source']}]: {f['lines']:,} lines, {f['valid']:,} valid, "
            f"{f['pairs_added']:,} new pairs, {f['duplicates']:,} duplicates, "
            f"{f['rejected']:,} rejected"
        )
        for reason, n in sorted(f["rejected_by_reason"].items(), key=lambda kv: -kv[1]):
            lines = ", ".join(str(x) for x in f["first_rejected_lines"].get(reason, []))
            out.append(f"  rejected {n:,}: {reason} (first lines: {lines})")
    rate = s["lines"] / s["seconds"] if s.get("seconds") else 0
    out.append(
        f"total: {s['lines']:,} lines read, {s['pairs_added']:,} pairs added, "
        f"{s['duplicates']:,} duplicates, {s['rejected']:,} rejected lines, "
        f"{s['logins_added']:,} new logins ({rate:,.0f} lines/s)"
    )
    out.append(
        f"corpus {s['generation']}: {s['corpus']['pairs']:,} pairs, "
        f"{s['corpus']['logins']:,} logins, {s['corpus']['dovecot']:,} Dovecot fingerprints"
    )
    if "audit" in s:
        out.append(
            f"audit: {len(s['exposed_found'])} account(s) with their current password exposed "
            f"(of {s['audit']['accounts']:,} checked); see `rempart leaks exposed`"
        )
        for scheme, n in sorted(s["audit"]["unsupported"].items()):
            out.append(f"  skipped {n} account(s) with unsupported scheme {scheme}")
    return "\n".join(out)


@leaks.command("exposed")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv")
@common
def exposed_cmd(fmt: str, data_dir: Path, config_file: Path | None) -> None:
    """Export accounts whose current password is exposed (login, source, date; no password)."""
    rows = _corpus(data_dir, config_file).exposed_accounts()
    if fmt == "json":
        click.echo(json.dumps(rows, indent=1))
        return
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["login", "source", "date", "restricted"])
    for r in rows:
        writer.writerow([r["login"], r["source"], r["date"], "yes" if r["restricted"] else "no"])


@leaks.command("check")
@click.option("--login", prompt=True, help="The account the new password is for.")
@common
def check_cmd(login: str, data_dir: Path, config_file: Path | None) -> None:
    """Check a new password (read from a hidden prompt, or stdin when piped): leaked, popular, strength."""
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise click.ClickException("no password given on stdin")
    result = _corpus(data_dir, config_file).password_check(login, password)
    click.echo(json.dumps(result, indent=1))
    if not result["acceptable"]:
        sys.exit(1)


@leaks.command("password-changed")
@click.argument("login")
@common
def password_changed_cmd(login: str, data_dir: Path, config_file: Path | None) -> None:
    """Record that LOGIN changed its password: lifts its exposed-account restriction."""
    was = _corpus(data_dir, config_file).password_changed(login)
    click.echo(f"{login}: {'restriction lifted' if was else 'recorded (was not restricted)'}")


@leaks.command("stats")
@common
def stats_cmd(data_dir: Path, config_file: Path | None) -> None:
    """Corpus size, sources and memory."""
    click.echo(json.dumps(_corpus(data_dir, config_file).stats(), indent=1))
