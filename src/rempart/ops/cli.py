"""Command-line groups of the operations console: `status`, `report`, `operator`.

`rempart status post --service imap --level restricted "text"` posts a public notice;
`rempart report incident --since T --until T` writes the self-contained HTML incident report;
`rempart operator add|remove|list` manages console accounts (argon2 hashes).
"""

from __future__ import annotations

import getpass
import os
import time
from pathlib import Path

import click

from rempart.config import ConfigError, Settings, load_settings
from rempart.ops import report as report_mod
from rempart.ops import timeparse
from rempart.ops.host_journals import HostJournals
from rempart.ops.journal import Journal
from rempart.ops.notices import LEVELS, NoticeError, Notices
from rempart.ops.operators import OperatorError, Operators
from rempart.ops.web import when

config_option = click.option(
    "--config", "config", type=click.Path(dir_okay=False), help="TOML configuration file."
)
data_dir_option = click.option(
    "--data-dir", default=None, help="State directory (default: [server] data_dir)."
)


def _settings(config: str | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _data_dir(config: str | None, data_dir: str | None) -> Path:
    return Path(data_dir or _settings(config).server.data_dir)


def _prepared(path: Path) -> Path:
    """The data directory for a command that writes to it: created private, or a clear error."""
    from rempart.datadir import DataDirError, prepare

    try:
        return prepare(path)
    except DataDirError as exc:
        raise click.ClickException(str(exc)) from None


def _time(text: str | None, name: str) -> float:
    try:
        return timeparse.parse(text or "", name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from None


# --- status ------------------------------------------------------------------------------------
@click.group("status")
def status() -> None:
    """Notices on the public status page (/status)."""


@status.command("post")
@click.option("--service", required=True, help="Service name, e.g. imap, web, payments.")
@click.option("--level", required=True, type=click.Choice(LEVELS), help="up clears the notice.")
@click.option("--by", default=None, help="Who posts (default: your user name).")
@click.argument("text")
@config_option
@data_dir_option
def status_post(
    service: str, level: str, by: str | None, text: str, config: str | None, data_dir: str | None
) -> None:
    """Post TEXT for SERVICE. No links: users are told to type the site's address themselves."""
    path = _prepared(_data_dir(config, data_dir))
    author = by or os.environ.get("SUDO_USER") or getpass.getuser()
    from rempart.ops.settings import OpsSettings

    try:
        services = OpsSettings.of(_settings(config)).services
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    try:
        notice = Notices(path, services).post(service, level, text, f"cli:{author}")
    except NoticeError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"posted at {when(notice.t)}: {notice.service} {notice.level}: {notice.text}")


@status.command("list")
@config_option
@data_dir_option
def status_list(config: str | None, data_dir: str | None) -> None:
    """Print every notice, oldest first."""
    for n in Notices(_data_dir(config, data_dir)).all():
        click.echo(f"{when(n.t)}  {n.id:<10} {n.service:<10} {n.level:<10} {n.by:<16} {n.text}")


# --- report ------------------------------------------------------------------------------------
@click.group("report")
def report() -> None:
    """Reports built from the journal."""


@report.command("incident")
@click.option("--since", required=True, help="Start (ISO time, UNIX seconds, or e.g. 6h ago).")
@click.option("--until", default=None, help="End (same forms; default now).")
@click.option("--out", "out", default=None, type=click.Path(dir_okay=False), help="HTML file.")
@config_option
@data_dir_option
def report_incident(
    since: str, until: str | None, out: str | None, config: str | None, data_dir: str | None
) -> None:
    """Write a self-contained HTML incident report (inline charts, no network needed)."""
    start = _time(since, "--since")
    end = _time(until, "--until") or time.time()
    if start >= end:
        raise click.BadParameter("must be before --until", param_hint="--since")
    target = Path(out or f"incident-{time.strftime('%Y%m%dT%H%M', time.gmtime(start))}.html")
    if not target.parent.is_dir():
        raise click.BadParameter(f"directory {target.parent} does not exist", param_hint="--out")
    path = _data_dir(config, data_dir)
    journal_dir = path / "journal"
    if not journal_dir.is_dir():
        raise click.ClickException(f"no journal under {journal_dir}")
    journal = HostJournals(path)  # the decision workers' journals too
    checked, broken = journal.verify()
    integrity = (
        f"Journal intact: {checked:,} records verified (hash chain)."
        if broken is None
        else f"WARNING: journal broken at {broken.segment} line {broken.line}: {broken.why}; "
        f"figures may be incomplete."
    )
    model = report_mod.build(
        journal.records(since=start, until=end), start, end, Notices(path).all(), integrity
    )
    try:
        target.write_text(report_mod.render(model), encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {target}: {exc.strerror}") from None
    click.echo(
        f"wrote {target}: {model.records:,} records, {model.totals['decisions']:,} decisions, "
        f"{len(model.ips):,} hostile IPs, {len(model.actions)} operator actions"
    )
    if broken is not None:
        raise click.ClickException(integrity)


# --- operators ---------------------------------------------------------------------------------
@click.group("operator")
def operator() -> None:
    """Console accounts (passwords stored as argon2id hashes in <data_dir>/operators.json)."""


@operator.command("add")
@click.argument("name")
@click.password_option(envvar="REMPART_OPERATOR_PASSWORD", help="Prompted when omitted.")
@config_option
@data_dir_option
def operator_add(name: str, password: str, config: str | None, data_dir: str | None) -> None:
    """Create NAME or change its password."""
    path = _prepared(_data_dir(config, data_dir))
    try:
        Operators(path).add(name, password)
    except OperatorError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"operator {name} saved; the API password no longer signs in to the console")
    _await_journal(path, name)


@operator.command("remove")
@click.argument("name")
@config_option
@data_dir_option
def operator_remove(name: str, config: str | None, data_dir: str | None) -> None:
    """Delete NAME (their console sessions end at their next request)."""
    try:
        removed = Operators(_data_dir(config, data_dir)).remove(name)
    except OperatorError as exc:
        raise click.ClickException(str(exc)) from None
    if not removed:
        raise click.ClickException(f"no operator named {name}")
    click.echo(f"operator {name} removed; their console sessions end now")
    _await_journal(_data_dir(config, data_dir), name)


def _await_journal(data_dir: Path, name: str, wait: float = 3.0) -> None:
    """Say whether a running `rempart serve` journaled the change (it looks every second);
    without one, its next start journals it."""
    target = Operators(data_dir).fingerprints().get(name)
    journal = Journal(data_dir / "journal")
    after = journal.seq
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        time.sleep(0.2)
        for rec in journal.records_after(after, '"operator_'):
            if rec.get("operator") == name and rec.get("fingerprint") == target:
                click.echo("journaled by the running server")
                return
    click.echo(
        "not journaled yet: a running `rempart serve` records it within a second, "
        "else its next start does"
    )


@operator.command("list")
@config_option
@data_dir_option
def operator_list(config: str | None, data_dir: str | None) -> None:
    """Print the operator names."""
    try:
        names = sorted(Operators(_data_dir(config, data_dir)).load())
    except OperatorError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("\n".join(names) if names else "no operator: the API password signs in as admin")
