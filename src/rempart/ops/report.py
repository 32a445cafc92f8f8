"""The incident report: figures from the journal over a time window, rendered as one HTML file.

`build(records, ...)` aggregates journal records in one pass (timeline, verdicts, reasons, top
sources, targeted and exposed accounts, posture and campaign changes, operator actions, load
shedding episodes from the `shed_*` records);
`render(model)` writes a self-contained page: inline CSS, inline SVG charts, no script and no
network access, so it can be mailed to investigators and opened anywhere.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from rempart.engine.records import RecordKind, posture_of_record
from rempart.ops.live import subnet_of
from rempart.ops.notices import Notice
from rempart.ops.svg import hbars, stacked_columns
from rempart.ops.web import h, when
from rempart.shed.episodes import SHED_KINDS, EpisodeView, episodes_of

VERDICTS = ("allow", "delay", "step_up", "deny")
EXPOSURE_CODES = frozenset({"account_exposed", "leaked_pair", "account_restricted"})
BUCKETS = (10, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 86400)


def bucket_label(width: int) -> str:
    """`10 s`, `5 min`, `3 h`."""
    if width < 60:
        return f"{width} s"
    if width < 3600:
        return f"{width // 60} min"
    return f"{width // 3600} h"


def bucket_width(span: float) -> int:
    """The smallest standard bucket giving at most ~72 columns."""
    for width in BUCKETS:
        if span / width <= 72:
            return width
    return BUCKETS[-1]


@dataclass
class Report:
    since: float
    until: float
    width: int
    generated: float = field(default_factory=time.time)
    records: int = 0
    integrity: str = ""
    verdicts: Counter[tuple[int, str]] = field(default_factory=Counter)
    outcomes: Counter[tuple[int, str]] = field(default_factory=Counter)
    totals: Counter[str] = field(default_factory=Counter)
    protocols: Counter[tuple[str, str]] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    ips: Counter[str] = field(default_factory=Counter)
    subnets: Counter[str] = field(default_factory=Counter)
    logins: Counter[str] = field(default_factory=Counter)
    exposed: Counter[str] = field(default_factory=Counter)
    restricted: set[str] = field(default_factory=set)
    source_reasons: dict[str, set[str]] = field(default_factory=dict)
    postures: list[dict[str, Any]] = field(default_factory=list)
    campaigns: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    auto_blocks: Counter[str] = field(default_factory=Counter)
    notices: list[Notice] = field(default_factory=list)
    shedding: list[EpisodeView] = field(default_factory=list)

    @property
    def distinct_ips(self) -> int:
        return len(self.ips)


def build(
    records: Iterable[dict[str, Any]],
    since: float,
    until: float,
    notices: Iterable[Notice] = (),
    integrity: str = "",
) -> Report:
    r = Report(since, until, bucket_width(max(until - since, 60)), integrity=integrity)
    shed_records: list[dict[str, Any]] = []
    for rec in records:
        ts = float(rec.get("ts", 0))
        if ts < since or ts > until:
            continue
        r.records += 1
        kind = rec.get("kind")
        bucket = int((ts - since) // r.width)
        if kind == RecordKind.DECISION:
            verdict = str(rec.get("verdict", "allow"))
            r.verdicts[(bucket, verdict)] += 1
            r.totals["decisions"] += 1
            r.totals[verdict] += 1
            r.protocols[(str(rec.get("protocol", "other")), verdict)] += 1
            codes = rec.get("reasons") or []
            for code in codes:
                r.reasons[code] += 1
            login, ip = str(rec.get("login", "")), str(rec.get("ip", ""))
            if verdict != "allow":
                _hostile(r, ip, login, codes)
            exposed = EXPOSURE_CODES.intersection(codes)
            if exposed:
                r.exposed[login] += 1
                if verdict in ("step_up", "deny"):
                    r.restricted.add(login)
        elif kind == RecordKind.REPORT:
            outcome = "success" if rec.get("success") else "failure"
            r.outcomes[(bucket, outcome)] += 1
            r.totals[outcome] += 1
            r.protocols[(str(rec.get("protocol", "other")), outcome)] += 1
            if outcome == "failure":
                _hostile(r, str(rec.get("ip", "")), str(rec.get("login", "")), ())
        elif kind == RecordKind.POSTURE:
            item = {
                k: rec.get(k) for k in ("ts", "protocol", "from", "to", "by", "reason", "figures")
            }
            try:
                posture = posture_of_record(rec)
            except (KeyError, TypeError, ValueError):
                posture = None
            item["held"] = posture.held if posture else False
            item["until"] = posture.until if posture else None
            r.postures.append(item)
            if posture is not None and posture.source == "detector":
                r.campaigns.append(item)
        elif kind in (RecordKind.LIST_ADD, RecordKind.LIST_DEL):
            by = str(rec.get("by", ""))
            if by.startswith("policy:"):
                r.auto_blocks[by.removeprefix("policy:")] += 1
            else:
                r.actions.append(
                    {
                        "ts": ts,
                        "by": by,
                        "what": f"{'added to' if kind == RecordKind.LIST_ADD else 'removed from'} "
                        f"{rec.get('list')} list: {rec.get('value')}",
                        "why": rec.get("reason", ""),
                    }
                )
        elif kind == RecordKind.RESET:
            r.actions.append(
                {
                    "ts": ts,
                    "by": str(rec.get("by", "api")),
                    "what": f"reset counters of {rec.get('login') or ''} {rec.get('ip') or ''}".strip(),
                    "why": "",
                }
            )
        elif kind in ("campaign", "campaign_start", "campaign_end"):
            r.campaigns.append(dict(rec))
        elif kind in SHED_KINDS:
            shed_records.append(rec)
    r.shedding = episodes_of(shed_records)
    for item in r.postures:
        r.actions.append(
            {
                "ts": item["ts"],
                "by": item["by"],
                "what": f"posture of {item['protocol']}: {item['from']} → {item['to']}",
                "why": item["reason"] or "",
            }
        )
    r.notices = [n for n in notices if since <= n.t <= until]
    for n in r.notices:
        r.actions.append(
            {"ts": n.t, "by": n.by, "what": f"status notice, {n.service}: {n.level}", "why": n.text}
        )
    r.actions.sort(key=lambda a: a["ts"])
    return r


def _hostile(r: Report, ip: str, login: str, codes: Iterable[str]) -> None:
    if ip:
        r.ips[ip] += 1
        r.subnets[subnet_of(ip)] += 1
    if login:
        r.logins[login] += 1
    if codes:
        r.source_reasons.setdefault(ip, set()).update(codes)
        r.source_reasons.setdefault(login, set()).update(codes)


def _columns(
    r: Report, counts: Counter[tuple[int, str]], names: tuple[str, ...]
) -> dict[str, list[float]]:
    n = max(1, int((r.until - r.since) // r.width) + 1)
    return {
        name: [float(counts[(i, name)]) for i in range(n)]
        for name in names
        if any(counts[(i, name)] for i in range(n))
    } or {names[0]: [0.0] * n}


def _episode_row(e: EpisodeView) -> tuple[str, ...]:
    duration = f"{e.ended - e.started:.0f} s" if e.ended is not None else "still shedding"
    shares = ", ".join(f"{label} {pct} %" for label, pct in e.lowest_shares.items())
    away = ", ".join(f"{label} {n:,}" for label, n in e.turned_away.items() if n)
    limits = f"{min(e.limits):g} to {max(e.limits):g}" if e.limits else ""
    return (
        e.service,
        when(e.started),
        when(e.ended) if e.ended is not None else "",
        duration,
        shares,
        f"{e.total_turned_away:,}" + (f" ({away})" if away else ""),
        limits,
    )


def _table(headers: tuple[str, ...], rows: list[tuple[Any, ...]], empty: str) -> str:
    if not rows:
        return f'<p class="empty">{h(empty)}</p>'
    head = "".join(f"<th>{h(x)}</th>" for x in headers)
    body = "".join("<tr>" + "".join(f"<td>{h(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(r: Report) -> str:
    n = max(1, int((r.until - r.since) // r.width) + 1)
    starts = [r.since + i * r.width for i in range(n)]
    refused = r.totals["deny"] + r.totals["step_up"]
    figures = (
        ("Decisions", r.totals["decisions"]),
        ("Refused (deny + step-up)", refused),
        ("Delayed", r.totals["delay"]),
        ("Failed sign-ins", r.totals["failure"]),
        ("Successful sign-ins", r.totals["success"]),
        ("Hostile source IPs", r.distinct_ips),
        ("Targeted accounts", len(r.logins)),
        ("Exposed accounts seen", len(r.exposed)),
        ("Shedding episodes", len(r.shedding)),
        ("Requests shed", sum(e.total_turned_away for e in r.shedding)),
    )
    cards = "".join(
        f'<div class="card"><span class="figure" data-figure="{h(label)}">{value:,}</span><span>{h(label)}</span></div>'
        for label, value in figures
    )
    protocols = sorted({p for p, _ in r.protocols})
    proto_rows = [
        (p, *(r.protocols[(p, k)] for k in (*VERDICTS, "failure", "success"))) for p in protocols
    ]
    top_ips = [
        (ip, c, ", ".join(sorted(r.source_reasons.get(ip, ())))) for ip, c in r.ips.most_common(15)
    ]
    top_logins = [
        (lg, c, ", ".join(sorted(r.source_reasons.get(lg, ()))))
        for lg, c in r.logins.most_common(15)
    ]
    exposed_rows = [
        (lg, c, "yes" if lg in r.restricted else "no") for lg, c in r.exposed.most_common(25)
    ]
    campaign_rows = [
        (
            when(c.get("ts")),
            c.get("protocol", ""),
            f"{c.get('from', '')} → {c.get('to', '')}",
            c.get("by", ""),
            c.get("reason", ""),
        )
        for c in r.campaigns
    ]
    posture_rows = [
        (when(p["ts"]), p["protocol"], f"{p['from']} → {p['to']}", p["by"], p["reason"] or "")
        for p in r.postures
    ]
    action_rows = [(when(a["ts"]), a["by"] or "(unknown)", a["what"], a["why"]) for a in r.actions]
    auto_rows = [(rule, c) for rule, c in r.auto_blocks.most_common()]
    shed_rows = [_episode_row(e) for e in r.shedding]
    css = resources.files("rempart.ops").joinpath("static", "report.css").read_text("utf-8")
    sections = [
        f'<section id="summary"><h2>Summary</h2><div class="cards">{cards}</div>'
        f'<p class="integrity">{h(r.integrity)}</p></section>',
        '<section id="timeline"><h2>Timeline of attempts and verdicts</h2>'
        + stacked_columns(
            starts,
            r.width,
            _columns(r, r.verdicts, VERDICTS),
            f"Verdicts per {bucket_label(r.width)}",
        )
        + stacked_columns(
            starts,
            r.width,
            _columns(r, r.outcomes, ("failure", "success")),
            f"Reported sign-ins per {bucket_label(r.width)}",
        )
        + "</section>",
        '<section id="protocols"><h2>Per protocol</h2>'
        + _table(
            ("protocol", *VERDICTS, "failed", "succeeded"),
            proto_rows,
            "No attempts in this window.",
        )
        + '<div class="two">'
        + hbars(r.reasons.most_common(12), "Reasons given")
        + hbars(r.subnets.most_common(12), "Top subnets (refusals + failures)", bar="#9b2c2c")
        + "</div></section>",
        '<section id="campaigns"><h2>Detected campaigns and posture changes</h2>'
        + "<h3>Campaigns</h3>"
        + _table(
            ("time", "protocol", "change", "by", "reason"),
            campaign_rows,
            "No campaign was detected in this window.",
        )
        + "<h3>Posture changes</h3>"
        + _table(
            ("time", "protocol", "change", "by", "reason"),
            posture_rows,
            "Posture did not change in this window.",
        )
        + "</section>",
        '<section id="sources"><h2>Top sources</h2>'
        + _table(
            ("IP", "refusals + failures", "reasons"), top_ips, "No hostile source in this window."
        )
        + "<h3>Top targeted accounts</h3>"
        + _table(("login", "refusals + failures", "reasons"), top_logins, "No targeted account.")
        + "<h3>Automatic blocks by rule</h3>"
        + _table(("rule", "entries"), auto_rows, "No automatic block.")
        + "</section>",
        '<section id="accounts"><h2>Accounts exposed or restricted</h2>'
        + _table(
            ("login", "attempts flagged exposed", "restricted (step-up / deny)"),
            exposed_rows,
            "No exposed account was seen in this window.",
        )
        + f'<p class="note">{len(r.exposed)} exposed account(s) seen, {len(r.restricted)} restricted.</p>'
        + "</section>",
        '<section id="shedding"><h2>Load shedding episodes</h2>'
        + _table(
            ("service", "started", "ended", "duration", "lowest shares", "turned away", "limit"),
            shed_rows,
            "Admission control turned nobody away in this window.",
        )
        + "</section>",
        '<section id="actions"><h2>Operator actions</h2>'
        + _table(("time", "who", "what", "why"), action_rows, "No operator action in this window.")
        + "</section>",
    ]
    title = f"Incident report {when(r.since, False)} to {when(r.until, False)}"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{h(title)}</title><style>{css}</style></head><body><main>"
        f"<header><h1>{h(title)}</h1><p>Generated {h(when(r.generated))} from {r.records:,} journal "
        f"records (UTC times, {bucket_label(r.width)} buckets).</p></header>"
        + "".join(sections)
        + "</main></body></html>"
    )
