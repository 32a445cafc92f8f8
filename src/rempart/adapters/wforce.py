"""The wforce-compatible API, so Dovecot (auth_policy) and OX deployments switch without change.

`POST /?command=X` and `POST /command/X` (GET too, for the read-only commands) with HTTP Basic
auth. Facts from DESIGN.md and the captured Dovecot requests: `allow` answers
`{"status": int, "msg": str, "r_attrs": {}}` (status < 0 reject, 0 allow, > 0 delay seconds);
Dovecot sends `allow` twice for a successful login, so attempts are counted on `report` only.

Where wforce 3.0.1 defines a behaviour, this API follows it (list shapes and times, mandatory
`expire_secs`, deleting an absent entry, `reset` lifting block entries, JA3 entries, `getDBStats`,
`readyz`/`syncDone`, a body that is not UTF-8); the deliberate differences are listed in the
README's compatibility section.
"""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Awaitable, Callable
from typing import Any

from rempart.adapters.context import WforceContext
from rempart.adapters.fields import exclusive, flag, ip_field, login_field, text
from rempart.adapters.listfile import RecordError, parse_time, record_from_dict
from rempart.adapters.wforce_body import attempt_from as body_attempt
from rempart.adapters.wforce_body import json_body as body_json
from rempart.adapters.wforce_body import outcome_from
from rempart.engine.engine import BLOCKED_MESSAGE
from rempart.engine.keys import KeyError_, net_keys
from rempart.engine.lists import ListEntry, normalise
from rempart.httpserver import Auth, HTTPError, Request, Response, Router, json_response
from rempart.model import Action, Attempt, ListName
from rempart.ops.guards import check_wide_entry, is_confirmed

_OK = b'{"status":"ok"}'
_ALLOWED = b'{"status":0,"msg":"","r_attrs":{}}'
# The answers of most decisions and reports, built once (responses are never changed once made).
_OK_RESPONSE = Response(200, _OK)
_ALLOWED_RESPONSE = Response(200, _ALLOWED)
# wforce keeps an entry at most this long (expire_secs is an unsigned 32-bit count there); longer
# is a typo, refused rather than kept for a century.
MAX_EXPIRE_SECS = 10 * 365 * 86400
MAX_BATCH = 10_000  # records per /v1/lists/batch request (the body limit usually binds first)
# wforce's names for each kind of entry in getBL/getWL and getDBStats.
_WFORCE_KIND = {"ip": "ip", "netmask": "ip", "login": "login", "ip_login": "iplogin"}
_WFORCE_KIND |= {"ja3": "ja3", "ip_ja3": "ipja3"}
_DB_KEY = {"ip": "ip", "login": "login", "ip_login": "ip_login", "ja3": "ja3", "ip_ja3": "ip_ja3"}
_READ_ONLY = frozenset(("ping", "stats", "getBL", "getWL", "readyz", "syncDone"))


def json_body(request: Request) -> dict[str, Any]:
    """The JSON object of a request (`wforce_body.json_body`)."""
    return body_json(request.body)


def wforce_time(ts: float) -> str:
    """A UTC time as wforce prints it (boost `to_simple_string`): 2026-Dec-01 09:33:38."""
    if not ts:
        return "+infinity"
    t = time.gmtime(ts)
    return f"{t.tm_year}-{_MONTHS[t.tm_mon - 1]}-{t.tm_mday:02d} {time.strftime('%H:%M:%S', t)}"


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def failure(status: int, reason: str, headers: dict[str, str] | None = None) -> Response:
    """wforce's error body, {"status":"failure","reason":...}, with Rempart's `error` beside."""
    return json_response({"status": "failure", "reason": reason, "error": reason}, status, headers)


def failure_of(error: HTTPError) -> Response:
    """`failure` for an HTTPError: the wforce routes' errors, a refused password included."""
    return failure(error.status, error.reason, error.headers)


async def _wforce_errors(pending: Awaitable[Response]) -> Response:
    try:
        return await pending
    except HTTPError as exc:
        return failure(exc.status, exc.reason, exc.headers)


def _listed_attrs(entry: ListEntry, which: str) -> dict[str, str]:
    """What wforce puts in r_attrs for a list hit: expiration, reason, key type and
    `blacklisted`/`whitelisted` "1"."""
    return {
        "expiration": wforce_time(entry.expires),
        "reason": entry.reason,
        "whitelisted" if which == "allow" else "blacklisted": "1",
        "key": _WFORCE_KIND[entry.kind],
    }


