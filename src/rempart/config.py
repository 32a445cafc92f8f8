"""Configuration: one TOML file turned into typed settings, every key with a documented default.

`DEFAULTS_TOML` below is the reference: it is what `rempart config show` prints (merged with the
operator's file), and every key in it carries its documentation as a comment. Tables owned by
other packages (`[leaks]`, `[shed]`, `[sim]`) are passed through in `Settings.raw`.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rempart.engine.keys import LoginRules

DEFAULTS_TOML = """\
[server]
# Address and port `rempart serve` listens on (loopback by default).
host = "127.0.0.1"
port = 8084
# Directory holding embedded state: SQLite (lists, familiarity, posture), journal, secrets.
data_dir = "./rempart-data"
# Largest accepted request body, in bytes; larger bodies get 413.
max_body_bytes = 65536

[auth]
# The API password (HTTP Basic, any user name) is read from $REMPART_API_PASSWORD, else from this
# file, else generated at first start into <data_dir>/api-password (mode 0600) and printed once.
api_password_file = ""

[logins]
# Canonicalisation applied to every login (engine and leak corpus alike).
lowercase = true
# Fold "user+tag@domain" to "user@domain".
fold_plus_tags = true
# Domain appended to logins given without one ("" keeps them bare).
default_domain = ""

[logins.domain_aliases]
# "alias.example" = "example.org" maps logins of an alias domain onto the main domain.

[engine]
# Sliding-window counters: `buckets` buckets of `bucket_seconds` each (default: one hour in
# 5-minute buckets; 16-bit counters that saturate at 65,535). Rule windows are rounded up to
# whole buckets.
bucket_seconds = 300
buckets = 12
# Distinct-count sketches (linear counting, 256 bits per bucket, standard error ~5% up to a
# few hundred distinct values): one hour in 15-minute buckets for attack detection...
distinct_bucket_seconds = 900
distinct_buckets = 4
# ...and a day in 8-hour buckets for the users of shared addresses.
shared_bucket_seconds = 28800
shared_buckets = 3
# Most keys tracked in memory; the least recently used are forgotten beyond this.
max_tracked_keys = 2000000
# A source is "shared" (CGNAT, corporate NAT, a webmail's fetcher) when at least this many
# distinct accounts logged in successfully from it within the day, each from a network already
# familiar to the account; or twice as many successful accounts while at most one attempt in
# four fails over the hour. Shared sources are never banned wholesale.
shared_ip_min_users = 10
shared_subnet_min_users = 20

[familiarity]
# An account's network (IPv4 /24, IPv6 /64) or device is familiar for this long after its last
# successful login.
ttl_days = 90
# Most networks / devices remembered per account (oldest forgotten first).
max_networks = 16
max_devices = 8

[wforce]
# Status answered for step_up on the wforce API: -1 is what Dovecot rejects on; apps of your
# own may prefer -2.
step_up_status = -1

[nginx]
# The nginx auth_request endpoint GET /v1/nginx/auth (see `rempart nginx-config`).
# Peers whose client-address header is believed: the nginx in front of Rempart. From any other
# peer the socket's address is the client's.
trusted_proxies = ["127.0.0.1", "::1"]
# The header carrying the client's address ("X-Forwarded-For": its rightmost untrusted hop).
client_ip_header = "X-Real-IP"
# Where the login comes from when the original request has no HTTP Basic credentials (nginx
# passes those as X-Original-Authorization); "" judges such requests per source address.
login_header = "X-Rempart-Login"
# Header with a device or client id ("" for none); the User-Agent is always read.
device_header = "X-Device-Id"
# Header naming the protocol (web, app, api...), else `protocol`.
protocol_header = "X-Rempart-Protocol"
protocol = "web"
# step_up: "refuse" answers 401 (the client app starts its second factor); "forward" lets the
# request pass with X-Rempart-Verdict: step_up for the upstream app to enforce.
step_up = "refuse"

[tail]
# Log files `rempart serve` follows where no hook exists, each with its parser (dovecot,
# postfix, sshd, nginx; or regex = '...' with named groups ip and login, plus outcome):
# files = [{ path = "/var/log/mail.log", parser = "postfix" },
#          { path = "/var/log/auth.log", regex = 'Failed password for (?P<login>\\S+) from (?P<ip>\\S+)', outcome = "failure", protocol = "other" }]
files = []
# How often the files are checked for new lines, rotation and truncation (seconds).
poll_seconds = 0.5
# Where read offsets survive restarts ("" = <data_dir>/tail-offsets.json).
state_file = ""
# A file seen for the first time is read from its end ("end") or from its start ("start").
start_at = "end"

