"""Configuration: one TOML file turned, once, into typed settings with documented defaults.

Every table of the file is a *section*: a frozen dataclass whose fields declare their default
and documentation once (`knob`). A package contributes its sections with `@section("name")`
(or `section("name", parse=...)` where a table needs more than field checks); the registry
parses each table, refuses unknown tables and keys, and raises the one `ConfigError`, which
names the file, the table and the key. `Settings` holds one parsed object per section and no
raw dict: code reads `settings.section(NginxSettings)`, and the core sections also as
attributes (`settings.server`, `settings.campaign`, ...). `rempart config show --reference`
prints `reference()`, rendered from the same declarations.

The sections the engine and the server read live here: the engine depends on its
configuration, never the reverse, so this module imports only the standard library (and
tomli_w to render). The packages above the engine (breach, ops, adapters, shed) declare their
sections beside their code; `_OWNERS` names those modules, imported when settings are first
built, so the registry is complete whatever was imported before.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import ipaddress
import math
import re
import textwrap
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

import tomli_w

T = TypeVar("T")

# Modules above the engine that register sections (imported lazily: they import this module).
_OWNERS = (
    "rempart.adapters.settings",
    "rempart.adapters.postfix.settings",
    "rempart.apppass.settings",
    "rempart.breach.settings",
    "rempart.firewall.settings",
    "rempart.ops.settings",
    "rempart.ops.webhooks",
    "rempart.shed.config",
    "rempart.shed.feed_settings",
)
# Order of the tables in the reference file (`rempart config show --reference`).
_ORDER = [
    "server",
    "auth",
    "logins",
    "engine",
    "familiarity",
    "wforce",
    "nginx",
    "tail",
    "exposure",
    "asn",
    "journal",
    "policy",
    "dovecot",
    "campaign",
    "campaign.webhooks",
    "leaks",
    "app_passwords",
    "ops",
    "status",
    "state",
    "shed",
    "postfix",
    "nftables",
]


class ConfigError(ValueError):
    """The one configuration error: what is wrong, at which key of which table, in which file.

    `key` is the dotted path of the offending setting (`server.port`, `shed.routes[2].path`;
    "" when the message already says where), `file` the configuration file when known.
    """

    def __init__(self, message: str, key: str = "", file: str = "") -> None:
        self.message = message
        self.key = key
        self.file = file
        super().__init__(self._text())

    def _text(self) -> str:
        where = ""
        if self.key:
            # "[server] port: ..." for a key of a plain table, "[state] ..." for the table
            # itself, the dotted path inside arrays and nested tables ("shed.routes[2].path: ...").
            table, dot, name = self.key.rpartition(".")
            if not dot:
                where = f"[{name}] "
            elif "." in table or "[" in self.key:
                where = f"{self.key}: "
            else:
                where = f"[{table}] {name}: "
        return f"{self.file + ': ' if self.file else ''}{where}{self.message}"

    def in_file(self, file: str | Path) -> ConfigError:
        return ConfigError(self.message, self.key, str(file))


# --- declaring sections -----------------------------------------------------------------------
def knob(
    default: Any,
    doc: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    choices: tuple[Any, ...] | None = None,
    key: str | None = None,
    parse: Callable[[Any], Any] | None = None,
    show: Callable[[Any], Any] | None = None,
) -> Any:
    """A setting: its default and documentation, declared once, and its bounds.

    `key` is the TOML key when it differs from the field name; `parse` turns the TOML value into
    the field's value (raising ValueError or TypeError with the reason) for types the generic
    reader does not know; `show` turns the field's value back into TOML for the reference.
    """
    meta = {
        "doc": doc,
        "ge": ge,
        "gt": gt,
        "le": le,
        "choices": choices,
        "key": key,
        "parse": parse,
        "show": show,
    }
    if isinstance(default, dict | list):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True, slots=True)
class Section:
    """A registered table: its dataclass, its parser and how the reference shows it."""

    name: str
    kind: type
    parse: Callable[[dict[str, Any]], Any]
    doc: str = ""
    # Custom reference text (None: rendered from the fields); `shown_by_default` False keeps the
    # table out of `config show` unless the file sets it (tables that are examples, not defaults).
    reference: str | None = None
    shown_by_default: bool = True


_SECTIONS: dict[str, Section] = {}


def section(
    name: str,
    *,
    parse: Callable[[dict[str, Any]], Any] | None = None,
    doc: str = "",
    reference: str | None = None,
    shown_by_default: bool = True,
) -> Callable[[type[T]], type[T]]:
    """Register the dataclass below as the parser of table `name` (`"campaign.webhooks"` for an
    array nested in a table). Without `parse`, `from_table` reads it field by field."""

    def register(kind: type[T]) -> type[T]:
        if name in _SECTIONS and _SECTIONS[name].kind is not kind:
            raise RuntimeError(f"[{name}] is registered twice")
        reader = parse or (lambda table: from_table(kind, table, name))
        _SECTIONS[name] = Section(name, kind, reader, doc, reference, shown_by_default)
        return kind

    return register


def sections() -> list[Section]:
    """Every registered section, in reference order."""
    for module in _OWNERS:
        importlib.import_module(module)
    rank = {name: i for i, name in enumerate(_ORDER)}
    return sorted(_SECTIONS.values(), key=lambda s: (rank.get(s.name, len(rank)), s.name))


def _toml_key(f: dataclasses.Field[Any]) -> str:
    return f.metadata.get("key") or f.name


def _fields(kind: type) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(kind) if f.init and "doc" in f.metadata]


@functools.cache
def _declared(kind: type) -> tuple[dict[str, dataclasses.Field[Any]], dict[str, Any]]:
    """{TOML key: field} and the resolved field types of a section (computed once)."""
    return {_toml_key(f): f for f in _fields(kind)}, get_type_hints(kind)


def from_table(kind: type[T], table: object, name: str) -> T:
    """A section's dataclass from its TOML table: unknown keys refused, each value checked
    against its field's type and bounds, then the class's own `check()` (cross-field rules)."""
    if not isinstance(table, dict):
        raise ConfigError("must be a table", name)
    section: type = kind  # mypy does not see a type[T] as Hashable, which the cache needs
    by_key, hints = _declared(section)
    unknown = sorted(set(table) - set(by_key))
    if unknown:
        raise ConfigError(
            f"unknown key {unknown[0]!r} (known: {', '.join(sorted(by_key))})",
            name,
        )
    values = {
        f.name: _value(table[key], hints[f.name], f.metadata, f"{name}.{key}")
        for key, f in by_key.items()
        if key in table
    }
    made = kind(**values)
    check = getattr(made, "check", None)
    if check is not None:
        check()
    return made


def _value(raw: Any, hint: Any, meta: Mapping[str, Any], key: str) -> Any:
    parse = meta.get("parse")
    if parse is not None:
        try:
            value = parse(raw)
        except ConfigError:
            raise
        except (ValueError, TypeError) as exc:
            raise ConfigError(str(exc), key) from None
    elif hint is bool:
        if not isinstance(raw, bool):
            raise ConfigError(f"expected true or false, got {raw!r}", key)
        value = raw
    elif hint is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ConfigError(f"expected int, got {raw!r}", key)
        value = raw
    elif hint is float:
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            raise ConfigError(f"expected a number, got {raw!r}", key)
        value = float(raw)
    elif hint is str:
        if not isinstance(raw, str):
            raise ConfigError(f"expected str, got {raw!r}", key)
        value = raw
    elif hint == tuple[str, ...]:
        if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
            raise ConfigError(f"expected a list of strings, got {raw!r}", key)
        value = tuple(raw)
    elif hint == dict[str, str]:
        if not isinstance(raw, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
        ):
            raise ConfigError('a table of name = "value": keys and values must be strings', key)
        value = dict(raw)
    else:  # a declaration error, not the operator's
        raise TypeError(f"{key}: no reader for {hint!r}; give the knob a parse=")
    ge, gt, le, choices = meta.get("ge"), meta.get("gt"), meta.get("le"), meta.get("choices")
    if gt is not None and not value > gt:
        raise ConfigError(
            f"must be positive, got {raw!r}" if gt == 0 else f"must be > {gt}, got {raw!r}", key
        )
    if ge is not None and not value >= ge:
        raise ConfigError(f"must be >= {ge}, got {raw!r}", key)
    if le is not None and not value <= le:
        raise ConfigError(f"must be <= {le}, got {raw!r}", key)
    if choices is not None and value not in choices:
        raise ConfigError(f"one of {', '.join(map(repr, choices))}, got {raw!r}", key)
    return value


# --- the core sections -----------------------------------------------------------------------
@section("server")
@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = knob(
        "127.0.0.1",
        "Address and port `rempart serve` listens on (loopback).",
        parse=lambda raw: _host(raw),
    )
    port: int = knob(8084, "", ge=0, le=65535)
    data_dir: str = knob(
        "./rempart-data",
        "Directory holding embedded state: SQLite (lists, familiarity, posture), journal, secrets.",
    )
    max_body_bytes: int = knob(
        65536, "Largest accepted request body, in bytes; larger bodies get 413.", ge=1024
    )
    header_timeout: float = knob(
        10.0,
        "Connection management. A new connection must send its first request's headers (and "
        "body) within header_timeout seconds, and so must every later request once begun; a "
        "keep-alive connection idle between requests is closed after idle_timeout. Checked by "
        "one sweep a second.",
        ge=0.1,
        le=86400,
    )
    idle_timeout: float = knob(60.0, "", ge=0.1, le=86400)
    max_connections: int = knob(
        0,
        "Most open connections (0 = automatic: the descriptor limit, which `rempart serve` raises "
        "to its hard limit at start, less a tenth and at least 128 kept for files). Untrusted "
        "clients get all but trusted_reserve of them (0 = a tenth), so trusted clients still "
        "connect in a flood.",
        ge=0,
    )
    trusted_reserve: int = knob(0, "", ge=0)
    trusted_clients: list[str] = knob(
        ["127.0.0.0/8", "::1"],
        "Clients (addresses or networks) that may use the reserve and have no per-client cap: the "
        "Dovecot / nginx hosts that ask Rempart. Loopback by default, so a Dovecot on this host "
        "keeps working; if a reverse proxy on this host forwards public traffic to Rempart, list "
        'only the Dovecot hosts here instead (e.g. ["10.0.0.5", "10.0.0.6"]).',
        parse=lambda raw: _networks(raw),
    )
    max_connections_per_client: int = knob(
        256, "Most open connections from one untrusted address (IPv6: one /64); 0 = no cap.", ge=0
    )
    decision_workers: int = knob(
        0,
        "Extra processes answering the decision API (wforce allow/report/reset and lists, "
        "/v1/decide, /v1/report, nginx auth_request) on decision_port, for a host with cores to "
        "spare. They share what they learn through Redis, so they need [state] backend = "
        '"redis"; the console, status page, metrics, app-password API, Postfix policy, log '
        "tailing and edge feeds stay on this process and port. Point Dovecot and the web "
        "backends at decision_port. 0: this process alone answers everything on port; -1: one "
        "per CPU core this process may run on, less one for it (at least one).",
        ge=-1,
        le=64,
    )
    decision_port: int = knob(8085, "", ge=0, le=65535)


_HOSTNAME_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def check_host(host: Any, where: str = "[server] host") -> str:
    """An IP address or a DNS name (not resolved here); ConfigError naming `where`."""
    prefix = f"{where}: " if where else ""
    if not isinstance(host, str):
        raise ConfigError(f"{prefix}expected a string, got {host!r}")
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if not host or len(host) > 253 or not all(_HOSTNAME_LABEL.fullmatch(x) for x in labels):
        raise ConfigError(f"{prefix}{host!r} is neither an IP address nor a host name")
    return host


def _host(raw: Any) -> str:
    try:
        return check_host(raw, "")
    except ConfigError as exc:  # the registry names the key of a plain ValueError
        raise ValueError(str(exc)) from None


def _networks(raw: Any) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise ValueError("expected a list of addresses or networks")
    for entry in raw:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network") from None
    return list(raw)


@section("auth")
@dataclass(frozen=True, slots=True)
class AuthSettings:
    api_password_file: str = knob(
        "",
        "The API password (HTTP Basic, any user name) is read from $REMPART_API_PASSWORD, else "
        "from this file, else generated at first start into <data_dir>/api-password (mode 0600) "
        "and printed once.",
    )


def _lower_aliases(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise ValueError("keys and values must be strings")
    return {k.lower(): v.lower() for k, v in raw.items()}


def _lower(raw: Any) -> str:
    if not isinstance(raw, str):
        raise TypeError(f"expected str, got {raw!r}")
    return raw.lower()


@section("logins", doc="Canonicalisation applied to every login (engine and leak corpus alike).")
@dataclass(frozen=True, slots=True)
class LoginRules:
    """How logins are canonicalised; shared by the engine and the leak corpus."""

    lowercase: bool = knob(True, "Lower-case logins.")
    fold_plus_tags: bool = knob(True, 'Fold "user+tag@domain" to "user@domain".')
    default_domain: str = knob(
        "", 'Domain appended to logins given without one ("" keeps them bare).', parse=_lower
    )
    domain_aliases: dict[str, str] = knob(
        {},
        '"alias.example" = "example.org" maps logins of an alias domain onto the main domain.',
        parse=_lower_aliases,
    )


@section("engine")
@dataclass(frozen=True, slots=True)
class EngineSettings:
    bucket_seconds: int = knob(
        300,
        "Sliding-window counters: `buckets` buckets of `bucket_seconds` each (default: one hour "
        "in 5-minute buckets; 16-bit counters that saturate at 65,535). Rule windows are rounded "
        "up to whole buckets.",
        ge=1,
    )
    buckets: int = knob(12, "", ge=1, le=1024)
    distinct_bucket_seconds: int = knob(
        900,
        "Distinct-count sketches (linear counting, 256 bits per bucket, standard error ~5% up "
        "to a few hundred distinct values): one hour in 15-minute buckets for attack "
        "detection...",
        ge=1,
    )
    distinct_buckets: int = knob(4, "", ge=1, le=64)
    shared_bucket_seconds: int = knob(
        28800, "...and a day in 8-hour buckets for the users of shared addresses.", ge=1
    )
    shared_buckets: int = knob(3, "", ge=1, le=64)
    max_tracked_keys: int = knob(
        2_000_000, "Most keys tracked in memory; the least recently used are forgotten.", ge=1
    )
    shared_ip_min_users: int = knob(
        10,
        'A source is "shared" (CGNAT, corporate NAT, a webmail\'s fetcher) when at least this '
        "many distinct accounts logged in successfully from it within the day, each from a "
        "network already familiar to the account; or twice as many successful accounts while at "
        "most one attempt in four fails over the hour. Shared sources are never banned "
        "wholesale.",
        ge=1,
    )
    shared_subnet_min_users: int = knob(20, "", ge=1)


@section("familiarity")
@dataclass(frozen=True, slots=True)
class FamiliaritySettings:
    ttl_days: float = knob(
        90.0,
        "An account's network (IPv4 /24, IPv6 /64) or device is familiar for this long after "
        "its last successful login.",
        ge=0,
    )
    max_networks: int = knob(
        16, "Most networks / devices remembered per account (oldest forgotten first).", ge=1
    )
    max_devices: int = knob(8, "", ge=1)


def _negative(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise TypeError(f"expected int, got {raw!r}")
    if raw >= 0:
        raise ValueError(f"must be negative (a rejection), got {raw!r}")
    return raw


@section("wforce")
@dataclass(frozen=True, slots=True)
class WforceSettings:
    step_up_status: int = knob(
        -1,
        "Status answered for step_up on the wforce API: -1 is what Dovecot rejects on; apps of "
        "your own may prefer -2.",
        parse=_negative,
    )
    exact_list_logins: bool = knob(
        False,
        "List entries, resets and getDBStats on the wforce API name the login exactly as given, "
        "as wforce does (a block of Bob+x@Ex.org then leaves bob@ex.org alone). Off: logins are "
        "canonicalised by [logins] like everywhere else in Rempart.",
    )


@section("asn")
@dataclass(frozen=True, slots=True)
class AsnSettings:
    database: str = knob(
        "",
        "An IP-to-ASN table (iptoasn.com's ip2asn-combined.tsv format, plain or .gz: "
        "range_start, range_end, AS_number, country, description, tab-separated). When set, "
        "every attempt also gets an `asn` key: rules can count failures(asn, '15m') or "
        "failed_logins(asn, '1h') per network operator, and `explain` names the AS. Rempart "
        'ships no ASN data ("" = off).',
    )


@section("journal")
@dataclass(frozen=True, slots=True)
class JournalSettings:
    enabled: bool = knob(
        True,
        "Append-only, hash-chained journal of decisions, reports and changes, under "
        "<data_dir>/journal.",
    )
    segment_bytes: int = knob(
        67_108_864, "Start a new segment file after this many bytes.", ge=4096
    )
    flush_interval: float = knob(
        0.2,
        "Flush the batch at most this often (seconds); decisions never wait on disk.",
        ge=0.001,
    )


def _rule_tables(raw: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
        raise ValueError("[[policy.rules]] must be an array of tables")
    return tuple(raw)


@section("policy")
@dataclass(frozen=True, slots=True)
class PolicySettings:
    include_defaults: bool = knob(
        True,
        "Use the shipped default rules (see `rempart config show --rules`), then the rules "
        "given as [[policy.rules]] (checked when the engine compiles them).",
    )
    rules: tuple[dict[str, Any], ...] = knob((), "", parse=_rule_tables, show=list)


def _fetcher_networks(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise ValueError('a list of networks, e.g. ["192.0.2.0/28"]')
    for text in raw:
        try:
            ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            raise ValueError(f"{text!r} is not an address or network") from None
    return tuple(text.strip() for text in raw)


@section("exposure")
@dataclass(frozen=True, slots=True)
class ExposureSettings:
    """An account whose current password is in an ingested leak (or whose leaked pair is tried)
    on IMAP, POP3 or SMTP: for `grace_days` after Rempart first sees it sign in from one of its
    usual mail clients or a fetcher acting for it, those keep signing in, told to change the
    password; the leaked password from anywhere else is refused at once, and from everywhere
    once the grace period is over. A password change lifts it all. (Signals `exposure_grace`,
    `usual_network`, `known_fetcher`.)"""

    grace_days: float = knob(7.0, "Days a usual client or fetcher keeps the leaked pair.", ge=0)
    usual_max_users: int = knob(
        500,
        "A usual client is on a network the account has succeeded from, behind an address with "
        "fewer than this many established users over the day: a home, an office NAT. A "
        "carrier's CGNAT address, shared by thousands of subscribers (any of them may be the "
        "attacker), is not one.",
        ge=0,
    )
    fetchers: tuple[str, ...] = knob(
        (),
        "Networks of mail fetchers trusted to act for exposed accounts (a webmail aggregator's "
        'addresses), e.g. ["192.0.2.0/28", "2001:db8:1::/64"].',
        parse=_fetcher_networks,
        show=list,
    )
    fetcher_min_accounts: int = knob(
        50,
        "An address is learned as a fetcher once `fetcher_min_accounts` distinct accounts "
        "succeeded from it, its first success is `fetcher_min_days` old and at most "
        "`fetcher_max_failure_share` of its attempts failed or were refused (over its life, and "
        "over the last hour when it is used). A learned fetcher acts only for accounts that "
        "already succeeded from its network.",
        ge=0,
    )
    fetcher_min_days: float = knob(3.0, "", ge=0)
    fetcher_max_failure_share: float = knob(0.1, "", ge=0, le=1)
    fetcher_max_tracked: int = knob(
        100_000,
        "Most addresses followed while learning (the least recently successful are forgotten "
        "first).",
        ge=0,
    )

    @property
    def grace_s(self) -> float:
        return self.grace_days * 86400.0


@section("campaign")
@dataclass(frozen=True, slots=True)
class CampaignSettings:
    """The campaign detector: per protocol, the last minute's failures, unknown logins, failures
    from networks unfamiliar to the account, leaked-pair hits and failing sources, each compared
    with its learned share of attempts; the largest z-score moves the posture."""

    enabled: bool = knob(True, "Run the campaign detector.")
    tick_seconds: float = knob(10.0, "", gt=0)
    window_ticks: int = knob(6, "Ticks in the measured window (6 x 10 s = the last minute).", gt=0)
    half_life_minutes: float = knob(
        60.0,
        "Half-life of the learned baselines; they learn only while the protocol is calm.",
        gt=0,
    )
    warmup_minutes: float = knob(
        10.0,
        "From its first tick the detector judges failures, failing sources, unknown logins and "
        'leaked pairs against conservative priors (see docs/detection.md, "Cold start"); the '
        "figures with no prior (failures from unfamiliar networks, failing ASNs) score once the "
        "baselines have learned this long.",
        gt=0,
    )
    prior_ticks: float = knob(
        60.0,
        "Weight of the priors, in learned ticks: the service's own figures take over as they come.",
        gt=0,
    )
    prior_hold_hours: float = knob(
        12.0,
        "A posture raised on priors alone steps down only when no prior figure exceeds its "
        "prior's mean, for at most this long; then the calm score alone decides.",
        gt=0,
    )
    save_seconds: float = knob(
        60.0,
        "How often `rempart serve` saves the detector's learned state to the store (and at "
        "shutdown).",
        gt=0,
    )
    min_failures_per_minute: float = knob(
        5.0, "Nothing scores below this many failures per minute on the protocol.", gt=0
    )
    prior_events: float = knob(
        0.5,
        "Events of a kind the baseline may have missed in the attempts it learned from "
        "(Jeffreys' 0.5): a figure never seen so far is expected at that rate, not taken as "
        "impossible.",
        gt=0,
    )
    guarded_score: float = knob(6.0, "Score thresholds (z-scores) for each posture.", gt=0)
    strict_score: float = knob(12.0, "", gt=0)
    closed_score: float = knob(40.0, "", gt=0)
    prompt_score: float = knob(
        6.0,
        "One tick at or above prompt_score raises the posture one level at once (at most one "
        "level a tick); a score between a level's threshold and prompt_score must hold "
        "consecutive_ticks ticks (only when prompt_score is set above guarded_score).",
        gt=0,
    )
    consecutive_ticks: int = knob(2, "", gt=0)
    calm_minutes: float = knob(
        15.0, "Below calm_score for calm_minutes, the posture steps down one level.", gt=0
    )
    calm_score: float = knob(3.0, "", gt=0)
    allow_auto_close: bool = knob(
        False,
        "Whether the detector may close a protocol on its own (otherwise only an operator can).",
    )

    def check(self) -> None:
        if not self.guarded_score < self.strict_score < self.closed_score:
            raise ConfigError("scores must rise: guarded < strict < closed", "campaign")


_NAME_CHARS = ":_.-"


@section(
    "state",
    doc='Where durable facts live and whether nodes share what they learn: "sqlite": one node, '
    'lists, familiarity and posture in <data_dir>/state.sqlite3 (embedded); "redis": '
    "scale-out, N nodes share lists, posture, familiarity and counters through Redis and each "
    "keeps deciding from its own memory (a local SQLite mirror included) if Redis goes away.",
)
@dataclass(frozen=True, slots=True)
class StateSettings:
    backend: str = knob("sqlite", "", choices=("sqlite", "redis"))
    redis_url: str = knob(
        "redis://127.0.0.1:6379/0",
        'Redis to use with backend = "redis" (redis://[user:password@]host:port/db, rediss://, '
        "unix://).",
    )
    key_prefix: str = knob(
        "rempart:",
        'Prefix of every Redis key, so several clusters can share one Redis (letters, digits, ":_.-").',
    )
    node_id: str = knob(
        "", 'This node\'s name in the shared streams and in `stats` ("" = hostname:pid).'
    )
    sync_interval: float = knob(
        0.1,
        "How often a node sends its reports and changes to the others, seconds.",
        ge=0.01,
        le=5,
    )
    stream_maxlen: int = knob(
        20000,
        "Entries kept in the shared report stream (each one node's batch of at most 500 "
        "reports); a starting node warms its counters from what is kept.",
        ge=100,
    )
    buffer_records: int = knob(
        100_000,
        "Reports a node keeps for Redis while Redis is unreachable (the oldest dropped beyond).",
        ge=1000,
    )
    checkpoint_seconds: float = knob(
        60.0,
        "How often the embedded node writes its counters (every tracked key's windows and "
        "distinct counts) to <data_dir>/counters.bin; they are also written at a clean stop "
        "and read back at start, so a restart does not give every source a fresh budget. "
        "0: only at stop. (With Redis, a starting node warms its counters from the shared "
        "stream instead.)",
        ge=0,
        le=3600,
    )

    def check(self) -> None:
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            # The URL may carry a password: name only its scheme.
            scheme = self.redis_url.partition(":")[0]
            raise ConfigError(
                f"must start with redis://, rediss:// or unix://, not {scheme!r}", "state.redis_url"
            )
        prefix = self.key_prefix
        if not prefix or not all(c.isalnum() or c in _NAME_CHARS for c in prefix):
            raise ConfigError(
                f"letters, digits and ':_.-' only, got {prefix!r}", "state.key_prefix"
            )
        node = self.node_id
        if len(node) > 64 or not all(c.isalnum() or c in _NAME_CHARS for c in node):
            raise ConfigError(
                f"at most 64 letters, digits and ':_.-', got {node[:80]!r}", "state.node_id"
            )


# --- the settings -----------------------------------------------------------------------------
class Settings:
    """The effective configuration: one parsed, immutable object per section."""

    __slots__ = ("_sections",)

    def __init__(self, parsed: Mapping[type, object]) -> None:
        self._sections: dict[type, object] = dict(parsed)

    @classmethod
    def default(cls) -> Settings:
        return from_mapping({})

    def section(self, kind: type[T]) -> T:
        """The parsed section of dataclass `kind` (e.g. `settings.section(NginxSettings)`)."""
        try:
            value = self._sections[kind]
        except KeyError:
            raise TypeError(f"{kind.__name__} is not a registered configuration section") from None
        assert isinstance(value, kind)
        return value

    @property
    def server(self) -> ServerSettings:
        return self.section(ServerSettings)

    @property
    def auth(self) -> AuthSettings:
        return self.section(AuthSettings)

    @property
    def logins(self) -> LoginRules:
        return self.section(LoginRules)

    @property
    def engine(self) -> EngineSettings:
        return self.section(EngineSettings)

    @property
    def familiarity(self) -> FamiliaritySettings:
        return self.section(FamiliaritySettings)

    @property
    def exposure(self) -> ExposureSettings:
        return self.section(ExposureSettings)

    @property
    def wforce(self) -> WforceSettings:
        return self.section(WforceSettings)

    @property
    def asn(self) -> AsnSettings:
        return self.section(AsnSettings)

    @property
    def journal(self) -> JournalSettings:
        return self.section(JournalSettings)

    @property
    def policy(self) -> PolicySettings:
        return self.section(PolicySettings)

    @property
    def campaign(self) -> CampaignSettings:
        return self.section(CampaignSettings)

    @property
    def state(self) -> StateSettings:
        return self.section(StateSettings)

    # Short names the engine and the server have always read.
    @property
    def api_password_file(self) -> str:
        return self.auth.api_password_file

    @property
    def step_up_status(self) -> int:
        return self.wforce.step_up_status

    @property
    def include_default_rules(self) -> bool:
        return self.policy.include_defaults

    @property
    def rules(self) -> list[dict[str, Any]]:
        return list(self.policy.rules)


def from_mapping(data: Mapping[str, Any]) -> Settings:
    """Typed settings from a parsed TOML document; missing tables and keys take their defaults."""
    registered = {s.name: s for s in sections()}
    for name, table in data.items():
        if name not in registered or "." in name:
            raise ConfigError(f"unknown section [{name}]")
        if not isinstance(table, dict):
            raise ConfigError("must be a table", name)
    parsed: dict[type, object] = {}
    for sec in registered.values():
        parent, dot, child = sec.name.rpartition(".")
        if dot:
            table = data.get(parent, {}).get(child)  # None: not set, the parser's default
        else:
            nested = tuple(s.rpartition(".")[2] for s in registered if s.startswith(sec.name + "."))
            table = {k: v for k, v in data.get(sec.name, {}).items() if k not in nested}
        parsed[sec.kind] = sec.parse(table)
    return Settings(parsed)


def read_file(path: str | Path) -> dict[str, Any]:
    """The parsed TOML document of `path`, or ConfigError naming the file."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not UTF-8 (byte {exc.start}): save it as UTF-8", file=str(path)
        ) from None


