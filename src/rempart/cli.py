"""The `rempart` command: serve, config, journal, lists, and the groups of other packages."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

import click
import tomli_w

from rempart import compiled_core
from rempart.adapters.cli import nginx_config_command, tail
from rempart.adapters.lists_cli import lists
from rempart.apppass.cli import app_passwords
from rempart.breach.cli import leaks
from rempart.config import ConfigError, Settings, effective, load_settings, read_file
from rempart.config import reference as reference_text
from rempart.engine.policy import FUNCTIONS, SIGNALS
from rempart.extras import MissingExtra
from rempart.firewall.cli import nft
from rempart.ops.cli import operator, report, status
from rempart.shed.cli import shed
from rempart.sim.cli import sim


def _settings(config: str | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _failure(exc: ConfigError, config: str | None) -> click.ClickException:
    """A configuration error as the CLI shows it: with the file it came from."""
    return click.ClickException(str(exc.in_file(config) if config and not exc.file else exc))


def _data_dir(settings: Settings, data_dir: str | None) -> str:
    return data_dir or settings.server.data_dir


config_option = click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False),
    help="TOML configuration file (defaults apply without one).",
)
data_dir_option = click.option(
    "--data-dir", default=None, help="State directory (default: [server] data_dir, ./rempart-data)."
)


@click.group()
@click.version_option(
    package_name="rempart",
    message=f"%(prog)s %(version)s (decision core: {compiled_core()})",
)
def main() -> None:
    """Rempart: a shield for logins and availability."""
    # Whatever any command writes (state, journal, corpus, keys, exports) is personal data.
    from rempart.datadir import private_umask

    private_umask()


@main.command()
@config_option
@data_dir_option
@click.option("--host", default=None, help="Listen address (default 127.0.0.1).")
@click.option(
    "--port", default=None, type=click.IntRange(0, 65535), help="Listen port (default 8084)."
)
def serve(config: str | None, data_dir: str | None, host: str | None, port: int | None) -> None:
    """Run the decision service (wforce-compatible and native APIs, metrics)."""
    import logging

    from rempart.server import run

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from rempart.preflight import preflight

    settings = _settings(config)
    from rempart.config import check_host
    from rempart.datadir import DataDirError
    from rempart.server import StartupError

    if host is not None:
        try:
            check_host(host, "--host")
        except ConfigError as exc:
            raise click.BadParameter(
                str(exc).removeprefix("--host: "), param_hint="--host"
            ) from None
    try:
        preflight(settings)  # the same checks as `rempart config check`
        run(
            settings,
            _data_dir(settings, data_dir),
            host or settings.server.host,
            settings.server.port if port is None else port,
            Path(config).read_text() if config else "",  # what decision workers read
        )
    except ConfigError as exc:
        raise _failure(exc, config) from None
    except (MissingExtra, DataDirError, StartupError) as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--parser",
    "parser_name",
    default=None,
    help="Shipped log parser: dovecot, postfix, sshd, nginx (default dovecot without --regex).",
)
@click.option(
    "--regex",
    default=None,
    help="Custom regular expression with named groups ip and login (as in [tail]).",
)
@click.option(
    "--outcome",
    type=click.Choice(["success", "failure", "unknown_login", "policy_reject"]),
    default="failure",
    show_default=True,
    help="What a --regex match means.",
)
@click.option("--protocol", default="other", show_default=True, help="Protocol of --regex lines.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@config_option
@data_dir_option
def learn(
    files: tuple[Path, ...],
    parser_name: str | None,
    regex: str | None,
    outcome: str,
    protocol: str,
    quiet: bool,
    config: str | None,
    data_dir: str | None,
) -> None:
    """Warm the data directory from past logs before serving: account familiarity and the
    campaign detector's baselines. Rotated series (log, log.1, log.2.gz) are read oldest first;
    a file already learned is skipped, a grown one resumed. Run it while the server is stopped."""
    from tqdm import tqdm

    from rempart.adapters.logparse import ParserError, load_parser, regex_parser
    from rempart.learn import LearnError, file_size, learn, series

    settings = _settings(config)
    if regex is not None and parser_name is not None:
        raise click.UsageError("give --parser or --regex, not both")
    try:
        parser = (
            regex_parser(regex, outcome, protocol)
            if regex is not None
            else load_parser(parser_name or "dovecot")
        )
    except ParserError as exc:
        raise click.UsageError(str(exc)) from None
    ordered = series(list(files))
    total = sum(file_size(p) for p in ordered)
    with tqdm(
        total=total, unit="B", unit_scale=True, disable=quiet, desc="learning", leave=False
    ) as bar:
        try:
            summary = learn(
                settings, Path(_data_dir(settings, data_dir)), list(files), parser, bar.update
            )
        except LearnError as exc:
            raise click.ClickException(str(exc)) from None
    for each in summary.files:
        for problem in each.problems[:20]:
            click.echo(problem, err=True)
        if len(each.problems) > 20:
            click.echo(f"{each.path}: {len(each.problems) - 20} more problems", err=True)
    learned = [f for f in summary.files if f.lines or f.skipped]
    span = ""
    if summary.first is not None and summary.last is not None:
        days = (summary.last - summary.first) / 86400
        span = f" over {days:.1f} days"
    click.echo(
        f"learned {sum(f.lines for f in summary.files):,} lines "
        f"({sum(f.events for f in summary.files):,} authentications: {summary.successes:,} "
        f"successes, {summary.failures:,} failures){span} from {len(learned)} file(s); "
        f"{summary.new_networks:,} new account networks, {summary.accounts:,} accounts known; "
        f"{sum(f.skipped for f in summary.files)} already learned"
    )
    if summary.problems:
        raise SystemExit(1)


@main.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("show")
@config_option
@click.option("--rules", is_flag=True, help="Also print the shipped default policy rules.")
@click.option("--reference", is_flag=True, help="Print the documented defaults file.")
@click.option("--reference-shed", is_flag=True, help="Print the documented [shed] keys.")
def config_show(config: str | None, rules: bool, reference: bool, reference_shed: bool) -> None:
    """Print the effective configuration, every default included."""
    if reference:
        click.echo(reference_text())
        return
    if reference_shed:
        from rempart.shed import config as shed_config

        doc = shed_config.__doc__ or ""
        click.echo(doc.split("::", 1)[1].split("Errors raise", 1)[0].rstrip())
        return
    _settings(config)  # the file must be valid before it is shown
    shown = effective(read_file(config) if config else {})
    click.echo(tomli_w.dumps(shown))
    if rules:
        from rempart.engine.engine import default_rule_tables

        click.echo(
            "# shipped default rules\n"
            + tomli_w.dumps({"policy": {"rules": default_rule_tables()}})
        )
        click.echo("# signals usable in 'when':")
        for name, doc in {**SIGNALS, **FUNCTIONS}.items():
            click.echo(f"#   {name}: {doc}")


@config_group.command("check")
@config_option
def config_check(config: str | None) -> None:
    """Validate a configuration file, rules included."""
    from rempart.preflight import preflight

    settings = _settings(config)
    try:
        checked = preflight(settings)  # the same checks as `rempart serve`
    except ConfigError as exc:
        raise _failure(exc, config) from None
    click.echo(f"ok: {checked.rules} rules")


def parse_time(text: str | None, name: str) -> float:
    """UNIX seconds from ISO 8601, a UNIX number, or a relative '2h' / '6h ago'."""
    from rempart.ops import timeparse

    try:
        return timeparse.parse(text or "", name)
    except ValueError as exc:
        raise click.BadParameter(str(exc).removeprefix(f"{name}: "), param_hint=name) from None


def _journal_dir(settings: Settings, data_dir: str | None) -> Path:
    """The journal of a data directory, which must exist: reading never creates one."""
    path = Path(_data_dir(settings, data_dir)) / "journal"
    if not path.is_dir():
        raise click.ClickException(
            f"no journal at {path}: is the data directory right (--data-dir, [server] data_dir)?"
        )
    return path


@main.group("journal", invoke_without_command=True)
@click.option("--login", default="", help="Only records of this login (canonicalised).")
@click.option("--ip", default="", help="Only records of this IP.")
@click.option("--since", default=None, help="From (ISO time, UNIX seconds, or e.g. 6h ago).")
@click.option("--until", default=None, help="Until (same forms).")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    help="decision, report, list_add, list_del, posture, reset, postfix_refusal (repeatable).",
)
@click.option("--limit", default=0, type=int, help="At most this many records (latest last).")
@config_option
@data_dir_option
@click.pass_context
def journal_group(
    ctx: click.Context,
    login: str,
    ip: str,
    since: str | None,
    until: str | None,
    kinds: tuple[str, ...],
    limit: int,
    config: str | None,
    data_dir: str | None,
) -> None:
    """Query the journal (JSON lines on stdout)."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = (config, data_dir)
        return
    from rempart.engine.keys import KeyError_, canonical_login, net_keys
    from rempart.ops.host_journals import HostJournals

    settings = _settings(config)
    try:
        login = canonical_login(login, settings.logins) if login else ""
        ip = net_keys(ip).ip if ip else ""
    except KeyError_ as exc:
        raise click.BadParameter(str(exc)) from None
    journal = HostJournals(_journal_dir(settings, data_dir).parent)  # decision workers' too
    records = journal.records(
        login=login,
        ip=ip,
        since=parse_time(since, "--since"),
        until=parse_time(until, "--until"),
        kinds=frozenset(kinds),
    )
    if limit:
        from collections import deque

        records = iter(deque(records, maxlen=limit))
    out = sys.stdout
    for rec in records:
        out.write(json.dumps(rec, ensure_ascii=False) + "\n")


