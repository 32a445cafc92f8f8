"""Live figures for the operator dashboard: a cheap engine listener plus a once-a-second ticker.

The listener runs on the decision path, so it only bumps a few dict counters per event (O(1),
no I/O, no allocation beyond the dict slot). Everything that costs more — per-second deltas,
top-k selection, pruning — happens in `tick()`, called once a second off the decision path.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Final

from rempart.engine.events import (
    CountersReset,
    Decided,
    EngineEvent,
    ListAdded,
    ListRemoved,
    PostureChanged,
    Reported,
)
from rempart.engine.records import event_record
from rempart.model import Action, Protocol

if TYPE_CHECKING:
    from rempart.engine.engine import Engine

VERDICTS = tuple(a.label for a in Action)
OUTCOMES = ("failure", "success")
HISTORY_SECONDS = 300  # points kept for the live charts
GENERATION_SECONDS = 300  # top lists cover the current and the previous generation
MAX_KEYS = 10000  # per top table, pruned on tick
TOP_N = 10


_ACTION_EVENTS: Final = (ListAdded, ListRemoved, PostureChanged, CountersReset)


def subnet_of(ip: str) -> str:
    """IPv4 /24 or IPv6 /64 of a canonical address, by string operations (hot path)."""
    if ":" not in ip:
        return ip.rpartition(".")[0] + ".0/24"
    head = ip.split("::", 1)[0].split(":")[:4] if "::" in ip else ip.split(":")[:4]
    while len(head) < 4:
        head.append("0")
    return ":".join(head) + "::/64"


class _Table:
    """Counts per key for the current and the previous generation, with the last reasons."""

    __slots__ = ("cur", "prev", "reasons")

    def __init__(self) -> None:
        self.cur: dict[str, int] = {}
        self.prev: dict[str, int] = {}
        self.reasons: dict[str, tuple[Any, ...]] = {}  # key -> last verdict's Reason tuple

    def rotate(self) -> None:
        self.prev, self.cur = self.cur, {}
        keep = self.prev
        self.reasons = {k: v for k, v in self.reasons.items() if k in keep}

    def prune(self) -> None:
        if len(self.cur) > MAX_KEYS:
            top = heapq.nlargest(MAX_KEYS // 2, self.cur.items(), key=lambda kv: kv[1])
            self.cur = dict(top)
        if len(self.reasons) > 2 * MAX_KEYS:
            self.reasons = {k: v for k, v in self.reasons.items() if k in self.cur}

    def top(self, n: int = TOP_N) -> list[dict[str, Any]]:
        cur, prev = self.cur, self.prev
        candidates = set(heapq.nlargest(n, cur, key=cur.__getitem__))
        candidates.update(heapq.nlargest(n, prev, key=prev.__getitem__))
        scored = sorted(
            ((cur.get(k, 0) + prev.get(k, 0), k) for k in candidates), key=lambda p: (-p[0], p[1])
        )
        return [
            {"key": k, "count": c, "reasons": [r.code for r in self.reasons.get(k, ())]}
            for c, k in scored[:n]
        ]

    def by_subnet(self, n: int = TOP_N) -> list[dict[str, Any]]:
        """Top subnets, summed from the per-IP counts (done here, not on the decision path)."""
        totals: dict[str, int] = {}
        reasons: dict[str, tuple[Any, ...]] = {}
        for table in (self.prev, self.cur):
            for ip, count in table.items():
                net = subnet_of(ip)
                totals[net] = totals.get(net, 0) + count
                why = self.reasons.get(ip)
                if why:
                    reasons[net] = why
        best = heapq.nlargest(n, totals.items(), key=lambda kv: (kv[1], kv[0]))
        return [
            {"key": k, "count": c, "reasons": [r.code for r in reasons.get(k, ())]} for k, c in best
        ]


class LiveStats:
    """Aggregates engine events for the dashboard."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Cumulative counters bumped by the listener.
        self.decisions: dict[Protocol, list[int]] = {p: [0] * len(VERDICTS) for p in Protocol}
        self.reports: dict[Protocol, list[int]] = {p: [0, 0] for p in Protocol}  # failed, succeeded
        self.ips = _Table()
        self.logins = _Table()
        self.actions: deque[dict[str, Any]] = deque(maxlen=50)
        # Per-second history, filled by tick().
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY_SECONDS)
        self._last: tuple[dict[str, int], dict[str, int], dict[str, int]] = ({}, {}, {})
        self._generation_started = time.time()
        self._tops: tuple[float, dict[str, list[dict[str, Any]]]] = (0.0, {})
        # Decision workers' figures (`absorb`): the last ones of each, their reasons summed, and
        # how many of this process's actions `figures` has handed out.
        self._remote: dict[int, dict[str, Any]] = {}
        self.tops_asked = 0.0  # when the dashboard last asked for the top sources (monotonic)
        self._remote_reasons: dict[str, int] = {}
        self._actions_total = 0  # actions this process's engine made (the deque keeps 50)
        self._actions_sent = 0

    # --- hot path ------------------------------------------------------------------------------
    def listener(self, event: EngineEvent) -> None:
        """Engine listener: a few dict increments, nothing else (no allocation beyond keys)."""
        # isinstance, not `match`: class patterns add a getattr per field, on every decision.
        if isinstance(event, Decided):
            attempt, verdict = event.attempt, event.verdict
            action = verdict.action
            self.decisions[attempt.protocol][action] += 1
            if action:
                ip, login = attempt.ip, attempt.login
                ips, logins = self.ips, self.logins
                ips.cur[ip] = ips.cur.get(ip, 0) + 1
                logins.cur[login] = logins.cur.get(login, 0) + 1
                ips.reasons[ip] = logins.reasons[login] = verdict.reasons
        elif isinstance(event, Reported):
            attempt = event.attempt
            success = event.outcome.success
            self.reports[attempt.protocol][success] += 1
            if not success:
                ip, login = attempt.ip, attempt.login
                cur = self.ips.cur
                cur[ip] = cur.get(ip, 0) + 1
                cur = self.logins.cur
                cur[login] = cur.get(login, 0) + 1
        elif isinstance(event, _ACTION_EVENTS):
            self.actions.append(_action(event))
            self._actions_total += 1

    # --- once a second ---------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> dict[str, Any]:
        """Append one history point (the deltas since the last tick) and return it."""
        now = time.time() if now is None else now
        decisions, reports = _labelled(self.decisions, VERDICTS), _labelled(self.reports, OUTCOMES)
        reasons = self.engine.snapshot().reasons
        if self._remote_reasons:
            reasons = dict(reasons)
            for code, n in self._remote_reasons.items():
                reasons[code] = reasons.get(code, 0) + n
        last_d, last_r, last_c = self._last
        point: dict[str, Any] = {"t": round(now, 3), "decisions": {}, "reports": {}, "reasons": {}}
        for source, target, last in (
            (decisions, point["decisions"], last_d),
            (reports, point["reports"], last_r),
        ):
            for key, n in source.items():
                delta = n - last.get(key, 0)
                if delta:
                    protocol, _, label = key.partition("/")
                    target.setdefault(protocol, {})[label] = delta
        for code, n in reasons.items():
            delta = n - last_c.get(code, 0)
            if delta:
                point["reasons"][code] = delta
        self._last = (decisions, reports, reasons)
        self.history.append(point)
        if now - self._generation_started >= GENERATION_SECONDS:
            self._generation_started = now
            for table in (self.ips, self.logins):
                table.rotate()
        for table in (self.ips, self.logins):
            table.prune()
        return point

    def tops(self, max_age: float = 2.0) -> dict[str, list[dict[str, Any]]]:
        """Top IPs, subnets and logins, the decision workers' included (recomputed at most
        every `max_age` seconds)."""
        now = self.tops_asked = time.monotonic()
        if now - self._tops[0] >= max_age or not self._tops[1]:
            tops = {
                "ips": self.ips.top(),
                "subnets": self.ips.by_subnet(),
                "logins": self.logins.top(),
            }
            for remote in self._remote.values():
                for name, rows in remote.get("tops", {}).items():
                    if name in tops:
                        tops[name] = _merged(tops[name], rows)
            self._tops = (now, tops)
        return self._tops[1]

    # --- decision workers (rempart.workers) ------------------------------------------------------
    def figures(self, pid: int, tops: bool = True) -> dict[str, Any]:
        """What a decision worker hands its primary once a second: its cumulative decisions,
        reports and reasons, the actions since the last call, and (`tops`: while the primary's
        dashboard is watched, for they take milliseconds to rank) its top sources."""
        fresh = min(len(self.actions), self._actions_total - self._actions_sent)
        self._actions_sent = self._actions_total
        return {
            "pid": pid,
            "decisions": _labelled(self.decisions, VERDICTS),
            "reports": _labelled(self.reports, OUTCOMES),
            "reasons": dict(self.engine.snapshot().reasons),
            **({"tops": self.tops(max_age=0.0)} if tops else {}),
            "actions": list(self.actions)[len(self.actions) - fresh :] if fresh else [],
        }

    def absorb(self, worker: int, figures: dict[str, Any]) -> None:
        """A decision worker's `figures`: what they grew by since its last ones is added to
        this process's counters (so charts and totals cover the host); its top sources stand
        beside this process's until its next figures."""
        last = self._remote.get(worker, {})
        if last.get("pid") != figures.get("pid"):
            last = {}  # a new worker process: its counts start from zero
        for table, kind, labels in (
            (self.decisions, "decisions", VERDICTS),
            (self.reports, "reports", OUTCOMES),
        ):
            seen = last.get(kind, {})
            for key, n in figures.get(kind, {}).items():
                grown = n - seen.get(key, 0)
                protocol, _, label = key.partition("/")
                if grown > 0 and label in labels:
                    table[Protocol(protocol)][labels.index(label)] += grown
        seen = last.get("reasons", {})
        for code, n in figures.get("reasons", {}).items():
            grown = n - seen.get(code, 0)
            if grown > 0:
                self._remote_reasons[code] = self._remote_reasons.get(code, 0) + grown
        self.actions.extend(figures.get("actions", ()))
        self._remote[worker] = figures
        self._tops = (0.0, {})

    def totals(self) -> dict[str, Any]:
        """Cumulative counts since start, per protocol."""
        out: dict[str, dict[str, int]] = {}
        for table, labels in ((self.decisions, VERDICTS), (self.reports, OUTCOMES)):
            for protocol, row in table.items():
                for i, n in enumerate(row):
                    if n:
                        out.setdefault(protocol.value, {})[labels[i]] = n
        return out

    def postures(self) -> dict[str, str]:
        return self.engine.snapshot().levels()


