"""Presenting results: the terminal/markdown comparison table and the JSON file.

Owns the columns every comparison shows (the issue's scores) and their formatting.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

COLUMNS = (
    ("policy", "policy"),
    (
        "takeovers",
        "accounts taken over (a correct login by the attacker, let through or delayed); "
        "`taken / valid` when the attack replays the leak: valid = leaked pairs still "
        "current at the start",
    ),
    ("legit denied", "legit attempts denied (users)"),
    ("delayed", "legit attempts delayed (users)"),
    ("stepped up", "legit attempts stepped up (users)"),
    ("critical denied", "institution attempts denied"),
    ("first deny", "time from attack start to first deny"),
    ("posture", "time from attack start to a posture change"),
    ("closure", "legit-user minutes of protocol-wide closure"),
)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def row(result: dict[str, Any]) -> list[str]:
    legit = result["legit"]
    institution = result["classes"].get("institution", {})
    takeovers = f"{result['takeovers']}"
    if result.get("valid_leaked_pairs") is not None:
        takeovers += f" / {result['valid_leaked_pairs']}"
    return [
        result["policy"],
        takeovers,
        f"{legit['denied']:,} ({legit['users_denied']:,})",
        f"{legit['delayed']:,} ({legit['users_delayed']:,})",
        f"{legit['stepped_up']:,} ({legit['users_stepped_up']:,})",
        f"{institution.get('denied', 0):,}",
        duration(result["time_to_first_deny_s"]),
        duration(result["time_to_posture_change_s"]),
        f"{result['closure_user_minutes']:,.0f}",
    ]


def summary(rows: list[tuple[str, list[dict[str, Any]]]]) -> str:
    """One row per scenario, one column per policy: takeovers · users denied or stepped up."""
    names = [r["policy"] for r in rows[0][1]] if rows else []
    lines = ["| scenario | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for scenario, results in rows:
        cells = [
            f"{r['takeovers']:,} · {r['legit']['users_denied'] + r['legit']['users_stepped_up']:,}"
            for r in results
        ]
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table(results: list[dict[str, Any]], markdown: bool = False) -> str:
    header = [c[0] for c in COLUMNS]
    rows = [row(r) for r in results]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(lines)


def legend() -> str:
    """What each column means (takeovers are shown as 'taken / valid leaked pairs')."""
    return "\n".join(f"- **{short}**: {long}" for short, long in COLUMNS[1:])


def save_json(results: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n", "utf-8")