@journal_group.command("verify")
@click.pass_obj
def journal_verify(obj: tuple[str | None, str | None]) -> None:
    """Check the hash chain (name the first broken record), then that every list entry in
    force, protocol posture and console operator has its journal record (name each that has
    not)."""
    from rempart.ops.host_journals import HostJournals
    from rempart.ops.journal_check import missing_records
    from rempart.ops.operators import OperatorError, Operators

    settings = _settings(obj[0])
    data_dir = Path(_data_dir(settings, obj[1]))
    journal = HostJournals(_journal_dir(settings, obj[1]).parent)  # decision workers' too
    count, broken = journal.verify()
    if broken:
        raise click.ClickException(
            f"journal broken at {broken.segment} line {broken.line} (seq {broken.seq}): "
            f"{broken.why}; {count} records before it are intact"
        )
    try:
        operators = Operators(data_dir).load()
    except OperatorError as exc:
        raise click.ClickException(str(exc)) from None
    missing = missing_records(journal, data_dir, operators)
    if missing:
        lines = "\n".join(f"  {m}" for m in missing[:50])
        more = f"\n  ... and {len(missing) - 50} more" if len(missing) > 50 else ""
        raise click.ClickException(
            f"journal chain intact ({count} records), but it lacks {len(missing)} change(s) "
            f"the state holds:\n{lines}{more}"
        )
    click.echo(
        f"journal intact: {count} records; every list entry, posture and operator "
        "in the state is journaled"
    )