def wforce_key(entry: ListEntry) -> str:
    """An entry's key as wforce prints it: 10.1.1.1/32, a login, 10.3.3.3:login, a JA3."""
    if entry.kind == "ip":
        return normalise("netmask", entry.value)
    if entry.kind in ("ip_login", "ip_ja3"):
        ip, _, rest = entry.value.partition("|")
        return f"{ip}:{rest}"
    return entry.value


def attempt_from(data: dict[str, Any], context: WforceContext) -> Attempt:
    """The Attempt of a wforce body; a 400 naming the field for anything malformed."""
    return body_attempt(data, context.canonical_login, context.login_rules)


class WforceApi:
    def __init__(self, context: WforceContext) -> None:
        self.context = context
        self.engine = context.engine
        self.counters = context.counters
        self.step_up_status = context.step_up_status
        self.wide_v4, self.wide_v6 = context.confirm_prefixes
        self.ready = True  # no sibling sync to wait for: ready once listening
        self.app_passwords = context.app_passwords
        # Answers by (status, message, reason codes, the list entry hit or None): a flood is denied
        # with the same few reasons, and each answer is then built once (responses are never
        # changed once built: the plain allow and report answers are shared the same way).
        self._answers: dict[tuple[int, str, str, ListEntry | None], Response] = {}
        self.commands: dict[str, Callable[[Request], Response | Awaitable[Response]]] = {
            "allow": self.allow,
            "report": self.report,
            "reset": self.reset,
            "ping": self.ping,
            "stats": self.stats,
            "addBLEntry": lambda r: self.add_entry(r, "block"),
            "delBLEntry": lambda r: self.del_entry(r, "block"),
            "getBL": lambda r: self.get_entries("block"),
            "addWLEntry": lambda r: self.add_entry(r, "allow"),
            "delWLEntry": lambda r: self.del_entry(r, "allow"),
            "getWL": lambda r: self.get_entries("allow"),
            "getDBStats": self.db_stats,
            "syncDone": self.sync_done,
        }
        for name in (*self.commands, "readyz"):
            self.counters.commands.setdefault(name, 0)

    def mount(self, router: Router) -> None:
        for method in ("POST", "GET"):
            router.add(method, "/", self.by_query, auth=Auth.API, errors=failure_of)
            router.add(method, "/command/*", self.by_path, auth=Auth.API, errors=failure_of)
        router.add("POST", "/v1/lists/batch", self.batch, auth=Auth.API)
        # wforce answers readyz without authentication (a load balancer's probe).
        router.add("GET", "/command/readyz", self.readyz, auth=Auth.PUBLIC)

    def by_query(self, request: Request) -> Response | Awaitable[Response]:
        command = request.query.get("command", "")
        if not command:
            raise HTTPError(404, "no command: use /?command=allow|report|reset|...")
        return self.run(command, request)

    def by_path(self, request: Request) -> Response | Awaitable[Response]:
        return self.run(request.params["rest"].strip("/"), request)

    def run(self, command: str, request: Request) -> Response | Awaitable[Response]:
        if command == "readyz":
            return self.readyz(request)
        handler = self.commands.get(command)
        if handler is None:
            raise HTTPError(404, f"unknown command {command[:64]!r}")
        if request.method == "GET" and command not in _READ_ONLY:
            raise HTTPError(405, f"{command} needs POST")
        self.counters.commands[command] += 1
        try:
            result = handler(request)
        except HTTPError as exc:
            return failure(exc.status, exc.reason, exc.headers)
        if isinstance(result, Response):
            return result
        return _wforce_errors(result)

    # --- decisions --------------------------------------------------------------------------
    def allow(self, request: Request) -> Response:
        attempt = attempt_from(json_body(request), self.context)
        if self.app_passwords is not None:
            self.app_passwords.mark(attempt, time.time())
        verdict = self.engine.decide(attempt)
        action = verdict.action
        counts = self.counters.allow_status
        listed = ""
        if action is Action.ALLOW:
            if not verdict.reasons:
                counts["allowed"] += 1
                return _ALLOWED_RESPONSE
            listed = "allow" if verdict.reasons[0].code == "allowlisted" else ""
            counts["whitelisted" if listed else "allowed"] += 1
            status = 0
        elif action is Action.DELAY:
            counts["tarpitted"] += 1
            status = max(1, math.ceil(verdict.delay_s))
        else:
            if verdict.reasons and verdict.reasons[0].message is BLOCKED_MESSAGE:
                listed = "block"
                counts["blacklisted"] += 1
            counts["denied"] += 1
            status = -1 if action is Action.DENY else self.step_up_status
        codes = ",".join(verdict.codes)
        message = verdict.message
        entry = self._listed_entry(attempt, listed) if listed else None
        # The answer depends on the verdict and, for a list hit, on the entry: a flood from a
        # blocked network is answered from here, entry after entry unchanged.
        key = (status, message, codes, entry)  # an entry is a frozen, hashable value
        answer = self._answers.get(key)
        if answer is None:
            r_attrs = {"reasons": codes} if verdict.reasons else {}
            if entry is not None:
                r_attrs.update(_listed_attrs(entry, listed))
            if len(self._answers) >= 1024:
                self._answers.clear()
            answer = self._answers[key] = json_response(
                {"status": status, "msg": message, "r_attrs": r_attrs}
            )
        return answer

    def _listed_entry(self, attempt: Attempt, which: str) -> ListEntry | None:
        """The allow or block list entry the attempt hit (looked up again: the engine's
        verdict names only its code)."""
        lst = self.engine.allowlist if which == "allow" else self.engine.blocklist
        net = net_keys(attempt.ip)
        ja3 = attempt.attrs.get("ja3", "") if attempt.attrs else ""
        entry = lst.match(
            net.ip, net.packed, attempt.login, time.time(), ja3 if type(ja3) is str else ""
        )
        if entry is None and attempt.raw_login:
            entry = lst.match_login_as_given(net.ip, attempt.raw_login, time.time())
        return entry

    def report(self, request: Request) -> Response:
        data = json_body(request)
        attempt = attempt_from(data, self.context)
        outcome = outcome_from(data)
        if self.app_passwords is not None:
            now = time.time()
            used = self.app_passwords.mark(attempt, now)
            if used and outcome.success:
                self.app_passwords.record_use(used, attempt.ip, now)
        self.engine.report(attempt, outcome)
        return _OK_RESPONSE

    async def reset(self, request: Request) -> Response:
        """Forget the counters of a login, an IP or both, and lift the block entries naming
        them (wforce deletes the entry of the key it resets; automatic blocks here may sit on
        the login, the IP or the pair, so all three go)."""
        data = json_body(request)
        ip = ip_field(data, "ip", required=False)
        ja3 = self._ja3(data)
        login, given = self._logins(data)
        if login and ja3:
            return failure(400, "login and ja3 are mutually exclusive parameters")
        if not login and not ip and not ja3:
            return failure(400, "No ip, login or ja3 field supplied")
        if login or ip:
            self.engine.reset(login=login, ip=ip)
        lifted = self.engine.lift_blocks(login=login, ip=ip, ja3=ja3, by="api:reset")
        if given and given != login:
            lifted += self.engine.lift_blocks(login=given, ip=ip, by="api:reset")
        if lifted:
            await self.context.commit()
        return Response(200, _OK)

    def ping(self, request: Request) -> Response:
        return Response(200, _OK if self.ready else b'{"status":"warmup"}')

    def readyz(self, request: Request) -> Response:
        self.counters.commands["readyz"] += 1
        return Response(200 if self.ready else 503, b"")

    def sync_done(self, request: Request) -> Response:
        self.ready = True
        return Response(200, _OK)

    def stats(self, request: Request) -> Response:
        """wforce's `stats` figures at the top level, Rempart's own beside them (its report
        counts under `report_outcomes`, since wforce's `reports` is a number)."""
        own = self.context.stats()
        own["report_outcomes"] = own.pop("reports")
        counts, usage = self.counters, resource.getrusage(resource.RUSAGE_SELF)
        decisions = sum(self.engine.decisions)
        denieds = counts.allow_status["denied"]
        wforce = {
            "reports": sum(self.engine.reports),
            "allows": decisions,
            "denieds": denieds,
            "user-msec": int(usage.ru_utime * 1000),
            "sys-msec": int(usage.ru_stime * 1000),
            "uptime": int(time.time() - counts.started),
            "perfstats": {},
            "commandstats": {
                **counts.commands,
                **{f"allow_{k}": v for k, v in counts.allow_status.items()},
            },
            "customstats": {},
        }
        return json_response({**own, **wforce})

    # --- lists -------------------------------------------------------------------------------
    def _ja3(self, data: dict[str, Any]) -> str:
        value = data.get("ja3")
        if value is None:
            return ""
        if not isinstance(value, str):
            raise HTTPError(400, "field 'ja3' must be a string")
        try:
            return normalise("ja3", value)
        except KeyError_ as exc:
            raise HTTPError(400, f"field 'ja3': {exc}") from None

    def _logins(self, data: dict[str, Any]) -> tuple[str, str]:
        """(the login as list entries name it, the login as given)."""
        if data.get("login") is None:
            return "", ""
        given = text(data, "login", limit=1024)
        canonical = login_field(data, "login", self.context.login_rules)
        return (given if self.context.exact_list_logins else canonical), given

    def entry_key(self, data: dict[str, Any]) -> tuple[str, str]:
        """(kind, canonical value) of an entry named by ip / netmask / login / ja3, as wforce
        pairs them: ip+login, ip+ja3, login, ja3, then ip or netmask."""
        exclusive(data, "ip", "netmask")
        login, _ = self._logins(data)
        ja3 = self._ja3(data)
        ip = text(data, "ip", limit=128)
        netmask = text(data, "netmask", limit=128)
        if login and ja3:
            raise HTTPError(400, "login and ja3 are mutually exclusive parameters")
        if login and netmask:
            raise HTTPError(400, "fields 'login' and 'netmask' cannot be combined: use 'ip'")
        try:
            if login and ip:
                return "ip_login", normalise("ip_login", ip, login)
            if ja3 and ip:
                return "ip_ja3", normalise("ip_ja3", ip, ja3)
            if login:
                return "login", login
            if ja3:
                return "ja3", ja3
            if netmask or "/" in ip:
                return _network_or_address(netmask or ip)
            if ip:
                return "ip", normalise("ip", ip)
        except KeyError_ as exc:
            raise HTTPError(400, str(exc)) from None
        raise HTTPError(400, "Must provide at least one of login, ip, netmask or ja3")

    async def add_entry(self, request: Request, which: str) -> Response:
        data = json_body(request)
        entry = entry_from(data, self, time.time())
        check_wide_entry(
            entry.kind, entry.value, is_confirmed(data.get("confirm")), self.wide_v4, self.wide_v6
        )
        self.engine.add_entry(which, entry, by="api")
        await self.context.commit()
        return Response(200, _OK)

    async def del_entry(self, request: Request, which: str) -> Response:
        kind, value = self.entry_key(json_body(request))
        # wforce answers ok whether or not the entry was there.
        if self.engine.remove_entry(which, kind, value, by="api") is not None:
            await self.context.commit()
        return Response(200, _OK)

    async def batch(self, request: Request) -> Response:
        """Many getBL-shaped records in one request (`rempart lists import`): every record is
        checked before any is applied, so a batch is all or nothing, and the changes share one
        durable commit. `dry_run` checks only. A 400 names the record by its index."""
        data = request.json()
        if not isinstance(data, dict):
            raise HTTPError(400, "the body must be a JSON object")
        which = data.get("list", "block")
        if which not in ("block", "allow"):
            raise HTTPError(400, "field 'list' must be 'block' or 'allow'")
        records = data.get("entries")
        if not isinstance(records, list) or len(records) > MAX_BATCH:
            raise HTTPError(400, f"field 'entries' must be a list of at most {MAX_BATCH} records")
        confirmed, now = is_confirmed(data.get("confirm")), time.time()
        entries: list[ListEntry] = []
        for index, record in enumerate(records):
            try:
                entry = entry_from_record(record if isinstance(record, dict) else {}, self, now)
                if entry is not None:
                    check_wide_entry(entry.kind, entry.value, confirmed, self.wide_v4, self.wide_v6)
                    entries.append(entry)
            except HTTPError as exc:
                raise HTTPError(400, f"entry {index}: {exc.reason}") from None
        if not flag(data, "dry_run"):
            for entry in entries:
                self.engine.add_entry(which, entry, by="api:import")
            if entries:
                await self.context.commit()
        added = len(entries)
        return json_response({"status": "ok", "added": added, "expired": len(records) - added})

    def get_entries(self, which: str) -> Response:
        return json_response(
            {"wl_entries" if which == "allow" else "bl_entries": entries_view(self.engine, which)}
        )

    def db_stats(self, request: Request) -> Response:
        data = json_body(request)
        ip = ip_field(data, "ip", required=False)
        login, _ = self._logins(data)
        ja3 = self._ja3(data)
        if login and ja3:
            return failure(400, "ja3 and login fields are mutually exclusive")
        if not login and not ip and not ja3:
            return failure(400, "No ja3, ip or login field supplied")
        if login and ip:
            kind, value = "ip_login", f"{ip}|{login}"
        elif ja3 and ip:
            kind, value = "ip_ja3", f"{ip}|{ja3}"
        elif login:
            kind, value = "login", login
        elif ja3:
            kind, value = "ja3", ja3
        else:
            kind, value = "ip", ip
        now = time.time()
        out: dict[str, Any] = {_DB_KEY[kind]: value.replace("|", ":" if kind != "ip_ja3" else "::")}
        for which, prefix in (("allow", "wl"), ("block", "bl")):
            lst = self.engine.allowlist if which == "allow" else self.engine.blocklist
            found = lst.get(kind, value, now)
            if found is None and kind == "ip":
                found = lst.get("netmask", normalise("netmask", ip), now)
            out["whitelisted" if which == "allow" else "blacklisted"] = found is not None
            out[f"{prefix}_reason"] = found.reason if found else ""
            out[f"{prefix}_expire"] = wforce_time(found.expires) if found else ""
        counts = self.engine.key_counts(login=login, ip=ip) if kind in _STAT_KINDS else {}
        out["stats"] = {"rempart": counts} if counts else {}
        return json_response(out)


