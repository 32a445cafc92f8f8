"""`rempart sim …`: run a scenario, compare every policy, regenerate docs/detection.md.

Owns the command-line surface of the simulator (a click group the main CLI mounts as `sim`)
and where results are written: JSON and a chart under `--out` (default `sim-results/`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from rempart.extras import MissingExtra
from rempart.sim import chart, detection, experiment, policies, report
from rempart.sim import scenario as scenarios

_passwords = click.option(
    "--passwords",
    "password_dir",
    default=None,
    help="Directory of password lists with counts (default: ../shared/data/passwords next to "
    "the repository, else a small sample shipped in the package). Env: REMPART_PASSWORD_LISTS.",
)
_seed = click.option("--seed", default=1, show_default=True, help="Seed: same seed, same run.")
_users = click.option("--users", type=int, default=None, help="Override the population size.")
_out = click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("sim-results"),
    show_default=True,
    help="Directory for the JSON results and the chart.",
)
_config = click.option(
    "--config", "config", default=None, help="Rempart TOML config for the `rempart` policy."
)


def _scenario(name: str, users: int | None) -> scenarios.Scenario:
    try:
        sc = scenarios.load(name)
    except (FileNotFoundError, ValueError) as exc:
        raise click.UsageError(str(exc)) from exc
    return sc.scaled(users) if users else sc


def _inputs(password_dir: str | None) -> experiment.Inputs:
    try:
        return experiment.Inputs.load(password_dir)
    except (MissingExtra, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def sim() -> None:
    """Simulated users and attacks; every policy scored against baselines."""


@sim.command("list")
def list_scenarios() -> None:
    """The scenarios shipped in the package."""
    for name in scenarios.shipped():
        click.echo(f"{name:12}  {scenarios.load(name).description}")


@sim.command()
@click.argument("scenario")
@click.option(
    "--policy",
    type=click.Choice(policies.NAMES),
    default="rempart",
    show_default=True,
    help="In-process policy (the http runner scores whatever the server runs).",
)
@_seed
@_users
@click.option("--runner", type=click.Choice(["inprocess", "http"]), default="inprocess")
@click.option("--url", default="http://127.0.0.1:8084", show_default=True, help="http runner.")
@click.option(
    "--api-password", envvar="REMPART_API_PASSWORD", default="", help="http runner: Basic auth."
)
@click.option(
    "--time-scale",
    type=float,
    default=None,
    help="Compress time by this factor (http default: the day fits in --max-seconds).",
)
@click.option("--max-requests", type=int, default=20_000, show_default=True)
@click.option("--max-seconds", type=float, default=300.0, show_default=True)
@_config
@_passwords
@_out
def run(
    scenario: str,
    policy: str,
    seed: int,
    users: int | None,
    runner: str,
    url: str,
    api_password: str,
    time_scale: float | None,
    max_requests: int,
    max_seconds: float,
    config: str | None,
    password_dir: str | None,
    out: Path,
) -> None:
    """Run SCENARIO against one policy (or, with --runner http, a running `rempart serve`)."""
    sc = _scenario(scenario, users)
    inputs = _inputs(password_dir)
    if runner == "http" and sc.leak.app_password_share > 0:
        raise click.UsageError(
            f"{sc.name}: [leak] app_password_share needs the in-process runner (a server marks "
            "app-password logins from its own app-password store, which this replay cannot fill)"
        )
    if runner == "http":
        scale = time_scale or sc.duration_h * 3600 / (max_seconds * 0.9)
        click.echo(f"replaying {sc.name} to {url}, time compressed {scale:g}x", err=True)
        result = experiment.run_http(
            sc, seed, inputs, url, api_password, scale, max_requests, max_seconds
        )
        label = "http"
    else:
        result = experiment.run_one(sc, policy, seed, inputs, config, time_scale or 1.0)
        label = policy
    stem = f"{sc.name}-{label}-seed{seed}"
    report.save_json([result], out / f"{stem}.json")
    drawn = chart.write([result], out / f"{stem}.svg", stem)
    click.echo(report.table([result]))
    r = result["runner"]
    click.echo(
        f"\n{r['events']:,} events in {r['seconds']:.1f} s{' (truncated)' if r['truncated'] else ''}"
        f"; JSON {out / (stem + '.json')}; chart {drawn}"
    )


@sim.command()
@click.argument("scenario")
@_seed
@_users
@click.option(
    "--policies",
    "names",
    default=",".join(policies.NAMES),
    show_default=True,
    help="Comma-separated policies.",
)
@_config
@_passwords
@_out
def compare(
    scenario: str,
    seed: int,
    users: int | None,
    names: str,
    config: str | None,
    password_dir: str | None,
    out: Path,
) -> None:
    """Run SCENARIO against every policy, side by side."""
    chosen = tuple(n.strip() for n in names.split(",") if n.strip())
    unknown = [n for n in chosen if n not in policies.NAMES]
    if unknown:
        raise click.UsageError(f"unknown policies {unknown}; one of {', '.join(policies.NAMES)}")
    sc = _scenario(scenario, users)
    results = experiment.compare(sc, seed, _inputs(password_dir), chosen, config)
    stem = f"{sc.name}-compare-seed{seed}"
    report.save_json(results, out / f"{stem}.json")
    drawn = chart.write(results, out / f"{stem}.html", f"{sc.name}, seed {seed}")
    click.echo(report.table(results))
    click.echo(f"\nJSON {out / (stem + '.json')}; chart {drawn}")


@sim.command("detection-doc")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("docs/detection.md"),
    show_default=True,
)
@click.option("--users", type=int, default=20_000, show_default=True)
@_seed
@click.option("--scenario", "only", multiple=True, help="Only these scenarios (repeatable).")
@click.option(
    "--reuse",
    is_flag=True,
    help="Reuse results already in --out for the same scenario, seed and users (text only).",
)
@_passwords
@_out
def detection_doc(
    output: Path,
    users: int,
    seed: int,
    only: tuple[str, ...],
    reuse: bool,
    password_dir: str | None,
    out: Path,
) -> None:
    """Regenerate docs/detection.md: every shipped scenario against every policy."""
    inputs = _inputs(password_dir)
    rows = []
    for name in only or scenarios.shipped():
        sc = _scenario(name, users)
        saved = out / f"{sc.name}-compare-seed{seed}.json"
        results = json.loads(saved.read_text("utf-8")) if reuse and saved.is_file() else []
        if (
            not results
            or {r.get("users") for r in results} != {users}
            or [r["policy"] for r in results] != list(policies.NAMES)
        ):
            click.echo(f"{name}…", err=True)
            results = experiment.compare(sc, seed, inputs)
            report.save_json(results, saved)
        rows.append((sc, results))
    seconds = sum(r["runner"]["seconds"] for _, results in rows for r in results)
    text = detection.document(rows, seed, users, seconds)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, "utf-8")
    click.echo(f"wrote {output}")


@sim.command("sample-passwords")
@_passwords
@click.option("--top", type=int, default=3000, show_default=True)
def sample_passwords(password_dir: str | None, top: int) -> None:
    """Rewrite the password sample shipped in the package from the real lists."""
    from rempart.sim import passwords

    directory = passwords.locate(password_dir)
    if directory is None:
        raise click.ClickException("real password lists not found (set --passwords)")
    lists = passwords.load(directory)
    data = Path(__file__).parent / "data"
    for dist, name, n in (
        (lists.users, passwords.SAMPLE_USERS, top),
        (lists.attackers, passwords.SAMPLE_ATTACKERS, top * 2 // 3),
    ):
        lines, prev = [], 0.0
        for word, cum in zip(dist.words[:n], dist.cum[:n], strict=False):
            lines.append(f"{int(cum - prev):7d} {word}")
            prev = cum
        (data / name).write_text("\n".join(lines) + "\n", "utf-8")
    click.echo(f"wrote samples from {directory} to {data}")


def main() -> None:  # pragma: no cover - `python -m rempart.sim.cli`
    sim(prog_name=os.path.basename("rempart sim"))


if __name__ == "__main__":  # pragma: no cover
    main()
