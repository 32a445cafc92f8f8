"""``rempart shed …`` commands: HAProxy configuration, admission status, hostile sources.

Exposed as the click group ``shed``; the main CLI mounts it. Commands read the ``[shed]`` table
of the TOML file given with ``--config`` (``hostile`` uses the defaults without one).
``rempart shed hostile add|del|list`` changes HAProxy's hostile-source map live through the
runtime API and then the map file, so that a restarted HAProxy keeps the change; when the runtime
socket cannot be used nothing is changed (HAProxy keeps its last state) and the command fails.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import sys
from pathlib import Path

import click

from rempart import config
from rempart.shed.config import ShedSettings, example_table, parse_shed, with_map_dir
from rempart.shed.haproxy_config import render
from rempart.shed.maps import HOSTILE_MAP, ensure_maps, read_hostile, write_hostile
from rempart.shed.runtime import HAProxyRuntime, RuntimeUnavailable
from rempart.shed.snapshot import snapshot
from rempart.shed.status import shed_status


def load_settings(
    path: Path | None, data_dir: str | None = None, example: bool = False
) -> ShedSettings:
    """The `[shed]` section of the configuration file (the whole file is checked); without a
    file and with `example`, the documented example table. Its map directory is resolved
    against the data directory."""
    try:
        settings = config.load_settings(path)
        shed = settings.section(ShedSettings)
        if path is None and example:
            shed = parse_shed(example_table())
    except config.ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    return with_map_dir(shed, data_dir or settings.server.data_dir)


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Rempart TOML file holding the [shed] table.",
)
data_dir_option = click.option(
    "--data-dir",
    default=None,
    help="State directory; map files default to <data-dir>/shed "
    "(default: [server] data_dir, ./rempart-data).",
)


@click.group()
def shed() -> None:
    """Admission control by criticality (HAProxy data plane and control loop)."""


@shed.command("haproxy-config")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Rempart TOML file holding the [shed] table (without one: the documented example).",
)
@data_dir_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here.")
@click.option("--no-enforce", is_flag=True, help="Classify and count only (a baseline).")
@click.option(
    "--no-maps", is_flag=True, help="Do not create the map files in shed.haproxy.map_dir."
)
def haproxy_config(
    config_path: Path | None,
    data_dir: str | None,
    output: Path | None,
    no_enforce: bool,
    no_maps: bool,
) -> None:
    """Print (or write) the HAProxy configuration for the [shed] table.

    Map files go to [shed.haproxy] map_dir, by default <data-dir>/shed."""
    settings = load_settings(config_path, data_dir, example=True)
    if config_path is None:
        click.echo(
            "rempart shed: no --config, showing the documented example [shed] table "
            "(service web on 127.0.0.1:8081; see rempart config show --reference-shed)",
            err=True,
        )
    try:
        text = render(settings, enforce=not no_enforce)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if output is not None and not output.parent.is_dir():
        raise click.BadParameter(f"directory {output.parent} does not exist", param_hint="--output")
    if not no_maps:
        try:
            ensure_maps(Path(settings.haproxy.map_dir), [s.name for s in settings.services])
        except OSError as exc:
            raise click.ClickException(
                f"shed.haproxy.map_dir: cannot create the map files in "
                f"{settings.haproxy.map_dir}: {exc.strerror} (or use --no-maps)"
            ) from None
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        click.echo(f"wrote {output}", err=True)


@shed.command("status")
@config_option
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(config_path: Path, data_dir: str | None, as_json: bool) -> None:
    """Per service and class: admitted share, demand and shed rates, current limit."""
    settings = load_settings(config_path, data_dir)
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


optional_config = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Rempart TOML file holding the [shed] table (defaults apply without one).",
)


def parse_source(text: str) -> str:
    """An address or CIDR network, normalised (``10.0.0.7/24`` → ``10.0.0.0/24``)."""
    try:
        network = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an IP address or CIDR network") from None
    single = network.num_addresses == 1
    return str(network.network_address) if single else str(network)


def _hostile_map(settings: ShedSettings) -> tuple[Path, str]:
    map_dir = Path(settings.haproxy.map_dir)
    return map_dir, str(map_dir / HOSTILE_MAP)


def _live(settings: ShedSettings, action: str, source: str) -> None:
    runtime = HAProxyRuntime(settings.haproxy.runtime_socket)
    _, map_file = _hostile_map(settings)
    call = runtime.add_hostile if action == "add" else runtime.del_hostile
    try:
        asyncio.run(call(map_file, source))
    except RuntimeUnavailable as exc:
        raise click.ClickException(
            f"shed.haproxy.runtime_socket: {exc}; nothing changed "
            "(HAProxy keeps enforcing its last hostile map)"
        ) from None


@shed.group("hostile")
def hostile() -> None:
    """Sources HAProxy refuses with 403 (live through the runtime API, kept in hostile.map)."""


@hostile.command("add")
@click.argument("source")
@optional_config
@data_dir_option
def hostile_add(source: str, config_path: Path | None, data_dir: str | None) -> None:
    """Refuse SOURCE (an address or CIDR network) from now on."""
    settings = load_settings(config_path, data_dir)
    source = parse_source(source)
    _live(settings, "add", source)
    map_dir, _ = _hostile_map(settings)
    write_hostile(map_dir, [*read_hostile(map_dir), source])
    click.echo(f"hostile: {source} added")


@hostile.command("del")
@click.argument("source")
@optional_config
@data_dir_option
def hostile_del(source: str, config_path: Path | None, data_dir: str | None) -> None:
    """Stop refusing SOURCE."""
    settings = load_settings(config_path, data_dir)
    source = parse_source(source)
    _live(settings, "del", source)
    map_dir, _ = _hostile_map(settings)
    write_hostile(map_dir, [s for s in read_hostile(map_dir) if s != source])
    click.echo(f"hostile: {source} removed")


@hostile.command("list")
@optional_config
@data_dir_option
def hostile_list(config_path: Path | None, data_dir: str | None) -> None:
    """The hostile sources HAProxy enforces now (live map), one a line."""
    settings = load_settings(config_path, data_dir)
    runtime = HAProxyRuntime(settings.haproxy.runtime_socket)
    _, map_file = _hostile_map(settings)
    try:
        text = asyncio.run(runtime.command(f"show map {map_file}"))
    except RuntimeUnavailable as exc:
        raise click.ClickException(f"shed.haproxy.runtime_socket: {exc}") from None
    if "unknown map" in text.lower():
        raise click.ClickException(f"HAProxy does not load {map_file}: {text.strip()[:200]}")
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            click.echo(parts[1])