_STAT_KINDS = frozenset(("ip", "login", "ip_login"))


def _network_or_address(text: str) -> tuple[str, str]:
    """A network entry, or an address entry for a /32 or /128 (wforce keys both the same)."""
    value = normalise("netmask", text)
    address, _, plen = value.partition("/")
    if plen == ("128" if ":" in address else "32"):
        return "ip", normalise("ip", address)
    return "netmask", value


def split_ip_prefix(key: str) -> tuple[str, str]:
    """("ip", "rest") of wforce's "ip:rest" key; the longest prefix that is an address wins,
    since an IPv6 address holds colons itself."""
    best = ""
    for i, ch in enumerate(key):
        if ch == ":":
            try:
                net_keys(key[:i])
            except KeyError_:
                continue
            best = key[:i]
    if not best:
        raise HTTPError(400, f"{key[:64]!r} is not 'address:value'")
    rest = key[len(best) + 1 :]
    if rest.startswith(":"):  # an ipja3 key as getDBStats prints it ("ip::ja3")
        rest = rest[1:]
    return best, rest


def entry_from_record(data: dict[str, Any], api: WforceApi, now: float) -> ListEntry | None:
    """The entry of a getBL-shaped record (import); None when it has already expired."""
    try:
        record = record_from_dict(data)
    except RecordError as exc:
        raise HTTPError(400, str(exc)) from None
    body: dict[str, Any] = {}
    if record.type in ("iplogin", "ipja3"):
        ip, rest = split_ip_prefix(record.key)
        body = {"ip": ip, "login" if record.type == "iplogin" else "ja3": rest}
    else:
        body = {record.type: record.key}
    kind, value = api.entry_key(body)
    if record.expire_secs is not None:
        expires = now + record.expire_secs
    else:
        expires = parse_time(record.expiration)
    if expires and expires <= now:
        return None
    return ListEntry(kind, value, expires, record.reason[:512], now)


