"""`rempart app-passwords ...`: the operator's view of app passwords, through the running
server (the one writer of their files)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import click

from rempart.client import Client, ClientError
from rempart.config import ConfigError, load_settings

PREFIX = "/v1/app-passwords"


def _options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--url", default=None, help="Server URL (default from [server]).")(fn)
    fn = click.option("--data-dir", default=None, help="State directory (for the API password).")(
        fn
    )
    return click.option(
        "--config", "config", type=click.Path(dir_okay=False), help="TOML configuration file."
    )(fn)


def _call(
    config: str | None, data_dir: str | None, url: str | None, method: str, path: str, body: Any
) -> Any:
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        client = Client.for_settings(settings, data_dir or settings.server.data_dir, url)
        return client.call(method, path, body)
    except ClientError as exc:
        raise click.ClickException(str(exc)) from None


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts)) if ts else "-"


@click.group("app-passwords")
def app_passwords() -> None:
    """List, create and revoke the app passwords of an account; counts for all."""


@app_passwords.command("list")
@click.argument("login")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_options
def list_command(
    login: str, as_json: bool, config: str | None, data_dir: str | None, url: str | None
) -> None:
    """The app passwords of LOGIN: label, scopes, created, last used, last network."""
    doc = _call(config, data_dir, url, "GET", f"{PREFIX}/{quote(login, safe='@')}", None)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(f"{doc['login']}: mail apps only with app passwords: {doc['mail_apps_only']}")
    click.echo(f"{'id':<17} {'label':<24} {'scopes':<15} {'created':<17} {'last used':<17} network")
    for item in doc["app_passwords"]:
        label = item["label"] + (" (expired)" if item["expired"] else "")
        click.echo(
            f"{item['id']:<17} {label[:24]:<24} {','.join(item['scopes']):<15} "
            f"{_when(item['created']):<17} {_when(item['last_used']):<17} "
            f"{item['last_network'] or '-'}"
        )


@app_passwords.command("create")
@click.argument("login")
@click.option("--label", required=True, help="The device or app it is for.")
@click.option("--scopes", default=None, help="Comma-separated: imap,pop3,smtp (default: all).")
@click.option("--expires-in", default=None, help="Lifetime, e.g. 90d (default: none).")
@_options
def create_command(
    login: str,
    label: str,
    scopes: str | None,
    expires_in: str | None,
    config: str | None,
    data_dir: str | None,
    url: str | None,
) -> None:
    """Create an app password for LOGIN and print its secret, once."""
    body: dict[str, Any] = {"label": label}
    if scopes:
        body["scopes"] = [s.strip() for s in scopes.split(",") if s.strip()]
    if expires_in:
        body["expires_in"] = expires_in
    doc = _call(config, data_dir, url, "POST", f"{PREFIX}/{quote(login, safe='@')}", body)
    click.echo(f"id {doc['id']} for {doc['login']} ({','.join(doc['scopes'])}):")
    click.echo(doc["secret"])


@app_passwords.command("revoke")
@click.argument("login")
@click.argument("ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Revoke every app password of LOGIN.")
@_options
def revoke_command(
    login: str,
    ids: tuple[str, ...],
    every: bool,
    config: str | None,
    data_dir: str | None,
    url: str | None,
) -> None:
    """Revoke app passwords of LOGIN by id (or --all); Dovecot refuses them at once."""
    if every == bool(ids):
        raise click.UsageError("name the ids to revoke, or --all (not both)")
    base = f"{PREFIX}/{quote(login, safe='@')}"
    paths = [base] if every else [f"{base}/{quote(i, safe='')}" for i in ids]
    for path in paths:
        doc = _call(config, data_dir, url, "DELETE", path, None)
        for app_id in doc["revoked"]:
            click.echo(f"revoked {app_id}")


@app_passwords.command("mail-apps-only")
@click.argument("login")
@click.argument("state", type=click.Choice(["on", "off"]))
@_options
def only_command(
    login: str, state: str, config: str | None, data_dir: str | None, url: str | None
) -> None:
    """Accept mail apps for LOGIN only with app passwords (on) or also the main password (off)."""
    path = f"{PREFIX}/{quote(login, safe='@')}/mail-apps-only"
    doc = _call(config, data_dir, url, "PUT", path, {"enabled": state == "on"})
    click.echo(f"{doc['login']}: mail apps only with app passwords: {doc['mail_apps_only']}")


@app_passwords.command("counts")
@_options
def counts_command(config: str | None, data_dir: str | None, url: str | None) -> None:
    """Accounts holding app passwords, active and expired ones, accounts opted in."""
    doc = _call(config, data_dir, url, "GET", PREFIX, None)
    for key, value in doc.items():
        click.echo(f"{key.replace('_', ' ')}: {value}")
