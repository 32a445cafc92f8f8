"""The `rempart` command: serve, config, journal, lists, and the groups of other packages."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click
import tomli_w

from rempart.config import DEFAULTS_TOML, ConfigError, Settings, load_settings
from rempart.engine.policy import FUNCTIONS, SIGNALS


def _settings(config: str | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


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
@click.version_option(package_name="rempart")
def main() -> None:
    """Rempart: a shield for logins and availability."""


@main.command()
@config_option
@data_dir_option
@click.option("--host", default=None, help="Listen address (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Listen port (default 8084).")
def serve(config: str | None, data_dir: str | None, host: str | None, port: int | None) -> None:
    """Run the decision service (wforce-compatible and native APIs, metrics)."""
    import logging

    from rempart.server import run

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = _settings(config)
    from rempart.engine.asn import AsnTableError

    try:
        run(
            settings,
            _data_dir(settings, data_dir),
            host or settings.server.host,
            settings.server.port if port is None else port,
        )
    except AsnTableError as exc:
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
    for report in summary.files:
        for problem in report.problems[:20]:
            click.echo(problem, err=True)
        if len(report.problems) > 20:
            click.echo(f"{report.path}: {len(report.problems) - 20} more problems", err=True)
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
        click.echo(DEFAULTS_TOML)
        return
    if reference_shed:
        from rempart.shed import config as shed_config

        doc = shed_config.__doc__ or ""
        click.echo(doc.split("::", 1)[1].split("Errors raise", 1)[0].rstrip())
        return
    settings = _settings(config)
    effective: dict[str, Any] = dict(settings.raw)
    click.echo(tomli_w.dumps(effective))
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
    from rempart.engine.engine import Engine

    settings = _settings(config)
    try:
        engine = Engine(settings)
        check_package_tables(settings)
    except (ConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"ok: {len(engine.rules)} rules")


def check_package_tables(settings: Settings) -> None:
    """Run the parsers of the tables other packages own; each raises naming the bad key."""
    from rempart.adapters.logtail import tail_settings
    from rempart.adapters.nginx import NginxSettings
    from rempart.breach.settings import settings_from_mapping
    from rempart.ops.settings import ops_settings
    from rempart.ops.webhooks import parse_webhooks
    from rempart.shed.config import parse_shed

    raw = settings.raw
    settings_from_mapping(raw)
    NginxSettings.from_raw(raw)
    tail_settings(raw)
    ops_settings(raw)
    parse_webhooks(raw.get("campaign", {}).get("webhooks"))
    if "shed" in raw:
        parse_shed(raw["shed"])


def parse_time(text: str | None, name: str) -> float:
    """UNIX seconds from ISO 8601, a UNIX number, or a relative '2h' / '30m' ago."""
    if not text:
        return 0.0
    from rempart.engine.policy import parse_duration

    try:
        return float(text)
    except ValueError:
        pass
    if text[-1] in "smhd" and text[:-1].replace(".", "", 1).isdigit():
        return time.time() - parse_duration(text, name)
    try:
        stamp = dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: use ISO 8601 (2026-11-23T14:00), UNIX seconds or a duration ago such as 2h",
            param_hint=name,
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


@main.group("journal", invoke_without_command=True)
@click.option("--login", default="", help="Only records of this login (canonicalised).")
@click.option("--ip", default="", help="Only records of this IP.")
@click.option("--since", default=None, help="From (ISO time, UNIX seconds, or e.g. 2h).")
@click.option("--until", default=None, help="Until (same forms).")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    help="decision, report, list_add, list_del, posture, reset (repeatable).",
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
    from rempart.ops.journal import Journal

    settings = _settings(config)
    try:
        login = canonical_login(login, settings.logins) if login else ""
        ip = net_keys(ip).ip if ip else ""
    except KeyError_ as exc:
        raise click.BadParameter(str(exc)) from None
    journal = Journal(Path(_data_dir(settings, data_dir)) / "journal")
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
    """Check the hash chain; name the first broken record."""
    from rempart.ops.journal import Journal

    settings = _settings(obj[0])
    journal = Journal(Path(_data_dir(settings, obj[1])) / "journal")
    count, broken = journal.verify()
    if broken:
        raise click.ClickException(
            f"journal broken at {broken.segment} line {broken.line} (seq {broken.seq}): "
            f"{broken.why}; {count} records before it are intact"
        )
    click.echo(f"journal intact: {count} records")


@journal_group.command("export")
@click.option("--since", default=None, help="From (ISO time, UNIX seconds, or e.g. 2h).")
@click.option("--until", default=None, help="Until (same forms).")
@click.option("--out", type=click.File("w"), default="-", help="File (default stdout).")
@click.pass_obj
def journal_export(
    obj: tuple[str | None, str | None], since: str | None, until: str | None, out: Any
) -> None:
    """JSON lines for investigators, with the hash-chain fields; the chain is verified first."""
    from rempart.ops.export import export
    from rempart.ops.journal import Journal

    journal = Journal(Path(_data_dir(_settings(obj[0]), obj[1])) / "journal")
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
        by = "operator" if info["manual"] else "detector"
        click.echo(f"{name:<9} {info['level']:<8} {info['score']:>6}  {by:<8} {shown}")


@posture_group.command("set")
@click.argument("protocol")
@click.argument("level")
@click.option("--reason", required=True, help="Why (journaled, shown to operators).")
@click.option(
    "--ttl",
    default="0",
    help="Hold for this long (e.g. 2h), then let the detector decide again; 0 holds until changed.",
)
@config_option
@data_dir_option
@url_option
def posture_set(
    protocol: str,
    level: str,
    reason: str,
    ttl: str,
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
    body = {
        "protocol": protocol.lower(),
        "level": level.lower(),
        "reason": reason,
        "ttl": seconds,
        "by": "cli:" + os.environ.get("USER", "operator"),
    }
    try:
        result = _client(config, data_dir, url).call("POST", "/v1/posture", body)["posture"]
    except ClientError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"{protocol.lower()}: {result['level']}" + (f" for {ttl}" if seconds else " until changed")
    )


def _register_optional_groups() -> None:
    """Groups owned by other packages, added when present."""
    for module, attr in (
        ("rempart.breach.cli", "leaks"),
        ("rempart.sim.cli", "sim"),
        ("rempart.shed.cli", "shed"),
        ("rempart.ops.cli", "status"),
        ("rempart.ops.cli", "report"),
        ("rempart.ops.cli", "operator"),
        ("rempart.adapters.cli", "tail"),
        ("rempart.adapters.cli", "nginx_config_command"),
    ):
        try:
            mod = __import__(module, fromlist=[attr])
        except ImportError:
            continue
        group = getattr(mod, attr, None)
        if isinstance(group, click.Command):
            main.add_command(group)


_register_optional_groups()
