"""Journal search and per-key timelines for the console (`/ops/journal?login=|ip=|subnet=`).

Queries are validated (a malformed one is a 400 naming the field), run in a worker thread so the
event loop keeps deciding, and capped to the latest `limit` records.
"""

from __future__ import annotations

import ipaddress
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from rempart.adapters.fields import choice, network_field, timestamp, whole
from rempart.engine.keys import KeyError_, LoginRules, canonical_login, net_keys
from rempart.httpserver import HTTPError
from rempart.ops.host_journals import HostJournals
from rempart.ops.journal import Journal
from rempart.ops.live import subnet_of
from rempart.ops.report import bucket_label, bucket_width
from rempart.ops.svg import stacked_columns
from rempart.ops.web import h, page, when

KINDS = ("decision", "report", "list_add", "list_del", "posture", "reset", "postfix_refusal")
DEFAULT_SPAN = 86400.0
MAX_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class Query:
    login: str = ""
    ip: str = ""
    subnet: str = ""
    since: float = 0.0
    until: float = 0.0
    kind: str = ""
    limit: int = 500

    def params(self) -> dict[str, str]:
        return {
            k: v
            for k, v in (
                ("login", self.login),
                ("ip", self.ip),
                ("subnet", self.subnet),
                ("kind", self.kind),
            )
            if v
        }


def parse_query(q: dict[str, str], rules: LoginRules, now: float | None = None) -> Query:
    now = time.time() if now is None else now
    try:
        login = canonical_login(q["login"], rules) if q.get("login", "").strip() else ""
        ip = net_keys(q["ip"].strip()).ip if q.get("ip", "").strip() else ""
    except KeyError_ as exc:
        raise HTTPError(400, f"bad search: {exc}") from None
    subnet = ""
    if q.get("subnet", "").strip():
        text = q["subnet"].strip()
        network = network_field({"subnet": text}, "subnet")
        assert network is not None
        # A bare address means its usual neighbourhood: the /24 or /64 the dashboard shows.
        subnet = str(network) if "/" in text else subnet_of(str(network.network_address))
    kind = choice(q, "kind", KINDS, default="")
    since = timestamp(q, "since", now)
    until = timestamp(q, "until", now)
    if since and until and since > until:
        raise HTTPError(400, "field 'since' is after field 'until'")
    if not since:
        since = max(0.0, (until or now) - DEFAULT_SPAN)
    limit = whole(q, "limit", 500, 1, MAX_LIMIT)
    return Query(login, ip, subnet, since, until, kind, limit)


def search(journal: Journal | HostJournals, q: Query) -> list[dict[str, Any]]:
    records = journal.records(
        login=q.login,
        ip=q.ip,
        since=q.since,
        until=q.until,
        kinds=frozenset({q.kind}) if q.kind else frozenset(),
    )
    if q.subnet:
        network = ipaddress.ip_network(q.subnet)
        records = (r for r in records if _within(r.get("ip"), network))
    return list(deque(records, maxlen=q.limit))


def _within(ip: object, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return isinstance(ip, str) and ipaddress.ip_address(ip) in network
    except ValueError:
        return False


def _describe(rec: dict[str, Any]) -> str:
    kind = rec.get("kind")
    if kind == "decision":
        return f"{rec.get('verdict')} {', '.join(rec.get('reasons') or [])}"
    if kind == "report":
        return (
            "success"
            if rec.get("success")
            else "failure" + (" (unknown login)" if rec.get("unknown_login") else "")
        )
    if kind in ("list_add", "list_del"):
        return f"{rec.get('list')} {rec.get('value')} — {rec.get('reason', '')}"
    if kind == "posture":
        return (
            f"{rec.get('protocol')}: {rec.get('from')} → {rec.get('to')} — {rec.get('reason', '')}"
        )
    return ", ".join(
        f"{k}={v}" for k, v in rec.items() if k not in ("ts", "kind", "seq", "prev", "hash")
    )


def render(q: Query, records: list[dict[str, Any]] | None, absent: str) -> str:
    subject = q.login or q.ip or q.subnet
    title = f"Timeline of {subject}" if subject else "Journal search"
    form = (
        '<form method="get" action="/ops/journal" class="inline" id="journal-form">'
        f'<input name="login" value="{h(q.login)}" placeholder="login" aria-label="login">'
        f'<input name="ip" value="{h(q.ip)}" placeholder="IP" aria-label="IP">'
        f'<input name="subnet" value="{h(q.subnet)}" placeholder="subnet" aria-label="subnet">'
        f'<input name="since" value="{h(when(q.since))}" placeholder="since" aria-label="since">'
        f'<input name="until" value="{h(when(q.until) if q.until else "")}" placeholder="until (now)" aria-label="until">'
        '<select name="kind" aria-label="kind"><option value="">all kinds</option>'
        + "".join(f"<option{' selected' if k == q.kind else ''}>{k}</option>" for k in KINDS)
        + '</select><button type="submit">Search</button></form>'
    )
    if records is None:
        content = f'<p class="absent">{h(absent)}</p>'
    else:
        until = q.until or time.time()
        width = bucket_width(max(until - q.since, 60))
        n = int((until - q.since) // width) + 1
        counts: Counter[tuple[int, str]] = Counter()
        for rec in records:
            label = (
                rec.get("verdict")
                if rec.get("kind") == "decision"
                else ("failure" if rec.get("kind") == "report" and not rec.get("success") else "")
            )
            if label:
                counts[(int((float(rec["ts"]) - q.since) // width), str(label))] += 1
        names = [
            k
            for k in ("allow", "delay", "step_up", "deny", "failure")
            if any(c for (_, lbl), c in counts.items() if lbl == k)
        ]
        series = {k: [float(counts[(i, k)]) for i in range(n)] for k in names} or {
            "allow": [0.0] * n
        }
        chart = stacked_columns(
            [q.since + i * width for i in range(n)],
            width,
            series,
            f"Decisions and failures per {bucket_label(width)}",
        )
        rows = "".join(
            f"<tr><td>{h(when(r.get('ts')))}</td><td>{h(r.get('kind'))}</td><td>{h(r.get('protocol', ''))}</td>"
            f'<td><a href="/ops/journal?{urlencode({"login": r.get("login", "")})}">{h(r.get("login", ""))}</a></td>'
            f'<td><a href="/ops/journal?{urlencode({"ip": r.get("ip", "")})}">{h(r.get("ip", ""))}</a></td>'
            f"<td>{h(_describe(r))}</td><td class=num>{h(r.get('seq', ''))}</td></tr>"
            for r in reversed(records)
        )
        content = (
            f'<div class="chart-static">{chart}</div>'
            f'<p class="hint" id="result-count">{len(records):,} record(s), newest first'
            f"{' (capped at the latest ' + str(q.limit) + ')' if len(records) >= q.limit else ''}.</p>"
            '<table id="journal-results"><thead><tr><th>time</th><th>kind</th><th>protocol</th><th>login</th>'
            f"<th>IP</th><th>what</th><th class=num>seq</th></tr></thead><tbody>{rows or '<tr class=empty><td colspan=7>No record matches.</td></tr>'}</tbody></table>"
        )
    body = (
        '<header class="bar"><span class="logo" aria-hidden="true"></span><b>Rempart</b> operations'
        '<nav><a href="/ops/">Dashboard</a><a href="/ops/journal">Journal</a><a href="/status">Status page</a></nav></header>'
        f'<main class="grid"><section class="panel wide"><h2>{h(title)}</h2>{form}{content}</section></main>'
    )
    return page(f"{title} · Rempart", body)
