"""The engine façade: `decide(attempt)` → Verdict and `report(attempt, outcome)` → learning.

Everything here is pure CPU on in-memory state. Durable effects (list changes, familiarity) and
the journal leave through `listeners`, which queue them for background writers; the engine never
waits on disk or network.
"""

from __future__ import annotations

import math
import re
import time
import tomllib
from collections import OrderedDict
from collections.abc import Callable
from importlib import resources
from typing import Any

from rempart.config import Settings
from rempart.engine.asn import load_configured
from rempart.engine.campaign import CampaignDetector
from rempart.engine.distinct import Sketch, item_hash
from rempart.engine.familiarity import Familiarity
from rempart.engine.keys import device_key, net_keys
from rempart.engine.lists import AccessList, ListEntry, normalise
from rempart.engine.oracle import LeakOracle, NoLeaks
from rempart.engine.policy import Rule, compile_rules, compile_ruleset
from rempart.engine.signals import Signals
from rempart.engine.windows import (
    FAILURES,
    KINDS,
    REJECTS,
    REPORTS,
    UNFAMILIAR,
    UNKNOWN,
    Ring,
)
from rempart.model import ALLOW, LEGACY_MAIL, Action, Attempt, Outcome, Protocol, Reason, Verdict

Listener = Callable[[str, float, dict[str, Any]], None]
ASN = 6  # the key family of the announcing autonomous system (see policy.FAMILIES)

ALLOWLISTED = Reason("allowlisted", "")
BLOCKED_MESSAGE = "Too many failed sign-ins. Try again later."
POSTURES = ("normal", "guarded", "strict", "closed")


def default_rule_tables() -> list[dict[str, Any]]:
    text = resources.files("rempart.engine").joinpath("default_policy.toml").read_text("utf-8")
    return tomllib.loads(text)["rules"]


class KeyState:
    """What is tracked for one key: window counters and, for some families, a distinct sketch."""

    __slots__ = ("established", "peers", "ring", "users")

    def __init__(
        self,
        ring: Ring,
        peers: Sketch | None,
        established: Sketch | None,
        users: Sketch | None,
    ) -> None:
        self.ring = ring
        self.peers = peers  # failing logins (ip/subnet/wide) or failing IPs (login)
        self.established = established  # established users (ip/subnet)
        self.users = users  # any successful users (ip/subnet)


