"""``rempart shed …`` commands: generate the HAProxy configuration, show the admission status.

Exposed as the click group ``shed``; the main CLI mounts it. Both commands read the ``[shed]``
table of the TOML file given with ``--config``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tomllib
from pathlib import Path

import click

from rempart.shed.config import ShedConfigError, ShedSettings, parse_shed
from rempart.shed.haproxy_config import render
from rempart.shed.maps import ensure_maps
from rempart.shed.runtime import HAProxyRuntime, RuntimeUnavailable
from rempart.shed.snapshot import snapshot
from rempart.shed.status import shed_status


def load_settings(path: Path) -> ShedSettings:
    try:
        with path.open("rb") as handle:
            table = tomllib.load(handle).get("shed", {})
        return parse_shed(table)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise click.ClickException(f"{path}: {exc}") from None
    except ShedConfigError as exc:
        raise click.ClickException(f"{path}: {exc}") from None


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Rempart TOML file holding the [shed] table.",
)


@click.group()
def shed() -> None:
    """Admission control by criticality (HAProxy data plane and control loop)."""


@shed.command("haproxy-config")
@config_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here.")
@click.option("--no-enforce", is_flag=True, help="Classify and count only (a baseline).")
@click.option(
    "--no-maps", is_flag=True, help="Do not create the map files in shed.haproxy.map_dir."
)
def haproxy_config(config_path: Path, output: Path | None, no_enforce: bool, no_maps: bool) -> None:
    """Print (or write) the HAProxy configuration for the [shed] table."""
    settings = load_settings(config_path)
    try:
        text = render(settings, enforce=not no_enforce)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if not no_maps:
        ensure_maps(Path(settings.haproxy.map_dir), [s.name for s in settings.services])
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        click.echo(f"wrote {output}", err=True)


@shed.command("status")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(config_path: Path, as_json: bool) -> None:
    """Per service and class: admitted share, demand and shed rates, current limit."""
    settings = load_settings(config_path)
    runtime = HAProxyRuntime(settings.haproxy.runtime_socket)
    try:
        state = asyncio.run(snapshot(settings, runtime))
    except RuntimeUnavailable as exc:
        raise click.ClickException(f"{exc} (HAProxy keeps enforcing its last state)") from None
    doc = shed_status(state)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    for name, svc in doc["services"].items():
        click.echo(f"{name}: {svc['health']}, limit {svc['limit']:g}, in flight {svc['inflight']}")
        for label, cs in svc["classes"].items():
            click.echo(
                f"  {label:15} admitted {cs['admitted_pct']:3d}%  demand {cs['demand_rps']:8.1f}/s"
                f"  shed {cs['shed_rps']:8.1f}/s  (total {cs['requests_total']}, shed {cs['shed_total']})"
            )