[asn]
# An IP-to-ASN table (iptoasn.com's ip2asn-combined.tsv format, plain or .gz: range_start,
# range_end, AS_number, country, description, tab-separated). When set, every attempt also
# gets an `asn` key: rules can count failures(asn, '15m') or failed_logins(asn, '1h') per
# network operator, and `explain` names the AS. Rempart ships no ASN data ("" = off).
database = ""

[journal]
# Append-only, hash-chained journal of decisions, reports and changes, under <data_dir>/journal.
enabled = true
# Start a new segment file after this many bytes.
segment_bytes = 67108864
# Flush the batch at most this often (seconds); decisions never wait on disk.
flush_interval = 0.2

[policy]
# Use the shipped default rules (see `rempart config show --rules`), then the rules below.
include_defaults = true

[dovecot]
# Dovecot's auth_policy_hash_nonce and auth_policy_hash_truncate, needed to match Dovecot's
# pwhash against the leak corpus (set hash_truncate_bits to 0 or >= 64 for a useful match).
hash_nonce = ""
hash_truncate_bits = 12

[campaign]
# The campaign detector: per protocol, the last minute's failures, unknown logins, failures
# from networks unfamiliar to the account, leaked-pair hits and failing sources, each compared
# with its learned share of attempts; the largest z-score moves the posture.
enabled = true
tick_seconds = 10.0
# Ticks in the measured window (6 x 10 s = the last minute).
window_ticks = 6
# Half-life of the learned baselines; they learn only while the protocol is calm.
half_life_minutes = 60.0
# From the first tick, failures, failing IPs and subnets, unknown logins and leaked pairs are
# judged against conservative priors (see docs/detection.md, "Cold start"); the figures with no
# prior (failures from unfamiliar networks, failing ASNs) score once the baselines have learned
# this long.
warmup_minutes = 10.0
# Weight of the priors, in learned ticks: the service's own figures take over as they come.
prior_ticks = 60.0
# A posture raised on priors alone steps down only when no prior figure exceeds its prior's
# mean, for at most this long; then the calm score alone decides.
prior_hold_hours = 12.0
# How often `rempart serve` saves the detector's learned state to the store (and at shutdown).
save_seconds = 60.0
# Nothing scores below this many failures per minute on the protocol.
min_failures_per_minute = 5.0
# Events of a kind the baseline may have missed in the attempts it learned from (Jeffreys'
# 0.5): a figure never seen so far is expected at that rate, not taken as impossible.
prior_events = 0.5
# Score thresholds (z-scores) for each posture.
guarded_score = 6.0
strict_score = 12.0
closed_score = 40.0
# One tick at or above prompt_score raises the posture one level at once (at most one level
# a tick); a score between a level's threshold and prompt_score must hold consecutive_ticks
# ticks (only when prompt_score is set above guarded_score).
prompt_score = 6.0
consecutive_ticks = 2
# Below calm_score for calm_minutes, the posture steps down one level.
calm_minutes = 15.0
calm_score = 3.0
# Whether the detector may close a protocol on its own (otherwise only an operator can).
allow_auto_close = false
# Signed webhooks for posture changes:
# [[campaign.webhooks]]
# url = "https://hooks.example.org/rempart"
# secret = "..."            # HMAC-SHA256 of the body, base64, in X-Wforce-Signature
# events = ["posture"]

[leaks]
# How many of the shipped popular passwords (most frequent first) count as popular.
popular_top_n = 100000
# zxcvbn score (0-4) a new password needs for `password-check` to call it acceptable.
min_strength = 3
# Lines per ingest checkpoint: a kill -9 loses at most this much work.
chunk_lines = 1000000
# Processes verifying leaked passwords against the user store; 0 = one per core.
audit_workers = 0
# Longer passwords are rejected as junk lines.
max_password_bytes = 256

[ops]
# Idle lifetime of an operator session on the dashboard, minutes.
session_minutes = 30.0
# "auto": Secure cookies when the request came over TLS (X-Forwarded-Proto); or "true"/"false".
cookie_secure = "auto"
# Mount the operator dashboard at /ops/ (the public status page /status is always on).
dashboard = true

