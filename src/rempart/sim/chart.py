"""A chart a person can open: attempts and verdicts over time, per class of traffic, as SVG.

Owns drawing, with no plotting dependency: one self-contained SVG per result (a panel for
legitimate traffic and one for attack traffic, stacked areas by effect), and an HTML page
that puts the SVGs of a comparison side by side.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from rempart.sim.outcome import ALLOWED, DELAYED, DENIED, STEPPED_UP

COLOURS = {ALLOWED: "#8fbf8f", DELAYED: "#e6c75a", STEPPED_UP: "#6fa8dc", DENIED: "#d9534f"}
ORDER = (ALLOWED, DELAYED, STEPPED_UP, DENIED)
W, PANEL_H, LEFT, TOP, GAP = 720, 170, 64, 50, 46


def _panel(series: dict[str, list[int]], bucket_s: float, y0: float, title: str) -> list[str]:
    n = len(series[ALLOWED])
    totals = [sum(series[e][i] for e in ORDER) for i in range(n)]
    peak = max(totals, default=0) or 1
    plot_w = W - LEFT - 20
    dx = plot_w / max(1, n)
    out = [
        f'<text x="{LEFT}" y="{y0 - 8:.0f}" font-size="13" font-weight="bold">'
        f"{html.escape(title)}</text>",
        f'<rect x="{LEFT}" y="{y0:.0f}" width="{plot_w}" height="{PANEL_H}" fill="#fafafa" '
        'stroke="#ccc"/>',
    ]
    base = [0] * n
    for effect in ORDER:
        values = series[effect]
        if not any(values):
            continue
        for i, v in enumerate(values):
            if not v:
                continue
            h = v / peak * PANEL_H
            y = y0 + PANEL_H - (base[i] / peak * PANEL_H) - h
            out.append(
                f'<rect x="{LEFT + i * dx:.2f}" y="{y:.2f}" width="{dx:.2f}" height="{h:.2f}" '
                f'fill="{COLOURS[effect]}"/>'
            )
            base[i] += v
    for frac in (0.0, 0.5, 1.0):
        y = y0 + PANEL_H * (1 - frac)
        out.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.0f}" font-size="10" text-anchor="end">'
            f"{peak * frac:,.0f}</text>"
        )
    hours = n * bucket_s / 3600
    step = 1 if hours <= 6 else 3 if hours <= 24 else 6
    h = 0
    while h <= hours + 1e-9:
        x = LEFT + h * 3600 / bucket_s * dx
        out.append(
            f'<text x="{x:.1f}" y="{y0 + PANEL_H + 13:.0f}" font-size="10" '
            f'text-anchor="middle">{h:g}h</text>'
        )
        h += step
    return out


def svg(result: dict[str, Any]) -> str:
    timeline = result["timeline"]
    bucket = timeline["bucket_s"]
    height = TOP + 2 * (PANEL_H + GAP) + 10
    title = (
        f"{result['scenario']} · {result['policy']} · seed {result['seed']} — attempts per "
        f"{bucket / 60:.0f} min by verdict"
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" '
        f'viewBox="0 0 {W} {height}" font-family="sans-serif">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="10" y="18" font-size="14">{html.escape(title)}</text>',
    ]
    parts += _panel(timeline["legit"], bucket, TOP + 16, "legitimate traffic")
    parts += _panel(timeline["attack"], bucket, TOP + 16 + PANEL_H + GAP, "attack traffic")
    x = LEFT
    for i, effect in enumerate(ORDER):
        parts.append(
            f'<rect x="{x + i * 92}" y="28" width="10" height="10" fill="{COLOURS[effect]}"/>'
            f'<text x="{x + i * 92 + 14}" y="37" font-size="11">{effect.replace("_", " ")}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def page(results: list[dict[str, Any]], title: str) -> str:
    body = "\n".join(f"<figure>{svg(r)}</figure>" for r in results)
    return (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:16px}figure{margin:0 0 12px}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def write(results: list[dict[str, Any]], path: Path, title: str) -> Path:
    """An .svg for one result, an .html page for several."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if len(results) == 1 and path.suffix == ".svg":
        path.write_text(svg(results[0]), "utf-8")
    else:
        path = path.with_suffix(".html")
        path.write_text(page(results, title), "utf-8")
    return path
