"""The adapters' commands: `rempart tail` (log tailing) and `rempart nginx-config`."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import click

from rempart.config import ConfigError, Settings, load_settings


def _settings(config: str | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _api_password(settings: Settings, data_dir: str, given: str | None) -> str:
    """--api-password, else $REMPART_API_PASSWORD, else [auth] api_password_file, else the file
    `rempart serve` generated in the data directory."""
    if given:
        return given
    env = os.environ.get("REMPART_API_PASSWORD")
    if env:
        return env
    path = Path(settings.api_password_file or Path(data_dir) / "api-password")
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise click.ClickException(
            f"no API password: give --api-password, set REMPART_API_PASSWORD, or create {path} "
            f"({exc.strerror})"
        ) from None


@click.command("tail")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--parser", "parser_name", default=None, help="dovecot, postfix, sshd or nginx.")
@click.option("--regex", default=None, help="Instead of --parser: a regex with (?P<ip>...).")
@click.option(
    "--outcome",
    default="failure",
    type=click.Choice(["failure", "unknown_login", "success", "policy_reject"]),
    help="What a --regex match means (default failure).",
)
@click.option("--protocol", default="other", help="Protocol of --regex events (default other).")
@click.option("--config", type=click.Path(dir_okay=False), help="TOML configuration file.")
@click.option("--data-dir", default=None, help="State directory (API password, offsets).")
@click.option("--url", default=None, help="Server URL (default from [server]).")
@click.option("--api-password", default=None, help="Default: $REMPART_API_PASSWORD or data dir.")
@click.option(
    "--state-file", default=None, help="Offsets file (default <data-dir>/tail-offsets-cli.json)."
)
@click.option(
    "--from-start", is_flag=True, help="Read files seen for the first time from their start."
)
@click.option("--once", is_flag=True, help="Process what the files hold now, then exit.")
@click.option(
    "--print",
    "print_only",
    is_flag=True,
    help="Print the parsed events as JSON lines; report nothing.",
)
def tail(
    files: tuple[str, ...],
    parser_name: str | None,
    regex: str | None,
    outcome: str,
    protocol: str,
    config: str | None,
    data_dir: str | None,
    url: str | None,
    api_password: str | None,
    state_file: str | None,
    from_start: bool,
    once: bool,
    print_only: bool,
) -> None:
    """Follow log FILEs and report the authentication outcomes they show to a running server.

    Without FILE, follows the `[tail] files` of the configuration. Rotation (rename or
    truncation) is followed and offsets are saved, so a restart neither repeats nor loses lines.
    """
    from rempart.adapters.settings import TailSettings, parser_for
    from rempart.adapters.tail.sinks import HttpSink, PrintSink, Sink, SinkError
    from rempart.adapters.tail.tailer import Tailer

    settings = _settings(config)
    directory = data_dir or settings.server.data_dir
    try:
        configured = settings.section(TailSettings)
        if files:
            if bool(parser_name) == bool(regex):
                raise click.UsageError("give --parser NAME or --regex PATTERN for the FILEs")
            spec = {"parser": parser_name, "regex": regex, "outcome": outcome, "protocol": protocol}
            parser = parser_for(spec, "--regex" if regex else "--parser")
            sources = [(f, parser) for f in files]
        else:
            sources = list(configured.files)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if not sources:
        raise click.UsageError("no FILE given and no [tail] files in the configuration")
    missing = [str(path) for path, _ in sources if not Path(path).exists()]
    if missing and once:
        raise click.ClickException(f"no such file: {', '.join(missing)}; nothing was read")
    for path in missing:
        click.echo(f"rempart tail: {path} does not exist yet; waiting for it", err=True)
    sink: Sink
    if print_only:
        sink = PrintSink(click.echo)
    else:
        password = _api_password(settings, directory, api_password)
        host = settings.server.host
        sink = HttpSink(url or f"http://{host}:{settings.server.port}", password)
    if state_file is None and not print_only:
        Path(directory).mkdir(parents=True, exist_ok=True)
        state_file = str(Path(directory) / "tail-offsets-cli.json")
    start_at = "start" if from_start or print_only else configured.start_at
    tailer = Tailer(sources, sink, state_file, start_at)
    backoff = 0.0
    try:
        while True:
            try:
                while tailer.poll_once():
                    pass
                backoff = 0.0
            except SinkError as exc:
                if once:
                    raise click.ClickException(f"{exc} (offsets kept; run again)") from None
                backoff = min(30.0, max(1.0, backoff * 2))
                click.echo(f"rempart tail: {exc}; retrying in {backoff:g} s", err=True)
            if once:
                break
            time.sleep(backoff or configured.poll_seconds)
    except KeyboardInterrupt:
        pass
    finally:
        tailer.close()
        for src in tailer.sources:
            s = src.stats
            click.echo(
                f"{src.path}: {s.lines} lines, {s.events} events, {s.ignored} ignored, {s.bad} bad",
                err=True,
            )


@click.command("nginx-config")
@click.option("--location", default="/login", show_default=True, help="The login location.")
@click.option("--upstream", default="http://127.0.0.1:8080", show_default=True, help="The app.")
@click.option("--listen", default="80", show_default=True, help="nginx listen directive value.")
@click.option(
    "--rempart", "rempart_addr", default=None, help="Rempart host:port (default [server])."
)
@click.option("--access-log", default="/var/log/nginx/rempart-login.log", show_default=True)
@click.option("--login-variable", default="", help="nginx variable with the login, e.g. $arg_user.")
@click.option("--protocol", default="web", show_default=True, help="web, app or api.")
@click.option(
    "--fail-closed", is_flag=True, help="Refuse logins (500) when Rempart is unreachable."
)
@click.option("--config", type=click.Path(dir_okay=False), help="TOML configuration file.")
@click.option("--data-dir", default=None, help="State directory holding the API password.")
@click.option("--api-password", default=None, help="Default: $REMPART_API_PASSWORD or data dir.")
def nginx_config_command(
    location: str,
    upstream: str,
    listen: str,
    rempart_addr: str | None,
    access_log: str,
    login_variable: str,
    protocol: str,
    fail_closed: bool,
    config: str | None,
    data_dir: str | None,
    api_password: str | None,
) -> None:
    """Print an nginx configuration protecting a login location with Rempart (auth_request),
    its outcomes logged for `rempart tail --parser nginx`."""
    from rempart.adapters.nginx import nginx_config
    from rempart.model import Protocol

    settings = _settings(config)
    if Protocol.parse(protocol) is Protocol.OTHER:
        raise click.BadParameter(f"unknown protocol {protocol!r}", param_hint="--protocol")
    if not location.startswith("/") or any(c in location for c in " ;{}\"'"):
        raise click.BadParameter("a path such as /login", param_hint="--location")
    if login_variable and not login_variable.startswith("$"):
        raise click.BadParameter(
            "an nginx variable such as $arg_user", param_hint="--login-variable"
        )
    password = _api_password(settings, data_dir or settings.server.data_dir, api_password)
    kwargs: dict[str, Any] = {
        "rempart": rempart_addr or f"{settings.server.host}:{settings.server.port}",
        "api_password": password,
        "location": location,
        "upstream": upstream,
        "listen": listen,
        "access_log": access_log,
        "login_variable": login_variable,
        "protocol": Protocol.parse(protocol).value,
        "fail_open": not fail_closed,
    }
    click.echo(nginx_config(**kwargs), nl=False)