def _labelled(table: dict[Protocol, list[int]], labels: tuple[str, ...]) -> dict[str, int]:
    """A per-protocol counter table as {"imap/deny": n}, zero counts left out."""
    return {f"{p.value}/{labels[i]}": n for p, row in table.items() for i, n in enumerate(row) if n}


def _merged(mine: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Two top lists as one: counts of a key summed, its reasons joined, the TOP_N largest."""
    rows: dict[str, dict[str, Any]] = {}
    for row in (*mine, *theirs):
        key = row["key"]
        seen = rows.get(key)
        if seen is None:
            rows[key] = {"key": key, "count": row["count"], "reasons": list(row["reasons"])}
        else:
            seen["count"] += row["count"]
            seen["reasons"] += [r for r in row["reasons"] if r not in seen["reasons"]]
    return sorted(rows.values(), key=lambda r: (-r["count"], r["key"]))[:TOP_N]


def _action(event: ListAdded | ListRemoved | PostureChanged | CountersReset) -> dict[str, Any]:
    """The display form of an operator-visible change (list, posture, reset)."""
    rec = event_record(event)
    out: dict[str, Any] = {"t": round(event.at, 3), "kind": rec["kind"], "by": rec.get("by", "")}
    match event:
        case ListAdded(list=which, entry=entry) | ListRemoved(list=which, entry=entry):
            out.update(list=which.value, value=entry.value, reason=entry.reason)
        case PostureChanged(before=before, record=record):
            out.update(
                protocol=record.protocol.value,
                level=record.level.value,
                before=before.value,
                reason=record.reason,
                held=record.held,
                until=record.until,
            )
        case CountersReset(login=login, ip=ip):
            out.update(login=login, ip=ip)
    return out