def load_settings(path: str | Path | None = None) -> Settings:
    """Load settings from a TOML file (None: defaults only)."""
    if path is None:
        return Settings.default()
    data = read_file(path)
    try:
        return from_mapping(data)
    except ConfigError as exc:
        raise exc.in_file(path) from None


# --- showing the configuration ----------------------------------------------------------------
def _shown(f: dataclasses.Field[Any], value: Any) -> Any:
    show = f.metadata.get("show")
    if show is not None:
        return show(value)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Enum):
        return value.value
    return value


def defaults() -> dict[str, Any]:
    """Every default as a TOML document (tables whose defaults are examples left out)."""
    out: dict[str, Any] = {}
    for sec in sections():
        if not sec.shown_by_default or "." in sec.name:
            continue
        table = out.setdefault(sec.name, {})
        for f in _fields(sec.kind):
            default = f.default_factory() if callable(f.default_factory) else f.default
            table[_toml_key(f)] = _shown(f, default)
    return out


def effective(data: Mapping[str, Any]) -> dict[str, Any]:
    """The operator's document over the defaults, table by table (what `config show` prints)."""
    out = defaults()
    for name, table in data.items():
        out[name] = {**out.get(name, {}), **table}
    return out


def _comment(text: str) -> str:
    return "".join(f"# {line}\n" for line in textwrap.wrap(text, 96)) if text else ""


def _render(sec: Section) -> str:
    scalars, tables = [f"[{sec.name}]\n", _comment(sec.doc or "")], []
    if not sec.doc and sec.kind.__doc__ and not sec.kind.__doc__.startswith(sec.kind.__name__):
        scalars.append(_comment(" ".join(sec.kind.__doc__.split())))
    for f in _fields(sec.kind):
        default = f.default_factory() if callable(f.default_factory) else f.default
        value = _shown(f, default)
        if isinstance(value, dict):
            body = tomli_w.dumps(value) if value else ""
            tables.append(f"\n[{sec.name}.{_toml_key(f)}]\n{_comment(f.metadata['doc'])}{body}")
        else:
            scalars.append(_comment(f.metadata["doc"]) + tomli_w.dumps({_toml_key(f): value}))
    return "".join(scalars) + "".join(tables)


def reference() -> str:
    """The documented defaults file: every table, every key with its default and its meaning."""
    return "\n".join(
        sec.reference if sec.reference is not None else _render(sec) for sec in sections()
    )
