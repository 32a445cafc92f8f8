"""The engine façade: `decide(attempt)` → Verdict and `report(attempt, outcome)` → learning.

Everything here is pure CPU on in-memory state. Durable effects (list changes, familiarity) and
the journal leave through `listeners`, which queue them for background writers; the engine never
waits on disk or network.
"""

from __future__ import annotations

import re
import time
import tomllib
from array import array
from collections import OrderedDict
from importlib import resources
from typing import Any, Final

from rempart.config import Settings
from rempart.engine.asn import load_configured
from rempart.engine.campaign import CampaignDetector
from rempart.engine.counterstate import CounterState, SketchSlots
from rempart.engine.distinct import EXACT, Sketch, item_hash
from rempart.engine.events import (
    AutoBlocked,
    CountersReset,
    Decided,
    EngineEvent,
    Familiar,
    FetchersLearned,
    ListAdded,
    Listener,
    ListRemoved,
    PostureChanged,
    Reported,
)
from rempart.engine.exposure import Fetchers
from rempart.engine.familiarity import Familiarity, MarkerKind
from rempart.engine.families import SPECS, FamilySpec, KeyFamily
from rempart.engine.keys import device_key, net_keys
from rempart.engine.keytable import KeyIndex, new_key_table
from rempart.engine.lists import AccessList, ListEntry, normalise
from rempart.engine.oracle import LeakOracle, NoLeaks
from rempart.engine.policy import Rule, compile_rules, compile_ruleset
from rempart.engine.posture import (
    PostureRecord,
    PostureSource,
    detector_record,
    operator_record,
)
from rempart.engine.signals import Signals
from rempart.engine.snapshot import EngineSnapshot, PostureView
from rempart.engine.windows import (
    FAILURES,
    KINDS,
    REJECTS,
    REPORTS,
    UNFAMILIAR,
    UNKNOWN,
    RingSlab,
)
from rempart.model import (
    ALLOW,
    LEGACY_MAIL,
    PROTOCOL_NAMES,
    Action,
    Attempt,
    ListName,
    Outcome,
    Posture,
    Protocol,
    Reason,
    Verdict,
)

__all__ = ["ALLOWLISTED", "BLOCKED_MESSAGE", "POSTURES", "Engine", "Listener"]

ALLOWLISTED = Reason("allowlisted", "")
BLOCKED_MESSAGE = "Too many failed sign-ins. Try again later."
ASN: Final = int(KeyFamily.ASN)
POSTURES = tuple(p.value for p in Posture)  # the level names, for forms and CLI choices
# Key prefixes, bound once for the hot path.
_IP: Final = SPECS[0].prefix
_SUBNET: Final = SPECS[1].prefix
_WIDE: Final = SPECS[2].prefix
_LOGIN: Final = SPECS[3].prefix
_PAIR: Final = SPECS[4].prefix
_DEVICE: Final = SPECS[5].prefix
_ASN: Final = SPECS[6].prefix
# Familiarity marker prefixes (see familiarity.network_marker / device_marker).
_NETWORK: Final = MarkerKind.NETWORK.value
_DEVICE_MARK: Final = MarkerKind.DEVICE.value


def default_rule_tables() -> list[dict[str, Any]]:
    text = resources.files("rempart.engine").joinpath("default_policy.toml").read_text("utf-8")
    rules: list[dict[str, Any]] = tomllib.loads(text)["rules"]
    return rules