class Engine:
    """Decides on attempts and learns from outcomes."""

    def __init__(self, settings: Settings, leaks: LeakOracle | None = None) -> None:
        self.settings = settings
        e = settings.engine
        self.width, self.size = e.bucket_seconds, e.buckets
        self.dwidth, self.dsize = e.distinct_bucket_seconds, e.distinct_buckets
        self.swidth, self.ssize = e.shared_bucket_seconds, e.shared_buckets
        self.max_keys = e.max_tracked_keys
        tables = (default_rule_tables() if settings.include_default_rules else []) + list(
            settings.rules
        )
        self.rules: list[Rule] = compile_rules(tables, e)
        self.matching_rules = compile_ruleset(self.rules, e)
        self._code_strength = {r.code: r.action for r in self.rules}
        # Per-device counters cost memory for every client; keep them only if a rule reads them.
        self.track_devices = any(re.search(r"\(\s*device\s*,", rule.when) for rule in self.rules)
        f = settings.familiarity
        self.familiarity = Familiarity(f.ttl_days * 86400.0, f.max_networks, f.max_devices)
        self.blocklist = AccessList()
        self.allowlist = AccessList()
        self.leaks: LeakOracle = leaks or NoLeaks()
        # Optional operator-provided IP-to-ASN table: adds the `asn` key family.
        self.asn_table = load_configured(settings.asn)
        self.states: OrderedDict[str, KeyState] = OrderedDict()
        self.postures: dict[Protocol, str] = {}
        self.listeners: list[Listener] = []
        self._key_cache: dict[tuple[str, str, str, str], tuple[Any, str, tuple[str, ...]]] = {}
        self.logins = settings.logins
        # Plain counters read by the metrics collector.
        self.decisions = [0, 0, 0, 0]  # by Action
        self.reports = [0, 0]  # failures, successes
        self.reason_counts: dict[str, int] = {}
        self.evictions = 0
        self.campaign_settings = settings.campaign
        self.campaign = (
            CampaignDetector(self.campaign_settings) if self.campaign_settings.enabled else None
        )

    @classmethod
    def in_memory(cls, settings: Settings | None = None, leaks: LeakOracle | None = None) -> Engine:
        """An engine with no persistence at all (simulator, tests)."""
        return cls(settings or Settings.default(), leaks)

    # --- helpers -----------------------------------------------------------------------------
    def _emit(self, kind: str, now: float, data: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener(kind, now, data)

    def posture_of(self, protocol: Protocol) -> str:
        return self.postures.get(protocol, "normal")

    def _keys(self, attempt: Attempt) -> tuple[Any, str, tuple[str, ...]]:
        # Dovecot asks `allow` twice and then reports the same attempt: a small cache of the
        # latest attempts' keys turns three derivations into one.
        cache_key = (attempt.ip, attempt.login, attempt.device_id, attempt.user_agent)
        found = self._key_cache.get(cache_key)
        if found is not None:
            return found
        if len(self._key_cache) >= 4096:
            self._key_cache.clear()
        found = self._key_cache[cache_key] = self._derive_keys(attempt)
        return found

    def _derive_keys(self, attempt: Attempt) -> tuple[Any, str, tuple[str, ...]]:
        net = net_keys(attempt.ip)
        device = device_key(attempt.device_id, attempt.user_agent)
        login = attempt.login
        keys = (
            "i" + net.ip,
            "n" + net.subnet,
            # The IPv4 /16 is too coarse to judge; the IPv6 /48 is what rotation hides in.
            ("w" + net.wide) if net.v6 else "",
            "l" + login,
            "p" + net.ip + "|" + login,
            ("d" + device) if device and self.track_devices else "",
            self._asn_key(net.packed),
        )
        return net, device, keys

    def _asn_key(self, packed: bytes) -> str:
        if self.asn_table is None:
            return ""
        asn = self.asn_table.lookup(packed)
        return f"a{asn}" if asn else ""

    # --- decide --------------------------------------------------------------------------------
    def decide(self, attempt: Attempt, now: float | None = None) -> Verdict:
        """The verdict for an attempt, before the password is checked. Never blocks."""
        if now is None:
            now = time.time()
        net, device, keys = self._keys(attempt)
        login = attempt.login
        attrs = attempt.attrs
        ja3 = attrs.get("ja3", "") if attrs else ""
        if type(ja3) is not str:
            ja3 = ""
        raw = attempt.raw_login
        raw = raw if raw and raw != login else ""
        allowlist, blocklist = self.allowlist, self.blocklist
        if allowlist.match(net.ip, net.packed, login, now, ja3) is not None or (
            raw and allowlist.match_login_as_given(net.ip, raw, now) is not None
        ):
            verdict = Verdict(Action.ALLOW, 0.0, (ALLOWLISTED,))
        else:
            blocked = blocklist.match(net.ip, net.packed, login, now, ja3)
            if blocked is None and raw:
                blocked = blocklist.match_login_as_given(net.ip, raw, now)
            if blocked is not None:
                # An automatic entry keeps the code of the rule that made it.
                code, _, how = blocked.reason.partition(": ")
                code = code if how == "automatic" else "blocklisted"
                verdict = Verdict(Action.DENY, 0.0, (Reason(code, BLOCKED_MESSAGE),))
            else:
                verdict = self._evaluate(Signals(self, attempt, net, device, keys, now), now)
        self.decisions[verdict.action] += 1
        for reason in verdict.reasons:
            self.reason_counts[reason.code] = self.reason_counts.get(reason.code, 0) + 1
        if self.listeners:
            self._emit("decision", now, {"attempt": attempt, "verdict": verdict})
        return verdict

    def _evaluate(self, signals: Signals, now: float) -> Verdict:
        matched = self.matching_rules(signals)
        if not matched:
            return ALLOW
        strongest = Action.ALLOW
        delay = 0.0
        reasons: list[Reason] = []
        blocks: list[Rule] = []
        for index in matched:
            rule = self.rules[index]
            if rule.action > strongest:
                strongest = rule.action
            if rule.action is Action.DELAY and rule.delay > delay:
                delay = rule.delay
            reasons.append(Reason(rule.code, rule.message))
            if rule.block is not None:
                blocks.append(rule)
        if strongest is not Action.DELAY:
            delay = 0.0
        # Strongest reasons first, without repeating a code.
        by_code: dict[str, Reason] = {}
        order = self._code_strength
        for reason in sorted(reasons, key=lambda r: -order.get(r.code, 0)):
            by_code.setdefault(reason.code, reason)
        for rule in blocks:
            self._auto_block(rule, signals, now)
        return Verdict(strongest, delay, tuple(by_code.values()))

    def _auto_block(self, rule: Rule, signals: Signals, now: float) -> None:
        assert rule.block is not None
        scope, net, login = rule.block.scope, signals.net, signals.attempt.login
        if scope == "ip":
            kind, value = "ip", net.ip
        elif scope == "subnet":
            kind = "netmask"
            value = normalise("netmask", f"{net.ip}/{64 if net.v6 else 24}")
        elif scope == "ip_login":
            kind, value = "ip_login", f"{net.ip}|{login}"
        else:
            kind, value = "login", login
        entry = ListEntry(kind, value, now + rule.block.ttl, f"{rule.code}: automatic", now)
        self.blocklist.put(entry)
        self._emit("list_add", now, {"list": "block", "entry": entry, "by": "policy:" + rule.name})

    # --- report --------------------------------------------------------------------------------
    def _state(self, key: str, family: int) -> KeyState:
        state = self.states.get(key)
        if state is None:
            # ip+login is the most numerous key and rules only read its failures. Sketches are
            # made on first use: most sources only ever fail, or only ever succeed.
            ring = Ring(self.size, 1) if family == 4 else Ring(self.size, KINDS)
            state = self.states[key] = KeyState(ring, None, None, None)
            if len(self.states) > self.max_keys:
                self.states.popitem(last=False)
                self.evictions += 1
        else:
            self.states.move_to_end(key)
        return state

    def report(self, attempt: Attempt, outcome: Outcome, now: float | None = None) -> None:
        """Learn from the outcome of an attempt (counted here, never on `decide`)."""
        if now is None:
            now = time.time()
        net, device, keys = self._keys(attempt)
        bucket = int(now // self.width)
        dbucket = int(now // self.dwidth)
        failed = not outcome.success and not outcome.policy_reject
        size = self.size
        login_hash = item_hash(attempt.login)
        ip_hash = item_hash(net.ip)
        established = False
        familiarity = self.familiarity
        if outcome.success:
            established = familiarity.familiar(attempt.login, "n" + net.subnet, now)
            for marker in ("n" + net.subnet, ("d" + device) if device else ""):
                if marker and familiarity.learn(attempt.login, marker, now):
                    self._emit("familiar", now, {"login": attempt.login, "marker": marker})
            familiar = True
        else:
            familiar = familiarity.familiar(attempt.login, "n" + net.subnet, now) or bool(
                device
                and attempt.protocol not in LEGACY_MAIL
                and familiarity.familiar(attempt.login, "d" + device, now)
            )
        sbucket = int(now // self.swidth)
        for family, key in enumerate(keys):
            if not key:
                continue
            state = self._state(key, family)
            ring = state.ring
            if family == 4:
                if failed:
                    ring.add(0, bucket, size, 1)
                continue
            if failed:
                ring.bump(bucket, size, KINDS, REPORTS, FAILURES)
                if outcome.unknown_login:
                    ring.add(UNKNOWN, bucket, size, KINDS)
                if not familiar:
                    ring.add(UNFAMILIAR, bucket, size, KINDS)
                if family <= 3 or family == ASN:
                    peers = state.peers
                    if peers is None:
                        peers = state.peers = Sketch(self.dsize)
                    peers.add(ip_hash if family == 3 else login_hash, dbucket, self.dsize)
            else:
                ring.bump(bucket, size, KINDS, REPORTS, REJECTS if outcome.policy_reject else -1)
            if outcome.success and family <= 1:
                users = state.users
                if users is None:
                    users = state.users = Sketch(self.ssize)
                users.add(login_hash, sbucket, self.ssize)
                if established:
                    sketch = state.established
                    if sketch is None:
                        sketch = state.established = Sketch(self.ssize)
                    sketch.add(login_hash, sbucket, self.ssize)
        self.reports[1 if outcome.success else 0] += 1
        if self.campaign is not None:
            changes = self.campaign.observe(
                attempt.protocol.value,
                now,
                not outcome.success,
                outcome.unknown_login,
                familiar,
                self.leaks.leaked_pair(attempt),
                net.ip,
                net.subnet,
                keys[ASN],
            )
            if changes:
                self._apply_detector(changes, now)
        if self.listeners:
            self._emit("report", now, {"attempt": attempt, "outcome": outcome})

    # --- operator actions ----------------------------------------------------------------------
    def reset(self, login: str = "", ip: str = "", now: float | None = None) -> int:
        """Forget the counters of a login, an IP, or both (wforce `reset`). Returns keys cleared."""
        now = time.time() if now is None else now
        cleared = 0
        targets: list[str] = []
        if ip:
            net = net_keys(ip)
            targets.append("i" + net.ip)
            if login:
                targets.append("p" + net.ip + "|" + login)
        if login:
            targets.append("l" + login)
            if not ip:
                suffix = "|" + login
                targets += [k for k in self.states if k[0] == "p" and k.endswith(suffix)]
        for key in targets:
            if self.states.pop(key, None) is not None:
                cleared += 1
        self._emit("reset", now, {"login": login, "ip": ip, "cleared": cleared})
        return cleared

    def key_counts(self, login: str = "", ip: str = "", now: float | None = None) -> dict[str, int]:
        """Window counts over the whole ring for the key of a login, an IP or their pair (the
        wforce `getDBStats` view); empty when the key is not tracked."""
        now = time.time() if now is None else now
        if ip and login:
            key = "p" + net_keys(ip).ip + "|" + login
        else:
            key = ("i" + net_keys(ip).ip) if ip else "l" + login
        state = self.states.get(key)
        if state is None:
            return {}
        bucket, size, ring = int(now // self.width), self.size, state.ring
        if key[0] == "p":
            return {"failures": ring.total(0, size, bucket, size, 1)}
        names = {
            REPORTS: "reports",
            FAILURES: "failures",
            UNKNOWN: "unknown_login",
            REJECTS: "policy_rejects",
            UNFAMILIAR: "unfamiliar_failures",
        }
        return {name: ring.total(kind, size, bucket, size, KINDS) for kind, name in names.items()}

    def lift_blocks(
        self,
        login: str = "",
        ip: str = "",
        ja3: str = "",
        by: str = "reset",
        now: float | None = None,
    ) -> list[ListEntry]:
        """Remove the block-list entries naming exactly this login, IP, ip+login, JA3 or
        ip+JA3 (automatic and operator alike; wider networks stay): a helpdesk unlock."""
        targets: list[tuple[str, str]] = []
        address = net_keys(ip).ip if ip else ""
        if address:
            targets.append(("ip", address))
            targets.append(("netmask", normalise("netmask", address)))
            if login:
                targets.append(("ip_login", f"{address}|{login}"))
            if ja3:
                targets.append(("ip_ja3", f"{address}|{ja3}"))
        if login:
            targets.append(("login", login))
            if not address:
                suffix = "|" + login
                targets += [
                    ("ip_login", v) for v in list(self.blocklist.by_pair) if v.endswith(suffix)
                ]
        if ja3 and not address:
            targets.append(("ja3", ja3))
        lifted: list[ListEntry] = []
        for kind, value in targets:
            found = self.remove_entry("block", kind, value, by=by, now=now)
            if found is not None:
                lifted.append(found)
        return lifted

    def add_entry(self, which: str, entry: ListEntry, by: str = "api") -> None:
        (self.allowlist if which == "allow" else self.blocklist).put(entry)
        self._emit("list_add", entry.created, {"list": which, "entry": entry, "by": by})

    def remove_entry(
        self, which: str, kind: str, value: str, by: str = "api", now: float | None = None
    ) -> ListEntry | None:
        now = time.time() if now is None else now
        found = (self.allowlist if which == "allow" else self.blocklist).remove(kind, value)
        if found is not None:
            self._emit("list_del", now, {"list": which, "entry": found, "by": by})
        return found

    def _apply_detector(self, changes: list[tuple[str, str, str]], now: float) -> None:
        assert self.campaign is not None
        for protocol_name, before, after in changes:
            protocol = Protocol.parse(protocol_name)
            figures = dict(self.campaign.state(protocol_name).figures)
            if after == "normal":
                self.postures.pop(protocol, None)
            else:
                self.postures[protocol] = after
            rising = POSTURES.index(after) > POSTURES.index(before)
            self._emit(
                "posture",
                now,
                {
                    "protocol": protocol_name,
                    "from": before,
                    "to": after,
                    "by": "detector",
                    "reason": "campaign detected" if rising else "calm period elapsed",
                    "ttl": 0,
                    "figures": figures,
                },
            )

    def tick(self, now: float | None = None) -> None:
        """Let the campaign detector close elapsed ticks (a timer calls this every second)."""
        if self.campaign is not None:
            now = time.time() if now is None else now
            changes = self.campaign.tick(now)
            if changes:
                self._apply_detector(changes, now)

    def set_posture(
        self,
        protocol: Protocol,
        level: str,
        by: str,
        reason: str,
        now: float | None = None,
        ttl: float = 0.0,
    ) -> None:
        """An operator's posture: it holds for `ttl` seconds (0: until changed), then the
        detector takes over again. Journaled with who, why and the detector's figures."""
        if level not in POSTURES:
            raise ValueError(f"unknown posture {level!r} (one of {', '.join(POSTURES)})")
        if ttl < 0:
            raise ValueError("a posture's ttl must not be negative")
        now = time.time() if now is None else now
        before = self.posture_of(protocol)
        figures: dict[str, Any] = {}
        if self.campaign is not None:
            self.campaign.set_manual(protocol.value, level, now + ttl if ttl else math.inf)
            figures = dict(self.campaign.state(protocol.value).figures)
        if level == "normal":
            self.postures.pop(protocol, None)
        else:
            self.postures[protocol] = level
        self._emit(
            "posture",
            now,
            {
                "protocol": protocol.value,
                "from": before,
                "to": level,
                "by": by,
                "reason": reason,
                "ttl": ttl,
                "figures": figures,
            },
        )

    def explain(self, attempt: Attempt, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        net, device, keys = self._keys(attempt)
        signals = Signals(self, attempt, net, device, keys, now)
        asn = keys[ASN][1:]
        return {
            "signals": signals.explain(),
            "asn": self.asn_table.describe(int(asn)) if asn and self.asn_table else "",
            "rules": [self.rules[i].name for i in self.matching_rules(signals)],
        }