def expire_secs(data: dict[str, Any]) -> float:
    """wforce's mandatory `expire_secs`: 0 expires at once; negative or absurd is refused."""
    value = data.get("expire_secs")
    if value is None:
        raise HTTPError(400, "Missing mandatory expire_secs field")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise HTTPError(400, "field 'expire_secs' must be a number of seconds")
    if value < 0 or value > MAX_EXPIRE_SECS or value != value:
        raise HTTPError(400, f"field 'expire_secs' must be between 0 and {MAX_EXPIRE_SECS}")
    return float(value)


def entry_from(data: dict[str, Any], api: WforceApi, now: float) -> ListEntry:
    """The list entry an addBLEntry/addWLEntry body (or an import line) asks for."""
    kind, value = api.entry_key(data)
    ttl = expire_secs(data)
    # wforce also refuses a missing `reason`; an empty one harms nobody, so it is accepted.
    reason = text(data, "reason", limit=512)
    # expire_secs 0: wforce keeps the entry until now, so it never matches; so does this one.
    return ListEntry(kind, value, now + ttl if ttl else now, reason, now)


def entries_view(engine: Any, which: str) -> list[dict[str, str]]:
    """getBL / getWL entries in wforce's flat shape: ip, login, iplogin, ja3, ipja3."""
    order = {"ip": 0, "netmask": 0, "login": 1, "ip_login": 2, "ja3": 3, "ip_ja3": 4}
    out: list[dict[str, str]] = []
    for entry in sorted(engine.list_entries(ListName(which)), key=lambda e: order[e.kind]):
        out.append(
            {
                _WFORCE_KIND[entry.kind]: wforce_key(entry),
                "expiration": wforce_time(entry.expires),
                "reason": entry.reason,
            }
        )
    return out
