"""Live figures for the operator dashboard: a cheap engine listener plus a once-a-second ticker.

The listener runs on the decision path, so it only bumps a few dict counters per event (O(1),
no I/O, no allocation beyond the dict slot). Everything that costs more — per-second deltas,
top-k selection, pruning — happens in `tick()`, called once a second off the decision path.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from rempart.model import Action, Protocol

if TYPE_CHECKING:
    from rempart.engine.engine import Engine

VERDICTS = tuple(a.label for a in Action)
HISTORY_SECONDS = 300  # points kept for the live charts
GENERATION_SECONDS = 300  # top lists cover the current and the previous generation
MAX_KEYS = 20000  # per top table, pruned on tick
TOP_N = 10


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
        self.reasons: dict[str, tuple[str, ...]] = {}

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
            {"key": k, "count": c, "reasons": list(self.reasons.get(k, ()))} for c, k in scored[:n]
        ]


class LiveStats:
    """Aggregates engine events for the dashboard."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Cumulative counters bumped by the listener.
        self.decisions: dict[tuple[str, int], int] = {}
        self.reports: dict[tuple[str, bool], int] = {}
        self.ips = _Table()
        self.subnets = _Table()
        self.logins = _Table()
        self.actions: deque[dict[str, Any]] = deque(maxlen=50)
        # Per-second history, filled by tick().
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY_SECONDS)
        self._last: tuple[dict[Any, int], dict[Any, int], dict[str, int]] = ({}, {}, {})
        self._generation_started = time.time()
        self._last_tick = 0.0

    # --- hot path ------------------------------------------------------------------------------
    def listener(self, kind: str, now: float, data: dict[str, Any]) -> None:
        """Engine listener: a few dict increments, nothing else."""
        if kind == "decision":
            attempt = data["attempt"]
            verdict = data["verdict"]
            key = (attempt.protocol, verdict.action)
            d = self.decisions
            d[key] = d.get(key, 0) + 1
            if verdict.action:
                codes = tuple(r.code for r in verdict.reasons)
                self._hostile(attempt.ip, attempt.login, codes)
        elif kind == "report":
            attempt = data["attempt"]
            success = data["outcome"].success
            key2 = (attempt.protocol, success)
            r = self.reports
            r[key2] = r.get(key2, 0) + 1
            if not success:
                self._hostile(attempt.ip, attempt.login, ())
        elif kind in ("list_add", "list_del", "posture", "reset"):
            self.actions.append(_action(kind, now, data))

    def _hostile(self, ip: str, login: str, codes: tuple[str, ...]) -> None:
        subnet = subnet_of(ip)
        for table, key in ((self.ips, ip), (self.subnets, subnet), (self.logins, login)):
            cur = table.cur
            cur[key] = cur.get(key, 0) + 1
            if codes:
                table.reasons[key] = codes

    # --- once a second ---------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> dict[str, Any]:
        """Append one history point (the deltas since the last tick) and return it."""
        now = time.time() if now is None else now
        decisions, reports, reasons = (
            dict(self.decisions),
            dict(self.reports),
            dict(self.engine.reason_counts),
        )
        last_d, last_r, last_c = self._last
        point: dict[str, Any] = {"t": round(now, 3), "decisions": {}, "reports": {}, "reasons": {}}
        for (protocol, action), n in decisions.items():
            delta = n - last_d.get((protocol, action), 0)
            if delta:
                per = point["decisions"].setdefault(str(protocol), {})
                per[VERDICTS[action]] = delta
        for (protocol, success), n in reports.items():
            delta = n - last_r.get((protocol, success), 0)
            if delta:
                per = point["reports"].setdefault(str(protocol), {})
                per["success" if success else "failure"] = delta
        for code, n in reasons.items():
            delta = n - last_c.get(code, 0)
            if delta:
                point["reasons"][code] = delta
        self._last = (decisions, reports, reasons)
        self.history.append(point)
        if now - self._generation_started >= GENERATION_SECONDS:
            self._generation_started = now
            for table in (self.ips, self.subnets, self.logins):
                table.rotate()
        for table in (self.ips, self.subnets, self.logins):
            table.prune()
        self._last_tick = now
        return point

    def tops(self) -> dict[str, list[dict[str, Any]]]:
        return {"ips": self.ips.top(), "subnets": self.subnets.top(), "logins": self.logins.top()}

    def totals(self) -> dict[str, Any]:
        """Cumulative counts since start, per protocol."""
        out: dict[str, dict[str, int]] = {}
        for (protocol, action), n in self.decisions.items():
            out.setdefault(str(protocol), {})[VERDICTS[action]] = n
        for (protocol, success), n in self.reports.items():
            out.setdefault(str(protocol), {})["success" if success else "failure"] = n
        return out

    def postures(self) -> dict[str, str]:
        e = self.engine
        return {p.value: e.posture_of(p) for p in Protocol if p is not Protocol.OTHER}


def _action(kind: str, now: float, data: dict[str, Any]) -> dict[str, Any]:
    """The display form of an operator-visible change (list, posture, reset)."""
    out: dict[str, Any] = {"t": round(now, 3), "kind": kind, "by": str(data.get("by", ""))}
    if kind in ("list_add", "list_del"):
        entry = data["entry"]
        out.update(list=data["list"], value=entry.value, reason=entry.reason)
    elif kind == "posture":
        out.update(
            protocol=data.get("protocol"),
            level=data.get("to"),
            before=data.get("from"),
            reason=data.get("reason", ""),
        )
    else:
        out.update(login=data.get("login", ""), ip=data.get("ip", ""))
    return out