@journal_group.command("export")
@click.option("--since", default=None, help="From (ISO time, UNIX seconds, or e.g. 2h).")
@click.option("--until", default=None, help="Until (same forms).")
@click.option("--out", type=click.File("w", lazy=False), default="-", help="File (default stdout).")
@click.pass_obj
def journal_export(
    obj: tuple[str | None, str | None], since: str | None, until: str | None, out: Any
) -> None:
    """JSON lines for investigators, with the hash-chain fields; the chain is verified first."""
    from rempart.ops.export import export
    from rempart.ops.host_journals import HostJournals

    journal = HostJournals(_journal_dir(_settings(obj[0]), obj[1]).parent)
    count, verified, broken = export(
        journal, out, parse_time(since, "--since"), parse_time(until, "--until")
    )
    click.echo(f"exported {count} records; chain verified over {verified}", err=True)
    if broken:
        raise click.ClickException(
            f"journal broken at {broken.segment} line {broken.line}: {broken.why}"
        )


@main.group("posture")
def posture_group() -> None:
    """Show or set each protocol's posture on a running server."""


url_option = click.option("--url", default=None, help="Server URL (default from [server]).")


def _client(config: str | None, data_dir: str | None, url: str | None) -> Any:
    from rempart.client import Client, ClientError

    settings = _settings(config)
    try:
        return Client.for_settings(settings, _data_dir(settings, data_dir), url)
    except ClientError as exc:
        raise click.ClickException(str(exc)) from None