class Engine:
    """Decides on attempts and learns from outcomes; the only writer of its state."""

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
        self._combined: dict[tuple[int, ...], tuple[Verdict, tuple[Rule, ...]]] = {}
        self._blocked: dict[str, Verdict] = {}  # the answer to a listed source, by its code
        # Per-device counters cost memory for every client; keep them only if a rule reads them.
        self.track_devices = any(re.search(r"\(\s*device\s*,", rule.when) for rule in self.rules)
        f = settings.familiarity
        self.familiarity = Familiarity(f.ttl_days * 86400.0, f.max_networks, f.max_devices)
        self.blocklist = AccessList()
        self.allowlist = AccessList()
        self.leaks: LeakOracle = leaks or NoLeaks()
        self.exposure = settings.exposure
        self.fetchers = Fetchers(self.exposure)
        self._fetchers_saved = 0.0
        # Optional operator-provided IP-to-ASN table: adds the `asn` key family.
        self.asn_table = load_configured(settings.asn)
        # What is tracked per key: key -> its slot in the ring slab of its family's shape
        # (`pair_rings` for the failures-only ip+login family, `rings` for the others), in
        # least-recently-used order (a C table where built: no Python object per key). Distinct sketches, indexed by the slot in `rings` (lists
        # grown with it: an index, not a second hash lookup in a table of every key), only for
        # the keys that need one, made on first use (most sources only fail, or only succeed).
        self.states: KeyIndex = new_key_table()
        self.rings = RingSlab(self.size, KINDS)
        self.pair_rings = RingSlab(self.size, 1)
        self.peer_sketches: list[Sketch | None] = []  # failing logins (sources) or IPs (logins)
        self.user_sketches: list[Sketch | None] = []  # any successful users (ip/subnet)
        self.established_sketches: list[Sketch | None] = []  # established users (ip/subnet)
        # login -> its ip+login state keys (one key, or a set of several), so that resetting a
        # login does not scan every tracked key.
        self._pair_keys: dict[str, str | set[str]] = {}
        # When each list entry was last removed (bounded): a peer's entry made before its removal
        # reaches this node late (Redis streams interleave nodes) and must not come back.
        self._removed: OrderedDict[tuple[ListName, str, str], float] = OrderedDict()
        # The level per protocol that rules read (absent: normal), and the full records.
        self.postures: dict[Protocol, Posture] = {}
        self._posture_records: dict[Protocol, PostureRecord] = {}
        self.listeners: list[Listener] = []
        self._key_cache: dict[tuple[str, str, str, str], tuple[Any, str, tuple[str, ...]]] = {}
        self.logins = settings.logins
        # Plain counters, read through `snapshot()`.
        self.decisions = [0, 0, 0, 0]  # by Action
        self.reports = [0, 0]  # failures, successes (this node's own, not its peers')
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
    def posture_of(self, protocol: Protocol) -> Posture:
        return self.postures.get(protocol, Posture.NORMAL)

    def posture_record(self, protocol: Protocol) -> PostureRecord:
        return self._posture_records.get(protocol) or PostureRecord.initial(protocol)

    def _list(self, which: ListName) -> AccessList:
        return self.allowlist if which is ListName.ALLOW else self.blocklist

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
        """One key per family, in KeyFamily order ("" when the family does not apply)."""
        net = net_keys(attempt.ip)
        device = device_key(attempt.device_id, attempt.user_agent)
        login = attempt.login
        keys = (
            _IP + net.ip,
            _SUBNET + net.subnet,
            # The IPv4 /16 is too coarse to judge; the IPv6 /48 is what rotation hides in.
            (_WIDE + net.wide) if net.v6 else "",
            _LOGIN + login,
            _PAIR + net.ip + "|" + login,
            (_DEVICE + device) if device and self.track_devices else "",
            self._asn_key(net.packed),
        )
        return net, device, keys

    def _asn_key(self, packed: bytes) -> str:
        if self.asn_table is None:
            return ""
        asn = self.asn_table.lookup(packed)
        return f"{_ASN}{asn}" if asn else ""

    # --- decide --------------------------------------------------------------------------------
    def decide(self, attempt: Attempt, now: float | None = None) -> Verdict:
        """The verdict for an attempt, before the password is checked. Never blocks."""
        if now is None:
            now = time.time()
        net, device, keys = self._keys(attempt)
        login = attempt.login
        attrs = attempt.attrs
        sent = attrs.get("ja3", "") if attrs else ""
        ja3 = sent if type(sent) is str else ""  # attrs are any JSON values
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
                listed = self._blocked.get(code)  # the same few codes: made once each
                if listed is None:
                    if len(self._blocked) >= 1024:
                        self._blocked.clear()
                    listed = Verdict(Action.DENY, 0.0, (Reason(code, BLOCKED_MESSAGE),))
                    self._blocked[code] = listed
                verdict = listed
            else:
                verdict = self._evaluate(Signals(self, attempt, net, device, keys, now), now)
        self.decisions[verdict.action] += 1
        counts = self.reason_counts
        for reason in verdict.reasons:
            counts[reason.code] = counts.get(reason.code, 0) + 1
        if self.listeners:
            event = Decided(now, attempt, verdict)
            for listener in self.listeners:
                listener(event)
        return verdict

    def _evaluate(self, signals: Signals, now: float) -> Verdict:
        matched = self.matching_rules(signals)
        if not matched:
            return ALLOW
        # The verdict depends only on which rules matched: combined once per set (a flood is
        # judged by the same few rules, decision after decision). Verdicts are never changed
        # once made (ALLOW is shared the same way); blocks are still placed every time.
        key = tuple(matched)
        found = self._combined.get(key)
        if found is None:
            if len(self._combined) >= 4096:
                self._combined.clear()
            found = self._combined[key] = self._combine(key)
        verdict, blocks = found
        for rule in blocks:
            self._auto_block(rule, signals, now)
        return verdict

    def _combine(self, matched: tuple[int, ...]) -> tuple[Verdict, tuple[Rule, ...]]:
        """The verdict of a set of matching rules, and those of them that place a block."""
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
        return Verdict(strongest, delay, tuple(by_code.values())), tuple(blocks)

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
        self._emit(AutoBlocked(now, ListName.BLOCK, entry, "policy:" + rule.name, rule.name))

    def _emit(self, event: EngineEvent) -> None:
        for listener in self.listeners:
            listener(event)

    # --- report --------------------------------------------------------------------------------
    def _slot(self, key: str, spec: FamilySpec) -> int:
        """The slot of a key's ring (tracked from now on; the least recently used key goes
        when more than `max_tracked_keys` are)."""
        states = self.states
        slot = states.touch(key)
        if slot < 0:
            if spec.failures_only:
                slot = self.pair_rings.alloc()
                self._index_pair(key)
            else:
                slot = self.rings.alloc()
                if slot == len(self.peer_sketches):  # the slab grew
                    self.peer_sketches.append(None)
                    self.user_sketches.append(None)
                    self.established_sketches.append(None)
            states.add(key, slot)
            if len(states) > self.max_keys:
                old, old_slot = states.pop_oldest()
                self.evictions += 1
                self._drop(old, old_slot)
        return slot

    def _drop(self, key: str, slot: int) -> None:
        """Release what an untracked key held (its slot was just removed from `states`)."""
        if key[0] == _PAIR:
            self.pair_rings.release(slot)
            self._unindex_pair(key)
            return
        self.rings.release(slot)
        self.peer_sketches[slot] = None
        self.user_sketches[slot] = None
        self.established_sketches[slot] = None

    def _index_pair(self, key: str) -> None:
        login = key.partition("|")[2]
        found = self._pair_keys.get(login)
        if found is None:
            self._pair_keys[login] = key
        elif isinstance(found, str):
            self._pair_keys[login] = {found, key}
        else:
            found.add(key)

    def _unindex_pair(self, key: str) -> None:
        login = key.partition("|")[2]
        found = self._pair_keys.get(login)
        if found == key or (isinstance(found, set) and found == {key}):
            del self._pair_keys[login]
        elif isinstance(found, set):
            found.discard(key)

    def report(self, attempt: Attempt, outcome: Outcome, now: float | None = None) -> None:
        """Learn from the outcome of an attempt (counted here, never on `decide`)."""
        if now is None:
            now = time.time()
        self._learn(attempt, outcome, now)
        self.reports[1 if outcome.success else 0] += 1
        if self.listeners:
            event = Reported(now, attempt, outcome)
            for listener in self.listeners:
                listener(event)

    def apply_peer_report(self, attempt: Attempt, outcome: Outcome, at: float) -> None:
        """Learn from a report another node received: counted in the windows, familiarity and
        the detector (whose posture changes are this node's own), but not in this node's report
        counters and not emitted (the peer journals and publishes it)."""
        self._learn(attempt, outcome, at, True)

    def _learn(
        self, attempt: Attempt, outcome: Outcome, now: float, from_peer: bool = False
    ) -> None:
        # A peer's attempt is never asked about here: caching its keys would only evict those
        # of this node's own attempts, which Dovecot asks about twice before reporting.
        net, device, keys = self._derive_keys(attempt) if from_peer else self._keys(attempt)
        bucket = int(now // self.width)
        dbucket = int(now // self.dwidth)
        failed = not outcome.success and not outcome.policy_reject
        login_hash = item_hash(attempt.login)
        # Only a failure counts its address in a sketch (a login's failing sources).
        ip_hash = item_hash(net.ip) if failed else 0
        established = False
        familiarity = self.familiarity
        network = _NETWORK + net.subnet
        if outcome.success:
            established = familiarity.familiar(attempt.login, network, now)
            # An exposed account's leaked password opening a mail protocol from a new network
            # teaches nothing: it may be the attacker's, whose network must not become familiar.
            if established or not self._exposed_legacy(attempt):
                for marker in (network, (_DEVICE_MARK + device) if device else ""):
                    if marker and familiarity.learn(attempt.login, marker, now):
                        self._emit(Familiar(now, attempt.login, marker, from_peer))
            familiar = True
        else:
            familiar = familiarity.familiar(attempt.login, network, now) or bool(
                device
                and attempt.protocol not in LEGACY_MAIL
                and familiarity.familiar(attempt.login, _DEVICE_MARK + device, now)
            )
        sbucket = int(now // self.swidth)
        rings = self.rings
        for spec, key in zip(SPECS, keys, strict=False):  # equal lengths (_derive_keys)
            if not key:
                continue
            if spec.failures_only:
                # Only failures are counted there: a success does not make the key tracked
                # (every successful login would otherwise hold an empty ip+login ring).
                if failed:
                    self.pair_rings.add(self._slot(key, spec), 0, bucket)
                continue
            slot = self._slot(key, spec)
            if failed:
                rings.bump(slot, bucket, REPORTS, FAILURES)
                if outcome.unknown_login:
                    rings.add(slot, UNKNOWN, bucket)
                if not familiar:
                    rings.add(slot, UNFAMILIAR, bucket)
                if spec.peers is not None:
                    peers = self.peer_sketches[slot]
                    if peers is None:
                        peers = self.peer_sketches[slot] = Sketch(self.dsize)
                    peers.add(ip_hash if spec.peer_ips else login_hash, dbucket, self.dsize)
            else:
                rings.bump(slot, bucket, REPORTS, REJECTS if outcome.policy_reject else -1)
            if outcome.success and spec.users:
                users = self.user_sketches[slot]
                if users is None:
                    users = self.user_sketches[slot] = Sketch(self.ssize)
                users.add(login_hash, sbucket, self.ssize)
                if established:
                    sketch = self.established_sketches[slot]
                    if sketch is None:
                        sketch = self.established_sketches[slot] = Sketch(self.ssize)
                    sketch.add(login_hash, sbucket, self.ssize)
        interactive = attempt.protocol is Protocol.WEB or attempt.protocol is Protocol.APP
        if self.fetchers.observe(net.ip, login_hash, outcome.success, interactive, now):
            self._save_fetchers(now)
        if self.campaign is not None:
            changes = self.campaign.observe(
                PROTOCOL_NAMES[attempt.protocol],
                now,
                not outcome.success,
                outcome.unknown_login,
                familiar,
                self.leaks.leaked_pair(attempt),
                net.ip,
                net.subnet,
                keys[ASN],
                ip_hash if failed else -1,
            )
            if changes:
                self._apply_detector(changes, now)

    def _exposed_legacy(self, attempt: Attempt) -> bool:
        leaks = self.leaks
        return attempt.protocol in LEGACY_MAIL and (
            leaks.account_restricted(attempt.login) or leaks.leaked_pair(attempt)
        )

    def _save_fetchers(self, now: float) -> None:
        self._fetchers_saved = now
        if self.listeners:
            self._emit(FetchersLearned(now, self.fetchers.snapshot()))

    def save_learned(self, now: float) -> None:
        """Hand what is otherwise saved hourly (the learned fetchers' figures) to the store
        (at stop)."""
        if self.fetchers.many:
            self._save_fetchers(now)

    # --- operator actions ----------------------------------------------------------------------
    def reset(self, login: str = "", ip: str = "", now: float | None = None) -> int:
        """Forget the counters of a login, an IP, or both (wforce `reset`). Returns keys cleared."""
        now = time.time() if now is None else now
        cleared = self._forget(login, ip)
        self._emit(CountersReset(now, login, ip, cleared))
        return cleared

    def apply_peer_reset(self, login: str = "", ip: str = "", at: float | None = None) -> int:
        """Another node's counter reset (not emitted again). A reset lifts the block entries it
        names on every node (wforce `reset`): those this node made are lifted here too."""
        at = time.time() if at is None else at
        blocks = self.blocklist
        for kind, value in self._block_targets(login, ip, ""):
            blocks.remove(kind, value)
            self._tombstone(ListName.BLOCK, kind, value, at)
        return self._forget(login, ip)

    def _forget(self, login: str, ip: str) -> int:
        targets: list[str] = []
        if ip:
            net = net_keys(ip)
            targets.append(_IP + net.ip)
            if login:
                targets.append(_PAIR + net.ip + "|" + login)
        if login:
            targets.append(_LOGIN + login)
            if not ip:
                found = self._pair_keys.get(login)
                if found is not None:
                    targets += [found] if isinstance(found, str) else sorted(found)
        cleared = 0
        for key in targets:
            slot = self.states.pop(key)
            if slot >= 0:
                cleared += 1
                self._drop(key, slot)
        return cleared

    def key_counts(self, login: str = "", ip: str = "", now: float | None = None) -> dict[str, int]:
        """Window counts over the whole ring for the key of a login, an IP or their pair (the
        wforce `getDBStats` view); empty when the key is not tracked."""
        now = time.time() if now is None else now
        if ip and login:
            key = _PAIR + net_keys(ip).ip + "|" + login
        else:
            key = (_IP + net_keys(ip).ip) if ip else _LOGIN + login
        slot = self.states.get(key)
        if slot < 0:
            return {}
        bucket, size = int(now // self.width), self.size
        if KeyFamily.IP_LOGIN.spec.failures_only and key[0] == _PAIR:
            return {"failures": self.pair_rings.total(slot, 0, size, bucket)}
        names = {
            REPORTS: "reports",
            FAILURES: "failures",
            UNKNOWN: "unknown_login",
            REJECTS: "policy_rejects",
            UNFAMILIAR: "unfamiliar_failures",
        }
        return {name: self.rings.total(slot, kind, size, bucket) for kind, name in names.items()}

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
        now = time.time() if now is None else now
        lifted: list[ListEntry] = []
        for kind, value in self._block_targets(login, ip, ja3):
            found = self.remove_entry(ListName.BLOCK, kind, value, by=by, now=now)
            if found is not None:
                lifted.append(found)
            else:  # a peer's entry for it may still be on its way
                self._tombstone(ListName.BLOCK, kind, value, now)
        return lifted

    def _block_targets(self, login: str, ip: str, ja3: str) -> list[tuple[str, str]]:
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
        return targets

    def _tombstone(self, which: ListName, kind: str, value: str, at: float) -> None:
        removed = self._removed
        removed[(which, kind, value)] = max(at, removed.pop((which, kind, value), at))
        if len(removed) > 100_000:
            removed.popitem(last=False)

    def add_entry(self, which: ListName | str, entry: ListEntry, by: str = "api") -> None:
        which = ListName(which)
        self._list(which).put(entry)
        self._removed.pop((which, entry.kind, entry.value), None)
        self._emit(ListAdded(entry.created, which, entry, by))

    def remove_entry(
        self,
        which: ListName | str,
        kind: str,
        value: str,
        by: str = "api",
        now: float | None = None,
    ) -> ListEntry | None:
        now = time.time() if now is None else now
        which = ListName(which)
        found = self._list(which).remove(kind, value)
        if found is not None:
            self._tombstone(which, kind, value, now)
            self._emit(ListRemoved(now, which, found, by))
        return found

    def apply_peer_list_add(self, which: ListName, entry: ListEntry) -> bool:
        """Another node's list entry (not emitted again); False, and nothing changes, when the
        entry was made before this node last removed it (a late copy of a lifted block)."""
        removed = self._removed.get((which, entry.kind, entry.value))
        if removed is not None and entry.created <= removed:
            return False
        self._list(which).put(entry)
        return True

    def apply_peer_list_remove(
        self, which: ListName, kind: str, value: str, at: float | None = None
    ) -> None:
        self._list(which).remove(kind, value)
        self._tombstone(which, kind, value, time.time() if at is None else at)

    def restore_entry(self, which: ListName, entry: ListEntry, now: float) -> None:
        """A list entry kept across a restart (skipped once expired)."""
        if entry.live(now):
            self._list(which).put(entry)

    def restore_familiarity(self, login: str, marker: str, last: float) -> None:
        self.familiarity.restore(login, marker, last)

    # --- posture: one path for the detector, operators, restarts and peers ---------------------
    def _apply_detector(self, changes: list[tuple[str, str, str]], now: float) -> None:
        assert self.campaign is not None
        for protocol_name, before, after in changes:
            level = Posture(after)
            rising = level.rank > Posture(before).rank
            record = detector_record(Protocol.parse(protocol_name), level, now, rising)
            self._set_posture(record, now, emit=True)

    def _set_posture(self, record: PostureRecord, now: float, emit: bool, ttl: float = 0.0) -> None:
        """Install a posture record: the level rules read, the record, and the detector's state
        (held: paused until the hold ends; else it carries on from this level)."""
        protocol = record.protocol
        before = self.posture_of(protocol)
        if record.level is Posture.NORMAL:
            self.postures.pop(protocol, None)
        else:
            self.postures[protocol] = record.level
        self._posture_records[protocol] = record
        figures: dict[str, Any] = {}
        campaign = self.campaign
        if campaign is not None:
            name = protocol.value
            if record.source is PostureSource.OPERATOR:
                # Held: paused until the hold ends. Handed back: the detector starts afresh
                # from this level (it may raise it again or step it down after calm).
                campaign.set_manual(name, record.level.value, record.detector_until())
            else:
                state = campaign.state(name)
                if state.manual_until:  # a peer's detector ended this node's hold
                    campaign.set_manual(name, record.level.value, 0.0)
                elif state.level != record.level:
                    campaign.restore(name, record.level.value)  # kept or sent
            figures = dict(campaign.state(name).figures)
        if emit and self.listeners:
            self._emit(PostureChanged(now, before, record, figures, ttl))

    def set_posture(
        self,
        protocol: Protocol,
        level: Posture | str,
        by: str,
        reason: str,
        now: float | None = None,
        ttl: float = 0.0,
        hold: bool | None = None,
    ) -> PostureRecord:
        """An operator's posture. Held (`hold` True, or by default a raised level or any TTL):
        the detector leaves the protocol alone for `ttl` seconds (0: until changed). Handed back
        (`hold` False, or by default `normal` without a TTL): the detector carries on from this
        level. Journaled with who, why and the detector's figures. ValueError on bad input."""
        posture = Posture.parse(level) if isinstance(level, str) else level
        now = time.time() if now is None else now
        record = operator_record(protocol, posture, by, reason, now, ttl, hold)
        self._set_posture(record, now, emit=True, ttl=ttl)
        return record

    def apply_peer_posture(self, record: PostureRecord, now: float | None = None) -> None:
        """Another node's posture record (not emitted again)."""
        self._set_posture(record, time.time() if now is None else now, emit=False)

    def restore_posture(self, record: PostureRecord, now: float | None = None) -> None:
        """A posture record kept across a restart (a hold whose TTL ran out meanwhile is handed
        back to the detector by the next `tick`, with every listener attached)."""
        self._set_posture(record, time.time() if now is None else now, emit=False)

    def _expire_holds(self, now: float) -> None:
        for record in list(self._posture_records.values()):
            if record.held and record.until is not None and now >= record.until:
                self._set_posture(record.handed_back(now, "hold expired"), now, emit=True)

    def tick(self, now: float | None = None) -> None:
        """Once a second: end expired holds, hand the learned fetchers to the store (hourly), let
        the campaign detector close elapsed ticks."""
        now = time.time() if now is None else now
        if self._posture_records:
            self._expire_holds(now)
        if self.fetchers.many and now - self._fetchers_saved >= 3600.0:
            self._save_fetchers(now)  # hourly, the learned fetchers to the store
        if self.campaign is not None:
            changes = self.campaign.tick(now)
            if changes:
                self._apply_detector(changes, now)

    # --- counter checkpoints -------------------------------------------------------------------
    def counter_shape(self) -> tuple[int, ...]:
        """What counters must have been kept with for this engine to read them."""
        return (
            self.width,
            self.size,
            KINDS,
            self.dwidth,
            self.dsize,
            self.swidth,
            self.ssize,
            EXACT,
        )

    def counter_state(self, now: float) -> CounterState:
        """The tracked keys and their counters (slabs copied as bytes; the sketch lists are
        copied, their sketches are the live ones)."""
        states = self.states
        return CounterState(
            taken_at=now,
            shape=self.counter_shape(),
            keys=states.tracked(),
            slots=states.slots(),
            rings=self.rings.dump(),
            pairs=self.pair_rings.dump(),
            sketches=(
                list(self.peer_sketches),
                list(self.user_sketches),
                list(self.established_sketches),
            ),
        )

    def restore_counters(self, state: CounterState) -> int:
        """Track the keys of a checkpoint with their counters instead of those tracked now (at
        start, before the first attempt); returns how many. ValueError, with nothing changed,
        when the state was kept with other window settings or does not hold together."""
        if tuple(state.shape) != self.counter_shape():
            raise ValueError(
                f"counters kept with other window settings {list(state.shape)} "
                f"(now {list(self.counter_shape())})"
            )
        slots = array("q")
        slots.frombytes(state.slots)
        keys = state.keys
        if len(slots) != len(keys):
            raise ValueError("the tracked keys and their slots do not match")
        states = new_key_table()
        ring_used: set[int] = set()
        pair_used: set[int] = set()
        for key, slot in zip(keys, slots, strict=True):
            if not key:
                raise ValueError("an empty tracked key")
            try:
                states.add(key, slot)
            except ValueError:
                raise ValueError("a tracked key appears twice, or a slot is negative") from None
            used = pair_used if key[0] == _PAIR else ring_used
            if slot in used:
                raise ValueError(f"two tracked keys share slot {slot}")
            used.add(slot)
        rings = RingSlab(self.size, KINDS)
        rings.load(state.rings[0], state.rings[1], ring_used)
        pairs = RingSlab(self.size, 1)
        pairs.load(state.pairs[0], state.pairs[1], pair_used)
        capacity = len(rings.epochs)
        sketches: list[SketchSlots] = []
        for found in state.sketches:
            if len(found) > capacity:
                raise ValueError("distinct sketches beyond the counter slab")
            full: SketchSlots = [None] * capacity
            for slot in ring_used:
                if slot < len(found):
                    full[slot] = found[slot]
            sketches.append(full)
        self.rings, self.pair_rings = rings, pairs
        self.peer_sketches, self.user_sketches, self.established_sketches = sketches
        self.states = states
        self._pair_keys = {}
        for key in keys:
            if key[0] == _PAIR:
                self._index_pair(key)
        while len(self.states) > self.max_keys:  # a smaller `max_tracked_keys` since
            old, old_slot = self.states.pop_oldest()
            self._drop(old, old_slot)
        return len(self.states)

    # --- reading -------------------------------------------------------------------------------
    def snapshot(self) -> EngineSnapshot:
        """Counters, sizes and postures for metrics, stats and the dashboard (a copy)."""
        detector = self.campaign.snapshot() if self.campaign is not None else {}
        postures: dict[Protocol, PostureView] = {}
        for protocol in Protocol:
            if protocol is Protocol.OTHER:
                continue
            info = detector.get(protocol.value, {})
            postures[protocol] = PostureView(
                self.posture_record(protocol),
                float(info.get("score", 0.0)),
                dict(info.get("figures", {})),
            )
        return EngineSnapshot(
            decisions={a: self.decisions[a] for a in Action},
            failures=self.reports[0],
            successes=self.reports[1],
            reasons=dict(self.reason_counts),
            tracked_keys=len(self.states),
            evictions=self.evictions,
            blocklist_entries=len(self.blocklist),
            allowlist_entries=len(self.allowlist),
            accounts_known=len(self.familiarity.accounts),
            postures=postures,
            detector=detector,
        )

    def list_entries(self, which: ListName, now: float | None = None) -> list[ListEntry]:
        """The live entries of a list (a copy)."""
        now = time.time() if now is None else now
        return self._list(which).entries(now)

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