[status]
# Title of the public status page; list its services under [status.services] as name = "label".
title = "Service status"

[state]
# Where durable facts live and whether nodes share what they learn:
# "sqlite": one node, lists, familiarity and posture in <data_dir>/state.sqlite3 (embedded);
# "redis": scale-out, N nodes share lists, posture, familiarity and counters through Redis and
# each keeps deciding from its own memory (a local SQLite mirror included) if Redis goes away.
backend = "sqlite"
# Redis to use with backend = "redis" (redis://[user:password@]host:port/db, rediss://, unix://).
redis_url = "redis://127.0.0.1:6379/0"
# Prefix of every Redis key, so several clusters can share one Redis (letters, digits, ":_.-").
key_prefix = "rempart:"
# This node's name in the shared streams and in `stats` ("" = hostname:pid).
node_id = ""
# How often a node sends its reports and changes to the others, seconds.
sync_interval = 0.1
# Entries kept in the shared report stream (each one node's batch of at most 500 reports); a
# starting node warms its counters from what is kept.
stream_maxlen = 20000
# Reports a node keeps for Redis while Redis is unreachable (the oldest dropped beyond).
buffer_records = 100000

# [shed] configures admission control (criticality classes, HAProxy data plane): see
# `rempart config show --reference-shed` for every key with its default.
"""


class ConfigError(ValueError):
    """A configuration problem, with the offending key in the message."""


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str
    port: int
    data_dir: str
    max_body_bytes: int


@dataclass(frozen=True, slots=True)
class EngineSettings:
    bucket_seconds: int
    buckets: int
    distinct_bucket_seconds: int
    distinct_buckets: int
    shared_bucket_seconds: int
    shared_buckets: int
    max_tracked_keys: int
    shared_ip_min_users: int
    shared_subnet_min_users: int


@dataclass(frozen=True, slots=True)
class FamiliaritySettings:
    ttl_days: float
    max_networks: int
    max_devices: int


@dataclass(frozen=True, slots=True)
class JournalSettings:
    enabled: bool
    segment_bytes: int
    flush_interval: float


@dataclass(frozen=True, slots=True)
class StateSettings:
    backend: str = "sqlite"
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "rempart:"
    node_id: str = ""
    sync_interval: float = 0.1
    stream_maxlen: int = 20000
    buffer_records: int = 100000


def _state(t: dict[str, Any]) -> StateSettings:
    backend = _typed(t, "state", "backend", str)
    if backend not in ("sqlite", "redis"):
        raise ConfigError(f'[state] backend: "sqlite" or "redis", got {backend!r}')
    url = _typed(t, "state", "redis_url", str)
    if not url.startswith(("redis://", "rediss://", "unix://")):
        # The URL may carry a password: name only its scheme.
        scheme = url.partition(":")[0]
        raise ConfigError(
            f"[state] redis_url: must start with redis://, rediss:// or unix://, not {scheme!r}"
        )
    prefix = _typed(t, "state", "key_prefix", str)
    if not prefix or not all(c.isalnum() or c in ":_.-" for c in prefix):
        raise ConfigError(f"[state] key_prefix: letters, digits and ':_.-' only, got {prefix!r}")
    node_id = _typed(t, "state", "node_id", str)
    if len(node_id) > 64 or not all(c.isalnum() or c in ":_.-" for c in node_id):
        raise ConfigError(
            f"[state] node_id: at most 64 letters, digits and ':_.-', got {node_id[:80]!r}"
        )
    interval = _typed(t, "state", "sync_interval", float, 0.01)
    if interval > 5:
        raise ConfigError(f"[state] sync_interval: at most 5 seconds, got {interval!r}")
    return StateSettings(
        backend=backend,
        redis_url=url,
        key_prefix=prefix,
        node_id=node_id,
        sync_interval=interval,
        stream_maxlen=_typed(t, "state", "stream_maxlen", int, 100),
        buffer_records=_typed(t, "state", "buffer_records", int, 1000),
    )


@dataclass(slots=True)
class Settings:
    """The effective configuration."""

    server: ServerSettings
    engine: EngineSettings
    familiarity: FamiliaritySettings
    journal: JournalSettings
    logins: LoginRules
    api_password_file: str
    step_up_status: int
    include_default_rules: bool
    rules: list[dict[str, Any]]
    raw: dict[str, Any] = field(default_factory=dict)
    state: StateSettings = field(default_factory=lambda: StateSettings())

    @classmethod
    def default(cls) -> Settings:
        return from_mapping({})


def defaults() -> dict[str, Any]:
    return tomllib.loads(DEFAULTS_TOML)


def _merge(base: dict[str, Any], over: dict[str, Any], path: str = "") -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        where = f"{path}{key}"
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            if key == "domain_aliases":
                out[key] = dict(value)
            else:
                out[key] = _merge(out[key], value, where + ".")
        else:
            out[key] = value
    return out


def _typed(table: dict[str, Any], section: str, key: str, kind: type, minimum: float | None = None):
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise ConfigError(f"[{section}] {key}: expected {kind.__name__}, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"[{section}] {key}: must be >= {minimum}, got {value!r}")
    return value


_KNOWN = defaults()


def _check_unknown(merged: dict[str, Any]) -> None:
    for section, table in merged.items():
        if section not in _KNOWN:
            if section in {"shed", "sim"}:
                continue
            raise ConfigError(f"unknown section [{section}]")
        if not isinstance(table, dict):
            raise ConfigError(f"[{section}] must be a table")
        if section in {"campaign", "leaks", "ops", "status"}:
            continue  # validated by their own packages' parsers
        for key in table:
            if key not in _KNOWN[section] and not (section == "policy" and key == "rules"):
                raise ConfigError(f"[{section}] unknown key {key!r}")


def from_mapping(data: dict[str, Any]) -> Settings:
    """Typed settings from a parsed TOML mapping merged over the defaults."""
    merged = _merge(_KNOWN, data)
    _check_unknown(merged)
    s, e, f, j, lg = (merged[k] for k in ("server", "engine", "familiarity", "journal", "logins"))
    engine = EngineSettings(
        **{k: _typed(e, "engine", k, int, 1) for k in _KNOWN["engine"]},
    )
    if engine.distinct_buckets > 64 or engine.shared_buckets > 64 or engine.buckets > 1024:
        raise ConfigError("[engine] too many buckets (at most 1024 counters, 64 sketches)")
    aliases = lg.get("domain_aliases", {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in aliases.items()):
        raise ConfigError("[logins.domain_aliases] keys and values must be strings")
    rules = merged["policy"].get("rules", [])
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise ConfigError("[[policy.rules]] must be an array of tables")
    step_up = _typed(merged["wforce"], "wforce", "step_up_status", int)
    if step_up >= 0:
        raise ConfigError("[wforce] step_up_status: must be negative (a rejection)")
    return Settings(
        server=ServerSettings(
            host=_typed(s, "server", "host", str),
            port=_typed(s, "server", "port", int, 0),
            data_dir=_typed(s, "server", "data_dir", str),
            max_body_bytes=_typed(s, "server", "max_body_bytes", int, 1024),
        ),
        engine=engine,
        familiarity=FamiliaritySettings(
            ttl_days=_typed(f, "familiarity", "ttl_days", float, 0),
            max_networks=_typed(f, "familiarity", "max_networks", int, 1),
            max_devices=_typed(f, "familiarity", "max_devices", int, 1),
        ),
        journal=JournalSettings(
            enabled=_typed(j, "journal", "enabled", bool),
            segment_bytes=_typed(j, "journal", "segment_bytes", int, 4096),
            flush_interval=_typed(j, "journal", "flush_interval", float, 0.001),
        ),
        logins=LoginRules(
            lowercase=_typed(lg, "logins", "lowercase", bool),
            fold_plus_tags=_typed(lg, "logins", "fold_plus_tags", bool),
            domain_aliases={k.lower(): v.lower() for k, v in aliases.items()},
            default_domain=_typed(lg, "logins", "default_domain", str).lower(),
        ),
        api_password_file=_typed(merged["auth"], "auth", "api_password_file", str),
        step_up_status=step_up,
        include_default_rules=_typed(merged["policy"], "policy", "include_defaults", bool),
        rules=rules,
        raw=merged,
        state=_state(merged["state"]),
    )


def load_settings(path: str | Path | None = None) -> Settings:
    """Load settings from a TOML file (None: defaults only)."""
    if path is None:
        return Settings.default()
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    try:
        return from_mapping(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
