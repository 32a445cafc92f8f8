"""HTML of the operator console: sign-in form, error page and the dashboard itself.

The dashboard is complete without JavaScript (tables and forms rendered here); `console.js`
adds the live charts and refreshes figures from the event stream.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from rempart.engine.engine import POSTURES
from rempart.engine.posture import PostureSource
from rempart.model import ListName
from rempart.ops.notices import LEVELS
from rempart.ops.web import h, page, when

if TYPE_CHECKING:
    from rempart.ops.console import Console
    from rempart.ops.sessions import Session

DONE = {
    "block-added": "Block entry added.",
    "allow-added": "Allow entry added.",
    "block-removed": "Block entry removed.",
    "allow-removed": "Allow entry removed.",
    "posture": "Posture changed.",
    "notice": "Notice posted on the status page.",
    "notice-withdrawn": "Notice withdrawn from the status page and its history.",
}
PROTOCOL_LABELS = {
    "imap": "IMAP",
    "pop3": "POP3",
    "smtp": "SMTP",
    "web": "Web",
    "app": "Apps",
    "api": "API",
}


def login_page(token: str, note: str, single: bool, failed: bool = False) -> str:
    hint = (
        "No operator account exists yet: sign in as <code>admin</code> with the API password, "
        "then create accounts with <code>rempart operator add NAME</code>."
        if single
        else "Sign in with your operator account."
    )
    alert = f'<p class="alert{" bad" if failed else ""}" role="alert">{h(note)}</p>' if note else ""
    body = (
        '<main class="login"><form method="post" action="/ops/login" class="panel">'
        '<h1><span class="logo" aria-hidden="true"></span>Rempart operations</h1>'
        f'{alert}<p class="hint">{hint}</p>'
        f'<input type="hidden" name="csrf" value="{h(token)}">'
        '<label>Operator <input name="operator" id="operator" autocomplete="username" required '
        f'value="{"admin" if single else ""}"></label>'
        '<label>Password <input name="password" id="password" type="password" '
        'autocomplete="current-password" required></label>'
        '<button type="submit" id="signin">Sign in</button></form></main>'
    )
    return page("Sign in · Rempart", body, body_class="center")


def error_page(status: int, reason: str) -> str:
    body = (
        f'<main class="login"><div class="panel"><h1>Request refused ({status})</h1>'
        f'<p class="alert bad" role="alert" id="error">{h(reason)}</p>'
        '<p>Nothing was changed. <a href="/ops/">Back to the dashboard</a></p></div></main>'
    )
    return page(f"Error {status} · Rempart", body, body_class="center")


def _csrf(session: Session) -> str:
    return f'<input type="hidden" name="csrf" value="{h(session.csrf)}">'


def _top_rows(items: list[dict[str, Any]], param: str) -> str:
    if not items:
        return '<tr class="empty"><td colspan="3">Nothing hostile in the last minutes.</td></tr>'
    return "".join(
        f'<tr><td><a href="/ops/journal?{param}={quote(i["key"])}">{h(i["key"])}</a></td>'
        f'<td class="num">{i["count"]:,}</td><td class="reasons">{h(", ".join(i["reasons"]))}</td></tr>'
        for i in items
    )


def _top_table(title: str, ident: str, items: list[dict[str, Any]], param: str) -> str:
    return (
        f'<div class="top"><h3>{h(title)}</h3><table id="{ident}" data-param="{param}">'
        "<thead><tr><th>key</th><th class=num>count</th><th>last reasons</th></tr></thead>"
        f"<tbody>{_top_rows(items, param)}</tbody></table></div>"
    )


POSTURE_COLUMNS = (
    ("by", "set by"),
    ("reason", "why"),
    ("since", "since"),
    ("until", "until"),
    ("detector", "detector"),
)


def posture_facts(console: Console, now: float) -> dict[str, dict[str, Any]]:
    """Per protocol, what the posture panel shows: level, who set it, why, since, until when,
    and whether the campaign detector is active or paused for it (also sent live)."""
    detecting = console.engine.campaign is not None
    out: dict[str, dict[str, Any]] = {}
    for protocol, view in console.engine.snapshot().postures.items():
        record = view.record
        held = record.hold_active(now)
        if held:
            until = when(record.until) if record.until is not None else "until changed"
        else:
            until = "the detector decides" if detecting else "until changed"
        if not detecting:
            detector = "off ([campaign] disabled)"
        else:
            detector = "paused (operator hold)" if held else "active"
        by = record.by
        if record.source is PostureSource.OPERATOR:
            by = by.removeprefix("operator:")
        out[protocol.value] = {
            "level": record.level.value,
            "by": by,
            "source": record.source.value,
            "reason": record.reason or "—",
            "since": when(record.since) or "—",
            "until": until,
            "held": held,
            "detector": detector,
        }
    return out


def _posture_form(session: Session, protocol: str, level: str) -> str:
    options = "".join(
        f'<option value="{p}"{" selected" if p == level else ""}>{p}</option>' for p in POSTURES
    )
    label = PROTOCOL_LABELS.get(protocol, protocol)
    return (
        f'<form method="post" action="/ops/posture" class="posture-form">{_csrf(session)}'
        f'<input type="hidden" name="protocol" value="{h(protocol)}">'
        f'<select name="level" aria-label="new posture for {h(label)}">{options}</select>'
        '<span class="choice" role="radiogroup" aria-label="hold or hand back">'
        f'<label><input type="radio" name="hold" value="hold" required> hold</label>'
        f'<label><input type="radio" name="hold" value="hand-back" required> hand back'
        " to the detector</label></span>"
        f'<input name="ttl" size="8" placeholder="for (e.g. 2h)" maxlength="20" '
        f'aria-label="hold {h(label)} for (empty: until changed)">'
        '<input name="reason" placeholder="why? (required)" required maxlength="300" '
        f'aria-label="reason for {h(label)}">'
        '<button type="submit">Set</button></form>'
    )


def _posture_panel(console: Console, session: Session) -> str:
    rows = []
    for protocol, fact in posture_facts(console, time.time()).items():
        cells = "".join(
            f'<td id="posture-{h(protocol)}-{key}" data-label="{label}">{h(fact[key])}</td>'
            for key, label in POSTURE_COLUMNS
        )
        rows.append(
            f'<tr id="posture-row-{h(protocol)}">'
            f'<td class="proto">{h(PROTOCOL_LABELS.get(protocol, protocol))}</td>'
            f'<td><span class="badge lvl-{h(fact["level"])}" id="posture-{h(protocol)}">'
            f"{h(fact['level'])}</span></td>{cells}"
            f"<td>{_posture_form(session, protocol, fact['level'])}</td></tr>"
        )
    return (
        '<section class="panel wide" id="posture"><h2>Posture per protocol</h2>'
        '<p class="hint">normal → guarded → strict (new devices must prove themselves elsewhere) → '
        "closed. <b>Hold</b> keeps the level for the time given (empty: until changed) and pauses "
        "the campaign detector for that protocol; <b>hand back</b> sets the level now and lets "
        "the detector move it as traffic warrants (no time: the detector decides). Ending an "
        "incident: set normal and hand back. Every change is journaled with your name and "
        "reason.</p>"
        '<table id="postures"><thead><tr><th>protocol</th><th>level</th><th>set by</th>'
        "<th>why</th><th>since</th><th>until</th><th>detector</th><th>change</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _lists_panel(console: Console, session: Session) -> str:
    now = time.time()
    rows = []
    for which in (ListName.BLOCK, ListName.ALLOW):
        entries = sorted(console.engine.list_entries(which, now), key=lambda e: -e.created)
        for entry in entries[:200]:
            rows.append(
                f'<tr><td><span class="badge list-{which}">{which}</span></td><td>{h(entry.kind)}</td>'
                f'<td class="mono">{h(entry.value.replace("|", " "))}</td>'
                f"<td>{h(when(entry.expires, False) or 'never')}</td><td>{h(entry.reason)}</td>"
                f'<td><form method="post" action="/ops/lists/remove">{_csrf(session)}'
                f'<input type="hidden" name="list" value="{which}">'
                f'<input type="hidden" name="kind" value="{h(entry.kind)}">'
                f'<input type="hidden" name="value" value="{h(entry.value)}">'
                '<button class="small" type="submit">Remove</button></form></td></tr>'
            )
    table = (
        '<table id="entries"><thead><tr><th>list</th><th>kind</th><th>value</th><th>expires</th>'
        "<th>reason</th><th></th></tr></thead><tbody>"
        + ("".join(rows) or '<tr class="empty"><td colspan="6">No entries.</td></tr>')
        + "</tbody></table>"
    )
    form = (
        f'<form method="post" action="/ops/lists/add" class="inline" id="add-entry">{_csrf(session)}'
        '<select name="list" id="entry-list" aria-label="list"><option value="block">block</option>'
        '<option value="allow">allow</option></select>'
        '<select name="kind" id="entry-kind" aria-label="kind"><option value="ip">IP</option>'
        '<option value="netmask">network (CIDR)</option><option value="login">login</option>'
        '<option value="ip_login">IP + login</option></select>'
        '<input name="value" id="entry-value" required placeholder="192.0.2.7, 198.51.100.0/24, '
        'login, or \'IP login\'" aria-label="value">'
        '<input name="expires" id="entry-expires" placeholder="expires in (e.g. 2h; empty: never)" '
        'aria-label="expires in">'
        '<input name="reason" id="entry-reason" required maxlength="300" placeholder="reason (required)" '
        'aria-label="reason">'
        '<label class="small"><input type="checkbox" name="confirm" value="yes" id="entry-confirm">'
        " confirm a very wide network</label>"
        '<button type="submit" id="entry-add">Add</button></form>'
    )
    snap = console.engine.snapshot()
    return (
        '<section class="panel wide" id="lists"><h2>Block and allow lists '
        f'<small><span id="count-block">{snap.blocklist_entries}</span> blocked · '
        f'<span id="count-allow">{snap.allowlist_entries}</span> allowed</small></h2>'
        f"{form}{table}</section>"
    )


def _features_panel(console: Console) -> str:
    reasons = console.engine.snapshot().reasons
    leaks = console.context.leaks
    if leaks is None:
        leak = '<p class="absent">Leak corpus not loaded: exposed-account counts appear once it is.</p>'
    else:
        counts: dict[str, Any] = {}
        stats = getattr(leaks, "stats", None)
        if callable(stats):
            try:
                counts = dict(stats())
            except Exception:
                counts = {}
        items = "".join(
            f"<li>{h(k.replace('_', ' '))}: <b>{h(_figure(v))}</b></li>"
            for k, v in counts.items()
            if isinstance(v, int | float)
        )
        leak = f'<ul class="facts">{items or "<li>corpus loaded</li>"}</ul>'
    flagged = reasons.get("account_exposed", 0) + reasons.get("leaked_pair", 0)
    try:
        shed = console.context.shed_status()
    except Exception as exc:
        shed_html = f'<p class="absent">Shedding status unavailable: {h(type(exc).__name__)}</p>'
    else:
        if shed is None:
            shed_html = '<p class="absent">Load shedding is not configured on this node.</p>'
        else:
            svc = shed.get("services", {})
            shed_html = (
                "<ul class=facts>"
                + "".join(
                    f"<li>{h(n)}: <b>{h(s.get('health', '?') if isinstance(s, dict) else s)}</b></li>"
                    for n, s in svc.items()
                )
                + "</ul>"
            )
    app = console.context.app_password_counts()
    if app is None:
        app_html = '<p class="absent">App passwords are disabled on this node.</p>'
    else:
        app_html = (
            '<ul class="facts" id="app-passwords">'
            + "".join(f"<li>{h(k.replace('_', ' '))}: <b>{v:,}</b></li>" for k, v in app.items())
            + "</ul>"
        )
    return (
        '<section class="panel" id="features"><h2>Accounts and load</h2>'
        f"<h3>Exposed accounts</h3>{leak}"
        f'<p>Verdicts flagging an exposed account since start: <b id="flagged">{flagged:,}</b></p>'
        f"<h3>App passwords</h3>{app_html}"
        f"<h3>Load shedding</h3>{shed_html}</section>"
    )


def _figure(value: float) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:,}"


def _notices_panel(console: Console, session: Session) -> str:
    current = console.notices.current()
    items = (
        "".join(
            f'<li><b>{h(s)}</b> <span class="badge lvl-{h(n.level)}">{h(n.level)}</span> {h(n.text)} '
            f"<small>{h(when(n.t, False))} by {h(n.by)}</small></li>"
            for s, n in current.items()
        )
        or "<li class=empty>No active notice.</li>"
    )
    recent = "".join(
        f'<li><b>{h(n.service)}</b> <span class="badge lvl-{h(n.level)}">{h(n.level)}</span> '
        f"{h(n.text)} <small>{h(when(n.t, False))} by {h(n.by)}</small>"
        f'<form method="post" action="/ops/notices/withdraw" class="inline">{_csrf(session)}'
        f'<input type="hidden" name="id" value="{h(n.id)}">'
        '<input name="reason" required maxlength="300" placeholder="why" aria-label="reason">'
        '<button type="submit">Withdraw</button></form></li>'
        for n in reversed(console.notices.all()[-10:])
    )
    if recent:
        items += f'</ul><h3>Public history (latest 10)</h3><ul class="facts">{recent}'
    services = "".join(
        f'<option value="{h(k)}">{h(v)}</option>' for k, v in console.settings.services.items()
    )
    levels = "".join(f'<option value="{lv}">{lv}</option>' for lv in LEVELS)
    return (
        '<section class="panel span2" id="notices"><h2>Status page notices <a class="small-link" href="/status">open /status</a></h2>'
        f'<ul class="facts">{items}</ul>'
        f'<form method="post" action="/ops/notices" class="stack">{_csrf(session)}'
        f'<div class="inline"><select name="service" aria-label="service">{services}</select>'
        f'<select name="level" aria-label="level">{levels}</select></div>'
        '<textarea name="text" rows="2" maxlength="500" required placeholder="What works, what users '
        'should do. No links: users type our address themselves." aria-label="notice text"></textarea>'
        '<button type="submit">Post notice</button></form></section>'
    )


def render(console: Console, session: Session, query: dict[str, str]) -> str:
    tops = console.live.tops()
    done = DONE.get(query.get("done", ""), "")
    alert = f'<p class="alert ok" role="status" id="done">{h(done)}</p>' if done else ""
    actions = (
        "".join(
            f"<li><time>{h(when(a['t']))}</time> {h(a['by'])}: {h(a['kind'])} "
            f"{h(a.get('value') or a.get('protocol') or '')} {h(a.get('reason') or '')}</li>"
            for a in reversed(console.live.actions)
        )
        or "<li class=empty>None since start.</li>"
    )
    charts = "".join(
        f'<figure class="chart-box" id="{ident}" data-kind="{kind}"><figcaption>{h(title)} '
        f'<span class="total" data-total="0">0</span></figcaption>'
        '<div class="plot"><p class="hint">Waiting for live data…</p></div><div class="legend"></div></figure>'
        for ident, kind, title in (
            ("chart-verdicts", "verdicts", "Verdicts per second (all protocols)"),
            ("chart-protocols", "protocols", "Reported sign-ins per second, by protocol"),
            ("chart-reasons", "reasons", "Reasons per second"),
        )
    )
    body = (
        '<header class="bar"><span class="logo" aria-hidden="true"></span><b>Rempart</b> operations'
        '<nav><a href="/ops/">Dashboard</a><a href="/ops/journal">Journal</a><a href="/status">Status page</a></nav>'
        f'<span class="who">{h(session.operator)}</span><span id="live" class="live off">connecting</span>'
        f'<form method="post" action="/ops/logout">{_csrf(session)}<button class="small" type="submit">Sign out</button></form>'
        "</header><main class=grid>"
        + alert
        + f'<section class="panel wide" id="charts"><h2>Live traffic <small>up to the last 5 minutes, updated every second</small></h2><div class="charts">{charts}</div></section>'
        + '<section class="panel wide" id="tops"><h2>Top sources and targets <small>refusals and failures, last 5 to 10 minutes</small></h2><div class="tops">'
        + _top_table("Source IPs", "top-ips", tops["ips"], "ip")
        + _top_table("Source subnets", "top-subnets", tops["subnets"], "subnet")
        + _top_table("Targeted logins", "top-logins", tops["logins"], "login")
        + '</div><p class="hint">ASN: no ASN database is configured on this node.</p></section>'
        + _posture_panel(console, session)
        + _features_panel(console)
        + f'<section class="panel" id="actions"><h2>Recent changes</h2><ul class="facts" id="action-list">{actions}</ul></section>'
        + _lists_panel(console, session)
        + _notices_panel(console, session)
        + '<section class="panel" id="search"><h2>Journal search</h2><form method="get" action="/ops/journal" class="stack">'
        '<input name="login" placeholder="login" aria-label="login"><input name="ip" placeholder="IP" aria-label="IP">'
        '<div class="inline"><input name="since" placeholder="since (2h, ISO time)" aria-label="since">'
        '<input name="until" placeholder="until" aria-label="until"></div><button type="submit">Search</button></form></section>'
        + "</main>"
    )
    meta = f'<meta name="csrf-token" content="{h(session.csrf)}">'
    return page("Rempart operations", body, js=("console.js",), meta=meta)