@posture_group.command("show")
@config_option
@data_dir_option
@url_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def posture_show(config: str | None, data_dir: str | None, url: str | None, as_json: bool) -> None:
    """Posture, anomaly score and the detector's figures per protocol."""
    from rempart.client import ClientError

    try:
        doc = _client(config, data_dir, url).call("GET", "/v1/posture")["posture"]
    except ClientError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(f"{'protocol':<9} {'posture':<8} {'score':>6}  set by   figures (per minute)")
    for name, info in doc.items():
        figures = info["figures"]
        shown = ", ".join(
            f"{k}={v}"
            for k, v in figures.items()
            if k in ("attempts", "failures", "unfamiliar_failures", "failing_ips")
        )
        by = info.get("set_by") or ("operator" if info["manual"] else "detector")
        held = " (held" + (f" until {_clock(info['until'])})" if info.get("until") else ")")
        by += held if info.get("held") else ""
        click.echo(f"{name:<9} {info['level']:<8} {info['score']:>6}  {by:<8} {shown}")


def _clock(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


@posture_group.command("set")
@click.argument("protocol")
@click.argument("level")
@click.option("--reason", required=True, help="Why (journaled, shown to operators).")
@click.option(
    "--ttl",
    default="0",
    help="Hold for this long (e.g. 2h), then let the detector decide again; 0 holds until changed.",
)
@click.option(
    "--hold/--hand-back",
    default=None,
    help="Hold the level (the detector pauses for this protocol) or hand the protocol back to "
    "the detector from this level. Default: normal without --ttl hands back, anything else holds.",
)
@config_option
@data_dir_option
@url_option
def posture_set(
    protocol: str,
    level: str,
    reason: str,
    ttl: str,
    hold: bool | None,
    config: str | None,
    data_dir: str | None,
    url: str | None,
) -> None:
    """Set PROTOCOL (imap, pop3, smtp, web, app, api) to LEVEL (normal, guarded, strict, closed)."""
    from rempart.adapters.operator import PROTOCOLS
    from rempart.client import ClientError
    from rempart.engine.engine import POSTURES
    from rempart.engine.policy import parse_duration

    if protocol.lower() not in PROTOCOLS:
        raise click.BadParameter(
            f"unknown protocol {protocol!r} (one of {', '.join(PROTOCOLS)})", param_hint="PROTOCOL"
        )
    if level.lower() not in POSTURES:
        raise click.BadParameter(
            f"unknown level {level!r} (one of {', '.join(POSTURES)})", param_hint="LEVEL"
        )
    if not reason.strip():
        raise click.BadParameter("a reason is required", param_hint="--reason")
    try:
        seconds = parse_duration(ttl, "--ttl")
    except ConfigError as exc:
        raise click.BadParameter(str(exc).removeprefix("--ttl: "), param_hint="--ttl") from None
    body: dict[str, Any] = {
        "protocol": protocol.lower(),
        "level": level.lower(),
        "reason": reason,
        "ttl": seconds,
        "by": "cli:" + os.environ.get("USER", "operator"),
    }
    if hold is not None:
        body["hold"] = hold
    try:
        result = _client(config, data_dir, url).call("POST", "/v1/posture", body)["posture"]
    except ClientError as exc:
        raise click.ClickException(str(exc)) from None
    if not result.get("held"):
        how = ", handed back to the detector"
    else:
        how = f", held for {ttl}" if seconds else ", held until changed"
    click.echo(f"{protocol.lower()}: {result['level']}{how}")


# The commands other packages own.
for _command in (
    leaks,
    sim,
    shed,
    status,
    report,
    operator,
    tail,
    nginx_config_command,
    lists,
    app_passwords,
    nft,
):
    main.add_command(_command)
