"""Inline SVG charts rendered on the server (incident report, timelines): no script, no network.

Two shapes: stacked columns over time buckets, and horizontal bars for rankings. Colours are
SVG presentation attributes, so the charts also pass a CSP that forbids inline style.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from rempart.ops.web import h

COLORS = {
    "allow": "#2f855a",
    "delay": "#d69e2e",
    "step_up": "#dd6b20",
    "deny": "#c53030",
    "success": "#3182ce",
    "failure": "#9b2c2c",
}
PALETTE = ("#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b7791f", "#00838f", "#c53030", "#4a5568")


def color(name: str, index: int) -> str:
    return COLORS.get(name, PALETTE[index % len(PALETTE)])


def _nice(top: float) -> float:
    if top <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(top))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if top <= step * magnitude:
            return step * magnitude
    return 10.0 * magnitude


def stacked_columns(
    starts: Sequence[float],
    width_s: float,
    series: Mapping[str, Sequence[float]],
    title: str,
    *,
    width: int = 880,
    height: int = 240,
) -> str:
    """Columns per time bucket, one stacked segment per series, with axes and a legend."""
    left, right, top, bottom = 48, 12, 28, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(starts)
    totals = [sum(s[i] for s in series.values()) for i in range(n)]
    ymax = _nice(max(totals, default=0))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="{h(title)}" class="chart">',
        f'<text x="{left}" y="16" font-size="13" font-weight="600" fill="#1a202c">{h(title)}</text>',
    ]
    for k in range(5):
        y = top + plot_h - plot_h * k / 4
        value = ymax * k / 4
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e2e8f0"/>'
        )
        out.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end" fill="#4a5568">{value:g}</text>'
        )
    if n:
        bw = plot_w / n
        for i, start in enumerate(starts):
            y = top + plot_h
            for j, (name, values) in enumerate(series.items()):
                v = values[i]
                if v <= 0:
                    continue
                bh = plot_h * v / ymax
                y -= bh
                out.append(
                    f'<rect x="{left + i * bw + 0.5:.1f}" y="{y:.1f}" width="{max(bw - 1, 0.8):.1f}" '
                    f'height="{bh:.1f}" fill="{color(name, j)}"><title>{h(name)}: {v:g} '
                    f"at {h(time.strftime('%H:%M:%S', time.gmtime(start)))}Z</title></rect>"
                )
        for i in sorted({0, n // 2, n - 1}):
            x = left + (i + 0.5) * bw
            fmt = "%H:%M:%S" if width_s < 60 else "%m-%d %H:%M"
            label = time.strftime(fmt, time.gmtime(starts[i]))
            out.append(
                f'<text x="{x:.1f}" y="{top + plot_h + 14}" font-size="10" text-anchor="middle" fill="#4a5568">{h(label)}Z</text>'
            )
    x = left
    for j, (name, values) in enumerate(series.items()):
        label = f"{name} ({sum(values):g})"
        out.append(
            f'<rect x="{x}" y="{height - 14}" width="10" height="10" fill="{color(name, j)}"/>'
        )
        out.append(
            f'<text x="{x + 14}" y="{height - 5}" font-size="11" fill="#1a202c">{h(label)}</text>'
        )
        x += 24 + 7 * len(label)
    out.append("</svg>")
    return "".join(out)


def hbars(
    items: Sequence[tuple[str, float]], title: str, *, width: int = 430, bar: str = "#2b6cb0"
) -> str:
    """Horizontal bars, largest first, labels on the left."""
    row, top = 20, 26
    height = top + row * max(len(items), 1) + 8
    label_w = 170
    vmax = max((v for _, v in items), default=0) or 1
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-label="{h(title)}" class="chart">',
        f'<text x="0" y="16" font-size="13" font-weight="600" fill="#1a202c">{h(title)}</text>',
    ]
    if not items:
        out.append(f'<text x="0" y="{top + 14}" font-size="11" fill="#4a5568">none</text>')
    for i, (label, value) in enumerate(items):
        y = top + i * row
        bw = (width - label_w - 60) * value / vmax
        short = label if len(label) <= 26 else label[:25] + "…"
        out.append(
            f'<text x="{label_w - 6}" y="{y + 13}" font-size="11" text-anchor="end" fill="#1a202c">{h(short)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{max(bw, 1):.1f}" height="13" fill="{bar}"/>'
            f'<text x="{label_w + bw + 4:.1f}" y="{y + 13}" font-size="11" fill="#4a5568">{value:g}</text>'
        )
    out.append("</svg>")
    return "".join(out)
